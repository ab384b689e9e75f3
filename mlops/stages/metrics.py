"""Metrics shared by training (validation split) and evaluation (test split).

Each metric declares its direction and its perfect value, so "best", "not worse
than the champion" and "skill over a trivial predictor" mean the right thing for
error metrics such as RMSE as well as for scores such as F1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.errors import StageError

if TYPE_CHECKING:
    import numpy as np
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
    probabilities = None
    if task == "classification" and hasattr(model, "predict_proba"):
        probabilities = model.predict_proba(features)
    classes = getattr(model, "classes_", None)
    return scores_of_predictions(target, model.predict(features), probabilities, classes, task)


def scores_of_predictions(target, predictions, probabilities, classes, task: str) -> dict:
    """:func:`score_model` from a model's predictions (and class probabilities, None when it has none, in
    the order of ``classes``): what the evaluate stage computes once it has predicted the test split batch
    by batch, and the same numbers as on the whole table."""
    import numpy as np
    import pandas as pd
    from sklearn import metrics as skm

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
    if probabilities is not None:
        classes = list(classes)
        present = set(pd.unique(target))
        if len(classes) == 2 and present == set(classes):
            result["roc_auc"] = float(skm.roc_auc_score(target, probabilities[:, 1], labels=classes))
        elif len(classes) > 2 and present == set(classes):
            result["roc_auc"] = float(skm.roc_auc_score(target, probabilities, multi_class="ovr", labels=classes))
        if present <= set(classes):
            result["log_loss"] = float(skm.log_loss(target, probabilities, labels=classes))
            result.update(calibration(np.asarray(target), probabilities, classes))
    return result


# A split in a Parquet file is predicted this many rows at a time: the model sees one batch, and only its
# predictions (and class probabilities) are kept, never the whole table's features.
BATCH_ROWS = 65_536


def split_batches(split: pd.DataFrame | str | Path, rows: int | None = None) -> Iterator[pd.DataFrame]:
    """A split as pandas frames of at most ``rows`` rows: a Parquet file's record batches (read one at a time,
    with the types ``pd.read_parquet`` gives), or a frame already in memory as it is."""
    import pandas as pd

    if isinstance(split, pd.DataFrame):
        yield split
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Without pre-buffering: with it, the reader keeps every row group it has read until it is closed
    # (a whole 1M-row split's worth of Arrow memory by the last batch).
    parquet = pq.ParquetFile(split, pre_buffer=False)
    for batch in parquet.iter_batches(batch_size=rows or BATCH_ROWS):
        yield pa.Table.from_batches([batch], schema=parquet.schema_arrow).to_pandas()


@dataclass
class Predicted:
    """A model's predictions on a split, gathered batch by batch: the target, the predictions, the class
    probabilities (None for a regressor or a model without them) and the test rows with unseen categories."""

    target: pd.Series
    predictions: np.ndarray
    probabilities: np.ndarray | None
    classes: list | None
    unseen_categories: dict = field(default_factory=dict)

    def scores(self, task: str) -> dict:
        return scores_of_predictions(self.target, self.predictions, self.probabilities, self.classes, task)


def predict_split(model, batches, target: str, task: str, count_unseen: bool = False) -> Predicted:
    """Predict every batch of a split (:func:`split_batches`) with ``model``; only the predictions stay."""
    import numpy as np
    import pandas as pd

    from mlops.stages.features import unseen_categories

    targets: list[pd.Series] = []
    predictions: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    unseen: dict[str, int] = {}
    wants_probabilities = task == "classification" and hasattr(model, "predict_proba")
    for batch in batches:
        features = batch.drop(columns=[target])
        targets.append(batch[target])
        predictions.append(np.asarray(model.predict(features)))
        if wants_probabilities:
            probabilities.append(np.asarray(model.predict_proba(features)))
        if count_unseen:
            for column, count in unseen_categories(model, features).items():
                unseen[column] = unseen.get(column, 0) + count
    if not targets:
        raise ValueError("the split has no rows")
    # One batch (a frame given whole) keeps its index; batches of a file are numbered from 0, as
    # pd.read_parquet numbers the whole file.
    labels = targets[0] if len(targets) == 1 else pd.concat(targets, ignore_index=True)
    if isinstance(labels.dtype, pd.CategoricalDtype):
        labels = labels.astype(object)  # each batch has its own categories: compare values, not codes
    return Predicted(
        target=labels,
        predictions=predictions[0] if len(predictions) == 1 else np.concatenate(predictions),
        probabilities=(probabilities[0] if len(probabilities) == 1 else np.concatenate(probabilities))
        if wants_probabilities
        else None,
        classes=list(model.classes_) if hasattr(model, "classes_") and model.classes_ is not None else None,
        unseen_categories=unseen,
    )


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
