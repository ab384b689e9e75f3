"""Train: search-space expansion, determinism, picking the best."""

import hashlib

import pandas as pd
import pytest

from components.adapter import restore_integers
from mlops.errors import StageError
from mlops.stages.prepare import fit_preprocessor
from mlops.stages.search_space import ParamsError, load_search_space
from mlops.stages.train import check_search_space, expand_search_space, pick_best, train_candidate
from mlops.store import model_io


def test_default_search_space_expands_for_both_tasks():
    space = load_search_space()
    for task in ("classification", "regression"):
        candidates = expand_search_space(space, task)
        assert len(candidates) >= 3
        assert len({c["id"] for c in candidates}) == len(candidates)


def test_grid_expansion_and_stable_ids():
    space = {"candidates": {"classification": {"logistic_regression": {"C": [0.1, 1.0]}, "knn": {"n_neighbors": 5}}}}
    assert expand_search_space(space, "classification") == [
        {"id": "c01-logistic_regression", "family": "logistic_regression", "params": {"C": 0.1}},
        {"id": "c02-logistic_regression", "family": "logistic_regression", "params": {"C": 1.0}},
        {"id": "c03-knn", "family": "knn", "params": {"n_neighbors": 5}},
    ]


@pytest.mark.parametrize(
    "space, message",
    [
        ({"candidates": {"classification": {"ridge": {}}}}, "unknown model family 'ridge' for classification"),
        ({"candidates": {"regression": {"ridge": {}}}}, "no candidates for task 'classification'"),
        ({"families": {}}, "unknown key 'families' in the search space"),
        # a misspelled hyperparameter, with a suggestion
        (
            {"candidates": {"classification": {"random_forest": {"n_estimator": [10]}}}},
            "unknown hyperparameter 'n_estimator' for random_forest \\(classification\\) "
            "\\(did you mean 'n_estimators'\\?\\)",
        ),
        # a value scikit-learn rejects, found before anything trains
        (
            {"candidates": {"classification": {"random_forest": {"n_estimators": [0]}}}},
            "bad parameters for random_forest \\(classification\\): The 'n_estimators' parameter",
        ),
        ({"candidates": {"classification": {"knn": {"n_jobs": 4}}}}, "'n_jobs' is set by the pipeline"),
        ({"metric": "f1", "candidates": {"classification": {"knn": {}}}}, "unknown metric 'f1'"),
        ({"candidates": {"clasification": {"knn": {}}}}, "unknown task 'clasification' under candidates"),
        ({"candidates": {"classification": {"knn": {"n_neighbors": []}}}}, "n_neighbors is an empty list"),
    ],
)
def test_bad_search_spaces(space, message):
    with pytest.raises(StageError, match=message):
        expand_search_space(space, "classification")


def test_every_task_of_the_search_space_is_checked_up_front():
    """A typo under regression fails a classification run's pre-flight too: the file is wrong."""
    space = {"candidates": {"classification": {"knn": {}}, "regression": {"ridge": {"alpah": [1.0]}}}}
    with pytest.raises(StageError, match="unknown hyperparameter 'alpah' for ridge"):
        check_search_space(space)


def test_params_file_errors(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_search_space(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("candidates: [1, 2]\n")
    with pytest.raises(ParamsError, match="needs a 'candidates' mapping"):
        load_search_space(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("candidates: {classification: [\n")
    with pytest.raises(ParamsError, match="is not valid YAML"):
        load_search_space(broken)


def test_restore_integers_undoes_struct_doubles():
    assert restore_integers({"max_depth": 8.0, "C": 0.5, "name": "x"}) == {"max_depth": 8, "C": 0.5, "name": "x"}


@pytest.mark.parametrize("dataset, task", [("wine", "classification"), ("diabetes", "regression")])
def test_training_is_bit_identical_for_the_same_seed(demo_data, dataset, task, split_like_a_run):
    splits = split_like_a_run(pd.read_csv(demo_data[dataset]), "target").frames()
    transform, info = fit_preprocessor(splits["train"], "target")
    assert info["task"] == task
    digests = set()
    for candidate in expand_search_space(load_search_space(), task):
        first, scores = train_candidate(
            candidate, transform, splits["train"], splits["validation"], "target", task, seed=42
        )
        second, again = train_candidate(
            candidate, transform, splits["train"], splits["validation"], "target", task, seed=42
        )
        assert scores == again
        blobs = [hashlib.sha256(model_io.dumps(model)).hexdigest() for model in (first, second)]
        assert blobs[0] == blobs[1], candidate["id"]
        digests.add(blobs[0])
    assert len(digests) > 1  # different candidates really are different models


def test_pick_best_respects_direction_and_breaks_ties_by_id():
    results = [
        {"candidate": {"id": "c02"}, "validation_metrics": {"f1_macro": 0.9, "rmse": 2.0}},
        {"candidate": {"id": "c01"}, "validation_metrics": {"f1_macro": 0.9, "rmse": 3.0}},
        {"candidate": {"id": "c03"}, "validation_metrics": {"f1_macro": 0.8, "rmse": 1.0}},
    ]
    assert pick_best(results, "f1_macro")["candidate"]["id"] == "c01"
    assert pick_best(results, "rmse")["candidate"]["id"] == "c03"


def test_a_candidate_fits_on_one_thread(monkeypatch, wine_frame):
    """Histogram gradient boosting has no n_jobs: its OpenMP threads are limited to one while it fits,
    as n_jobs=1 does for the others (candidates already run in parallel)."""
    from threadpoolctl import threadpool_info

    from mlops.stages import train as stage

    seen = []
    real = stage.make_estimator

    def recording(*args, **kwargs):
        estimator = real(*args, **kwargs)
        fit = estimator.fit

        def fit_and_record(*a, **k):
            seen.append({pool["user_api"]: pool["num_threads"] for pool in threadpool_info()})
            return fit(*a, **k)

        estimator.fit = fit_and_record
        return estimator

    monkeypatch.setattr(stage, "make_estimator", recording)
    shuffled = wine_frame.sample(frac=1.0, random_state=0)
    train, validation = shuffled.iloc[:120], shuffled.iloc[120:]
    transform, info = fit_preprocessor(train, "target")
    candidate = {"id": "c01", "family": "hist_gradient_boosting", "params": {"max_iter": 5}}
    stage.train_candidate(candidate, transform, train, validation, "target", info["task"], seed=1)
    assert seen and seen[0] and set(seen[0].values()) == {1}, seen
