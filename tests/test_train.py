"""Train: search-space expansion, determinism, picking the best."""

import hashlib
import io

import joblib
import pandas as pd
import pytest

from components.ingest import SplitConfig, ingest_frame
from components.prepare import fit_preprocessor
from components.runtime import StageError
from components.train import expand_search_space, pick_best, restore_integers, train_candidate
from pipelines.search_space import ParamsError, load_search_space


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


@pytest.mark.parametrize("space, message", [
    ({"candidates": {"classification": {"ridge": {}}}}, "unknown model family 'ridge' for classification"),
    ({"candidates": {"regression": {"ridge": {}}}}, "no candidates for task 'classification'"),
    ({"families": {}}, "must be a mapping with a 'candidates' mapping"),
])
def test_bad_search_spaces(space, message):
    with pytest.raises(StageError, match=message):
        expand_search_space(space, "classification")


def test_params_file_errors(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_search_space(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("candidates: [1, 2]\n")
    with pytest.raises(ParamsError, match="needs a 'candidates' mapping"):
        load_search_space(bad)


def test_restore_integers_undoes_struct_doubles():
    assert restore_integers({"max_depth": 8.0, "C": 0.5, "name": "x"}) == {"max_depth": 8, "C": 0.5, "name": "x"}


@pytest.mark.parametrize("dataset, task", [("wine", "classification"), ("diabetes", "regression")])
def test_training_is_bit_identical_for_the_same_seed(demo_data, dataset, task):
    result = ingest_frame(pd.read_csv(demo_data[dataset]), "target", SplitConfig())
    transform, info = fit_preprocessor(result.splits["train"], "target")
    assert info["task"] == task
    digests = set()
    for candidate in expand_search_space(load_search_space(), task):
        first, scores = train_candidate(candidate, transform, result.splits["train"], result.splits["validation"],
                                        "target", task, seed=42)
        second, again = train_candidate(candidate, transform, result.splits["train"], result.splits["validation"],
                                        "target", task, seed=42)
        assert scores == again
        blobs = []
        for model in (first, second):
            buffer = io.BytesIO()
            joblib.dump(model, buffer)
            blobs.append(hashlib.sha256(buffer.getvalue()).hexdigest())
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
