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


def _generated(rows: int, seed: int = 0) -> pd.DataFrame:
    """Numbers, a category and a binary label that depends on them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows).round(4) for i in range(4)})
    frame["colour"] = rng.choice(["red", "green", "blue"], rows)
    frame["label"] = np.where(frame["x0"] + (frame["colour"] == "red") + rng.normal(0, 1, rows) > 0, "yes", "no")
    return frame


@pytest.fixture
def training_split(tmp_path, split_like_a_run):
    """The training split of a generated table as the split stage writes it, and the same rows again
    in a file with other row groups (100 rows each)."""
    import pyarrow.parquet as pq

    from mlops.store.datasets import write_parquet

    table = split_like_a_run(_generated(12_000), "label").splits["train"]
    path, regrouped = tmp_path / "train.parquet", tmp_path / "regrouped.parquet"
    write_parquet(table, str(path))
    pq.write_table(table, str(regrouped), row_group_size=100)
    return path, regrouped


def test_training_uses_every_row_within_the_budget_exactly_as_read(training_split):
    from mlops.stages.train import load_training_rows

    path, _ = training_split
    frame, rows = load_training_rows(path, model_inputs=7, seed=42, memory_budget_mb=1024)
    pd.testing.assert_frame_equal(frame, pd.read_parquet(path))  # the same frame as before the budget: same model
    assert (rows.used, rows.available, rows.how, rows.sampled) == (len(frame), len(frame), "all", False)
    assert "within the 1,024 MB training budget" in rows.describe()


def test_past_the_budget_training_uses_a_seed_keyed_sample(training_split):
    from mlops.stages.train import SAMPLE_SCHEME, load_training_rows, training_bytes_per_row

    path, regrouped = training_split
    whole = pd.read_parquet(path)
    # 4 numbers at 8 bytes, 2 text columns at 64, 7 model inputs at 8 bytes twice: 272 bytes a row; 1 MB holds 3,855
    budget = 1
    frame, rows = load_training_rows(path, model_inputs=7, seed=42, memory_budget_mb=budget)
    import pyarrow.parquet as pq

    assert training_bytes_per_row(pq.ParquetFile(path).schema_arrow, 7) == 272
    assert (rows.used, rows.available, rows.how, rows.sampled) == (3855, len(whole), SAMPLE_SCHEME, True)
    assert len(frame) == 3855 and list(frame.columns) == list(whole.columns)
    assert frame.dtypes.equals(whole.dtypes)
    # rows of the split, in its order, none twice
    merged = whole.reset_index().merge(frame, on=list(whole.columns))
    assert len(merged) == 3855 and merged["index"].is_monotonic_increasing
    # the same seed: the same rows, whatever the file's row groups; another seed: other rows
    again, _ = load_training_rows(regrouped, model_inputs=7, seed=42, memory_budget_mb=budget)
    pd.testing.assert_frame_equal(frame, again)
    other, _ = load_training_rows(path, model_inputs=7, seed=7, memory_budget_mb=budget)
    assert not frame.equals(other)
    text = rows.describe()
    assert f"3,855 of {len(whole):,} training rows" in text and "seed 42" in text and SAMPLE_SCHEME in text


@pytest.mark.parametrize("family", ["logistic_regression", "hist_gradient_boosting"])
def test_within_the_budget_prepare_and_train_give_the_model_of_the_whole_split(training_split, monkeypatch, family):
    """All rows fit: prepare fits on the split as pd.read_parquet reads it and train transforms it in
    chunks (1,000 rows here) with the frame freed first, and the model bytes are those of the plain path."""
    from mlops.stages import train as stage
    from mlops.stages.prepare import fit_on_split

    path, _ = training_split
    monkeypatch.setattr(stage, "SAMPLE_BATCH_ROWS", 1_000)  # prepare's first guess from a 1,000-row batch
    monkeypatch.setattr(stage, "TRANSFORM_CHUNK_ROWS", 1_000)
    whole = pd.read_parquet(path)
    candidate = {"id": "c01", "family": family, "params": {}}
    plain_transform, _ = fit_preprocessor(whole, "label")
    plain, plain_scores = train_candidate(
        candidate, plain_transform, whole, whole.head(500), "label", "classification", 42
    )

    transform, info, rows = fit_on_split(path, "label", seed=42, memory_budget_mb=1024)
    assert (rows.how, rows.used, info["train_rows"]) == ("all", len(whole), len(whole))
    assert model_io.dumps(transform) == model_io.dumps(plain_transform)
    model, scores = stage.train_candidate_on_split(
        candidate, transform, path, rows, whole.head(500), "label", "classification", 42
    )
    assert model_io.dumps(model) == model_io.dumps(plain) and scores == plain_scores


def test_past_the_budget_prepare_fits_on_the_sample_train_uses(training_split, monkeypatch):
    """Over the budget prepare fits the transform on exactly the seed-keyed sample every candidate reads,
    as many rows as the budget holds with the fitted transform's model inputs."""
    from mlops.stages import train as stage
    from mlops.stages.prepare import fit_on_split, target_values

    path, _ = training_split
    monkeypatch.setattr(stage, "SAMPLE_BATCH_ROWS", 1_000)
    transform, info, rows = fit_on_split(path, "label", seed=42, memory_budget_mb=1)
    assert rows.sampled and rows.how == stage.SAMPLE_SCHEME and info["train_rows"] == rows.available
    assert rows == stage.choose_training_rows(path, info["output_features"], 42, 1)  # what train would choose
    sample = stage.read_training_rows(path, rows)
    assert len(sample) == rows.used < rows.available
    on_sample, _ = fit_preprocessor(
        sample, "label", target_values=target_values(path, "label"), split_rows=rows.available
    )
    assert model_io.dumps(transform) == model_io.dumps(on_sample)
    assert model_io.dumps(transform) != model_io.dumps(fit_preprocessor(pd.read_parquet(path), "label")[0])
    # fewer rows of the same seed are a subset of more: a refit on a smaller sample stays inside the first
    fewer = stage.sample_rows(path, rows.used // 2, 42)
    assert len(fewer.merge(sample, on=list(sample.columns))) == len(fewer)


def test_a_chunked_transform_is_the_whole_transform(training_split, monkeypatch):
    from mlops.stages import train as stage

    whole = pd.read_parquet(training_split[0])
    transform, _ = fit_preprocessor(whole, "label")
    monkeypatch.setattr(stage, "TRANSFORM_CHUNK_ROWS", 999)  # a last chunk shorter than the others
    chunked = stage.transform_in_chunks(transform, whole, "label")
    assert chunked.tobytes() == transform.transform(whole.drop(columns=["label"])).tobytes()


def test_the_training_rows_reach_the_lineage_the_report_and_the_summary(training_split):
    from mlops.reporting.report import lineage_section, render_summary
    from mlops.stages.register import build_lineage
    from mlops.stages.train import describe_training_rows, load_training_rows

    _, rows = load_training_rows(training_split[0], model_inputs=7, seed=42, memory_budget_mb=1)
    blessing = {"test_metrics": {"f1_macro": 0.8}, "baseline_metrics": {"f1_macro": 0.3}, "blessed": True}
    blessing.update({k: None for k in ("reason", "metric", "score", "baseline_score", "skill", "min_skill")})
    blessing.update({k: None for k in ("min_score", "champion_version", "champion_score", "champion_error")})
    lineage = build_lineage(
        data={"ref": "d@1", "source": "s", "rows": {"train": 1}, "columns": {}, "target": "label"},
        split={},
        validation={},
        task="classification",
        search_space={},
        candidate={"id": "c01", "params": {}},
        metric="f1_macro",
        validation_metrics={"f1_macro": 0.8},
        blessing={**blessing, "score": 0.8, "baseline_score": 0.3, "skill": 0.7, "reason": "ok"},
        seed=42,
        code_version="abc",
        run_id="r",
        run_name="n",
        model_sha256="0" * 64,
        training_rows=rows.to_json(),
    )
    recorded = lineage["training"]["rows"]
    assert recorded["used"] == 3855 and recorded["available"] == rows.available and recorded["sampled"]
    assert recorded["how"] == "row-key-sample-v1" and recorded["seed"] == 42
    text = describe_training_rows(recorded)
    assert text == rows.describe()
    summary = render_summary(version={"name": "m", "version": 1, "lineage": lineage}, evaluation=lineage["blessing"])
    assert f"- trained on {text}" in summary
    assert "training rows" in "".join(lineage_section({"lineage": lineage})) and "3,855 of" in "".join(
        lineage_section({"lineage": lineage})
    )
    assert describe_training_rows({}) == ""  # a lineage from before the record: nothing said
