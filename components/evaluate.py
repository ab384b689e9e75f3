"""Evaluate: score the chosen model on the untouched test split and decide its blessing.

A model is blessed when its test score meets the absolute threshold AND is at
least as good as the current champion scored on the same test rows. A
champion that cannot be scored on this data (its features differ) blocks the
blessing: a new model never replaces a champion without a like-for-like
comparison; promote it by hand if the change is intended.
"""

import io

import joblib
import numpy as np
import pandas as pd
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output
from sklearn import metrics as skm

from components.metrics import is_at_least_as_good, score_model
from components.storage import ObjectStore
from components.storage.registry import ModelRegistry


def confusion(model, features: pd.DataFrame, target: pd.Series) -> tuple[list[str], list[list[int]]]:
    """Labels (as text) and the confusion matrix over every class the model or the data knows."""
    predictions = model.predict(features)
    labels = sorted(set(model.classes_) | set(pd.unique(target)), key=str)
    matrix = skm.confusion_matrix(target, predictions, labels=labels)
    return [str(label) for label in labels], matrix.astype(int).tolist()


def roc_points(model, features: pd.DataFrame, target: pd.Series, max_points: int = 200) -> dict | None:
    """ROC curve for a binary classifier (positive class = model.classes_[1])."""
    classes = list(getattr(model, "classes_", []))
    if len(classes) != 2 or not hasattr(model, "predict_proba") or set(pd.unique(target)) != set(classes):
        return None
    scores = model.predict_proba(features)[:, 1]
    fpr, tpr, thresholds = skm.roc_curve(target, scores, pos_label=classes[1])
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), max_points)).astype(int))
    # sklearn's first threshold is +inf, which JSON and KFP cannot hold.
    finite = np.where(np.isfinite(thresholds), thresholds, 1.0)
    return {"positive_class": str(classes[1]), "fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(),
            "thresholds": finite[keep].tolist()}


def champion_scores(store: ObjectStore, model_name: str, features: pd.DataFrame, target: pd.Series,
                    task: str) -> dict | None:
    """The champion's metrics on this test split, or its failure to be scored; None without a champion."""
    registry = ModelRegistry(store)
    champion = registry.champion(model_name)
    if champion is None:
        return None
    try:
        model = joblib.load(io.BytesIO(registry.read_file(champion, "model.joblib")))
        return {"version": champion.version, "test_metrics": score_model(model, features, target, task)}
    except Exception as error:  # a champion trained on other columns fails in many ways
        return {"version": champion.version, "error": f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"}


def decide_blessing(test_metrics: dict, metric: str, min_score: float, champion: dict | None) -> tuple[bool, str]:
    """(blessed, reason) from the test score, the absolute threshold and the champion."""
    score = test_metrics[metric]
    if not is_at_least_as_good(score, min_score, metric):
        return False, f"test {metric} {score:.4f} does not meet the threshold {min_score:.4f}"
    if champion is None:
        return True, f"test {metric} {score:.4f} meets the threshold {min_score:.4f}; no champion yet"
    if "error" in champion:
        return False, f"champion v{champion['version']} could not be scored on this test data ({champion['error']})"
    reference = champion["test_metrics"][metric]
    if not is_at_least_as_good(score, reference, metric):
        return False, f"test {metric} {score:.4f} is worse than champion v{champion['version']} ({reference:.4f})"
    return True, (f"test {metric} {score:.4f} meets the threshold {min_score:.4f} and is not worse than "
                  f"champion v{champion['version']} ({reference:.4f})")


def evaluate_model(model, test: pd.DataFrame, target: str, task: str, metric: str, min_score: float,
                   store: ObjectStore, model_name: str) -> dict:
    """Everything the evaluate stage decides, as one JSON-ready dict."""
    features, labels = test.drop(columns=[target]), test[target]
    test_metrics = score_model(model, features, labels, task)
    champion = champion_scores(store, model_name, features, labels, task)
    blessed, reason = decide_blessing(test_metrics, metric, min_score, champion)
    result = {"metric": metric, "test_metrics": test_metrics, "test_rows": int(len(test)), "champion": champion,
              "min_score": min_score, "blessed": blessed, "reason": reason}
    if task == "classification":
        categories, matrix = confusion(model, features, labels)
        result["confusion_matrix"] = {"labels": categories, "matrix": matrix}
        result["roc"] = roc_points(model, features, labels)
    return result


def evaluate(
    best: Input[Model],
    test_split: Input[Dataset],
    prepare_info: str,
    selection: str,
    model_name: str,
    store_uri: str,
    min_score: float,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
) -> str:
    """KFP component: test-set metrics, confusion matrix / ROC, and the blessing decision."""
    import json
    import os

    import joblib
    import pandas as pd

    from components import evaluate as stage
    from components import runtime
    from components.storage import open_store

    info = runtime.parse_json(prepare_info)
    result = runtime.run_stage(
        "evaluate", stage.evaluate_model, model=joblib.load(os.path.join(best.path, "model.joblib")),
        test=pd.read_parquet(test_split.path), target=info["target"], task=info["task"],
        metric=runtime.parse_json(selection)["metric"], min_score=min_score, store=open_store(store_uri),
        model_name=model_name)
    for name, value in sorted(result["test_metrics"].items()):
        metrics.log_metric(f"test_{name}", value)
    metrics.log_metric("blessed", 1.0 if result["blessed"] else 0.0)
    if "confusion_matrix" in result:
        matrix = result["confusion_matrix"]
        classification_metrics.log_confusion_matrix(matrix["labels"], matrix["matrix"])
    if result.get("roc"):
        roc = result["roc"]
        classification_metrics.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    metric = result["metric"]
    runtime.report_progress("evaluate", f"test {metric}={result['test_metrics'][metric]:.4f} on "
                            f"{result['test_rows']} rows; {'BLESSED' if result['blessed'] else 'not blessed'}: "
                            f"{result['reason']}")
    return json.dumps(result)
