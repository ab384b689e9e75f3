"""Evaluate: test metrics, the blessing rules and the champion comparison."""

import io

import joblib
import pandas as pd
import pytest

from components.evaluate import decide_blessing, evaluate_model
from components.ingest import SplitConfig, ingest_frame
from components.metrics import resolve_metric
from components.prepare import fit_preprocessor
from components.runtime import StageError
from components.storage.registry import ModelRegistry
from components.train import train_candidate


@pytest.mark.parametrize("score, threshold, champion, blessed, reason", [
    (0.9, 0.5, None, True, "no champion yet"),
    (0.4, 0.5, None, False, "does not meet the threshold"),
    (0.9, 0.5, {"version": 3, "test_metrics": {"f1_macro": 0.95}}, False, "worse than champion v3"),
    (0.95, 0.5, {"version": 3, "test_metrics": {"f1_macro": 0.95}}, True, "not worse than champion v3"),
    (0.99, 0.5, {"version": 3, "error": "KeyError: 'x'"}, False, "could not be scored"),
])
def test_blessing_rules(score, threshold, champion, blessed, reason):
    decision, text = decide_blessing({"f1_macro": score}, "f1_macro", threshold, champion)
    assert decision is blessed and reason in text


def test_error_metrics_bless_lower_values():
    assert decide_blessing({"rmse": 1.0}, "rmse", 2.0, {"version": 1, "test_metrics": {"rmse": 1.5}})[0]
    assert not decide_blessing({"rmse": 3.0}, "rmse", 2.0, None)[0]


def test_metric_resolution():
    assert resolve_metric("auto", "regression") == "r2"
    with pytest.raises(StageError, match="metric 'r2' is for regression"):
        resolve_metric("r2", "classification")
    with pytest.raises(StageError, match="unknown metric 'auc'"):
        resolve_metric("auc", "classification")


def _fit(frame, candidate):
    result = ingest_frame(frame, "target", SplitConfig())
    transform, info = fit_preprocessor(result.splits["train"], "target")
    model, _ = train_candidate(candidate, transform, result.splits["train"], result.splits["validation"],
                               "target", info["task"], seed=1)
    return model, result.splits["test"]


def test_evaluation_against_a_registered_champion(demo_data, file_store):
    frame = pd.read_csv(demo_data["breast_cancer"])
    strong, test = _fit(frame, {"id": "c01", "family": "logistic_regression", "params": {"C": 1.0}})
    weak, _ = _fit(frame, {"id": "c02", "family": "knn", "params": {"n_neighbors": 150}})

    first = evaluate_model(weak, test, "target", "classification", "f1_macro", 0.0, file_store, "cancer")
    assert first["blessed"] and first["champion"] is None
    assert first["roc"]["positive_class"] in ("benign", "malignant")
    assert sum(map(sum, first["confusion_matrix"]["matrix"])) == len(test)

    buffer = io.BytesIO()
    joblib.dump(strong, buffer)
    registry = ModelRegistry(file_store)
    champion = registry.register("cancer", {"model.joblib": buffer.getvalue()}, metrics={}, lineage={})
    registry.set_alias("cancer", "champion", champion.version)

    second = evaluate_model(weak, test, "target", "classification", "f1_macro", 0.0, file_store, "cancer")
    assert second["champion"]["version"] == champion.version
    assert not second["blessed"] and "worse than champion v1" in second["reason"]


def test_a_champion_that_cannot_score_this_data_blocks_blessing(demo_data, file_store):
    wine, _ = _fit(pd.read_csv(demo_data["wine"]), {"id": "c01", "family": "logistic_regression", "params": {}})
    cancer, test = _fit(pd.read_csv(demo_data["breast_cancer"]),
                        {"id": "c01", "family": "logistic_regression", "params": {}})
    buffer = io.BytesIO()
    joblib.dump(wine, buffer)
    registry = ModelRegistry(file_store)
    registry.set_alias("m", "champion", registry.register("m", {"model.joblib": buffer.getvalue()},
                                                           metrics={}, lineage={}).version)
    result = evaluate_model(cancer, test, "target", "classification", "f1_macro", 0.0, file_store, "m")
    assert not result["blessed"] and "could not be scored" in result["reason"]
