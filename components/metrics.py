"""Metrics shared by training (validation split) and evaluation (test split).

Each metric declares its direction, so "best" and "not worse than the
champion" mean the right thing for error metrics such as RMSE.
"""

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from components.runtime import StageError

# name -> (task, higher_is_better)
METRICS = {
    "accuracy": ("classification", True),
    "balanced_accuracy": ("classification", True),
    "f1_macro": ("classification", True),
    "roc_auc": ("classification", True),  # binary: positive class; multiclass: one-vs-rest macro
    "log_loss": ("classification", False),
    "r2": ("regression", True),
    "rmse": ("regression", False),
    "mae": ("regression", False),
}
DEFAULT_METRIC = {"classification": "f1_macro", "regression": "r2"}


def resolve_metric(name: str, task: str) -> str:
    """The metric that ranks candidates: ``name``, or the task's default for 'auto'."""
    if name in ("", "auto"):
        return DEFAULT_METRIC[task]
    if name not in METRICS:
        raise StageError(f"unknown metric {name!r}; choose one of: auto, {', '.join(METRICS)}")
    if METRICS[name][0] != task:
        raise StageError(f"metric {name!r} is for {METRICS[name][0]}, but this is a {task} task")
    return name


def higher_is_better(name: str) -> bool:
    return METRICS[name][1]


def is_at_least_as_good(score: float, reference: float, metric: str) -> bool:
    return score >= reference if higher_is_better(metric) else score <= reference


def score_model(model, features: pd.DataFrame, target: pd.Series, task: str) -> dict:
    """All metrics for the task, computed on one split."""
    predictions = model.predict(features)
    if task == "regression":
        return {
            "r2": float(skm.r2_score(target, predictions)),
            "rmse": float(np.sqrt(skm.mean_squared_error(target, predictions))),
            "mae": float(skm.mean_absolute_error(target, predictions)),
        }
    result = {
        "accuracy": float(skm.accuracy_score(target, predictions)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(target, predictions)),
        "f1_macro": float(skm.f1_score(target, predictions, average="macro", zero_division=0)),
    }
    if hasattr(model, "predict_proba"):
        probabilities = model.predict_proba(features)
        classes = list(model.classes_)
        present = set(pd.unique(target))
        if len(classes) == 2 and present == set(classes):
            result["roc_auc"] = float(skm.roc_auc_score(target, probabilities[:, 1], labels=classes))
        elif len(classes) > 2 and present == set(classes):
            result["roc_auc"] = float(skm.roc_auc_score(target, probabilities, multi_class="ovr", labels=classes))
        result["log_loss"] = float(skm.log_loss(target, probabilities, labels=classes))
    return result
