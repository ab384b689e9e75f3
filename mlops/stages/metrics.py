"""Metrics shared by training (validation split) and evaluation (test split).

Each metric declares its direction and its perfect value, so "best", "not worse
than the champion" and "skill over a trivial predictor" mean the right thing for
error metrics such as RMSE as well as for scores such as F1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.errors import StageError

if TYPE_CHECKING:
    import pandas as pd

# name -> (task, higher_is_better, perfect value)
METRICS = {
    "accuracy": ("classification", True, 1.0),
    "balanced_accuracy": ("classification", True, 1.0),
    "f1_macro": ("classification", True, 1.0),
    "roc_auc": ("classification", True, 1.0),  # binary: positive class; multiclass: one-vs-rest macro
    "log_loss": ("classification", False, 0.0),
    # Calibration: the mean squared error of the predicted class probabilities (multi-class Brier
    # score), and the expected calibration error of the top class (10 equal-width bins).
    "brier": ("classification", False, 0.0),
    "calibration_error": ("classification", False, 0.0),
    "r2": ("regression", True, 1.0),
    "rmse": ("regression", False, 0.0),
    "mae": ("regression", False, 0.0),
}
DEFAULT_METRIC = {"classification": "f1_macro", "regression": "r2"}
# Besides the ranking metric, a blessed model is never worse than the trivial predictor on these.
SANITY_METRICS = {"classification": ("accuracy", "log_loss"), "regression": ("mae", "rmse")}
CALIBRATION_BINS = 10


def resolve_metric(name: str, task: str) -> str:
    """The metric that ranks candidates: ``name``, or the task's default for 'auto'."""
    if name in ("", "auto"):
        return DEFAULT_METRIC[task]
    if name not in METRICS:
        raise StageError(f"unknown metric {name!r}; choose one of: auto, {', '.join(METRICS)}")
    if METRICS[name][0] != task:
        raise StageError(
            f"metric {name!r} is for {METRICS[name][0]}, but this is a {task} task; change 'metric' in the params file"
        )
    return name


def higher_is_better(name: str) -> bool:
    return METRICS[name][1]


def is_at_least_as_good(score: float, reference: float, metric: str) -> bool:
    return score >= reference if higher_is_better(metric) else score <= reference


def skill(score: float, baseline: float, metric: str) -> float:
    """The share of the gap between the trivial baseline and a perfect score that ``score`` closes.

    1 is perfect, 0 is no better than predicting the most frequent class (or the
    mean), negative is worse. When the baseline is already perfect, only a perfect
    score has skill 1 (and anything else 0).
    """
    perfect = METRICS[metric][2]
    gap = perfect - baseline
    if gap == 0:
        return 1.0 if score == perfect else 0.0
    return float((score - baseline) / gap)


def score_model(model, features: pd.DataFrame, target: pd.Series, task: str) -> dict:
    """Every metric of the task that this split can compute.

    ROC AUC needs every class present (a small split may miss one); a metric
    that cannot be computed is absent, and callers say so by name.
    """
    import numpy as np
    import pandas as pd
    from sklearn import metrics as skm

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
        if present <= set(classes):
            result["log_loss"] = float(skm.log_loss(target, probabilities, labels=classes))
            result.update(calibration(np.asarray(target), probabilities, classes))
    return result


def calibration(target, probabilities, classes: list) -> dict:
    """The Brier score (summed over classes, averaged over rows) and the expected calibration error.

    The calibration error bins rows by the top class's probability and averages, weighted by bin
    size, the gap between that confidence and how often the top class is right.
    """
    import numpy as np

    probabilities = np.asarray(probabilities, dtype=float)
    onehot = (np.asarray(target)[:, None] == np.asarray(classes, dtype=object)[None, :]).astype(float)
    brier = float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))
    confidence = probabilities.max(axis=1)
    correct = onehot[np.arange(len(onehot)), probabilities.argmax(axis=1)]
    bins = np.minimum((confidence * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    gap = 0.0
    for index in np.unique(bins):
        members = bins == index
        gap += members.sum() * abs(confidence[members].mean() - correct[members].mean())
    return {"brier": brier, "calibration_error": float(gap / max(len(confidence), 1))}


def trivial_model(train_target: pd.Series, task: str):
    """The predictor any model must beat: the training split's most frequent class (with its
    class priors as probabilities) or its mean, fitted on the training split only."""
    import numpy as np
    from sklearn.dummy import DummyClassifier, DummyRegressor

    estimator = DummyClassifier(strategy="prior") if task == "classification" else DummyRegressor(strategy="mean")
    features = np.zeros((len(train_target), 1))
    return _OnAnyFeatures(estimator.fit(features, train_target))


class _OnAnyFeatures:
    """A fitted dummy estimator that accepts the real feature frame (it ignores it)."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.classes_ = getattr(estimator, "classes_", None)

    def predict(self, features):
        import numpy as np

        return self.estimator.predict(np.zeros((len(features), 1)))

    def predict_proba(self, features):
        import numpy as np

        return self.estimator.predict_proba(np.zeros((len(features), 1)))


def require_metric(scores: dict, metric: str, split: str) -> float:
    """``scores[metric]``, or one line saying why this split cannot give it."""
    if metric not in scores:
        raise StageError(
            f"metric {metric!r} cannot be computed on the {split} split (it needs every class "
            "present in that split); choose another metric in the params file or add rows"
        )
    return scores[metric]
