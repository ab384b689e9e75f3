"""Evaluate: score the chosen model on the untouched test split and decide its blessing.

A model is blessed when, on the same test rows,

1. it has skill over a trivial predictor (the training split's most frequent
   class with the class priors as probabilities, or its mean): it closes at least
   ``min_skill`` of the gap between that predictor and a perfect score
   (mlops.stages.metrics.skill), so a model that learnt nothing is never crowned,
   not even the first one;
2. it is not worse than that trivial predictor on the task's sanity metrics
   (mlops.stages.metrics.SANITY_METRICS: accuracy and log loss for a classifier,
   MAE and RMSE for a regressor), so a model that ranks well but is badly
   calibrated or wrong more often than the majority class is not crowned either;
   the reason names every metric checked. Calibration (Brier score, expected
   calibration error) is reported with the test metrics;
3. it meets the absolute floor ``min_score``, when one is set;
4. it is at least as good as the current champion, scored on the same rows
   (on the ranking metric only).

A champion that cannot be scored on this data (its features differ, or it is
stored in a format that is not loaded for safety) blocks the blessing: a new
model never replaces a champion without a like-for-like comparison; promote it
by hand if the change is intended. The champion's version is part of the
decision, so register can promote only over that same champion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlops.stages.metrics import (
    METRICS,
    SANITY_METRICS,
    Predicted,
    is_at_least_as_good,
    predict_split,
    require_metric,
    skill,
    split_batches,
    trivial_model,
)
from mlops.store import ObjectStore, model_io
from mlops.store.registry import ModelRegistry


@dataclass
class Blessing:
    """The decision and everything it was based on (stored as the Blessing artifact)."""

    blessed: bool
    reason: str
    metric: str
    score: float
    baseline_score: float
    skill: float
    min_skill: float
    min_score: float | None
    champion_version: int | None
    champion_score: float | None = None
    champion_error: str | None = None
    test_rows: int = 0
    test_metrics: dict = field(default_factory=dict)
    baseline_metrics: dict = field(default_factory=dict)
    champion_metrics: dict = field(default_factory=dict)
    # Test rows whose value a categorical feature never had in training, by column.
    unseen_categories: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def optional_float(name: str, text: str | None) -> float | None:
    """A number given as text (KFP parameters cannot be None locally): "" means not set."""
    from mlops.errors import StageError

    if text is None or str(text).strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise StageError(f"{name} must be a number or empty, got {text!r}") from None


def confusion(predicted: Predicted) -> tuple[list[str], list[list[int]]]:
    """Labels (as text) and the confusion matrix over every class the model or the data knows."""
    labels = sorted(set(predicted.classes or []) | set(pd.unique(predicted.target)), key=str)
    matrix = skm.confusion_matrix(predicted.target, predicted.predictions, labels=labels)
    return [str(label) for label in labels], matrix.astype(int).tolist()


def roc_points(predicted: Predicted, max_points: int = 200) -> dict | None:
    """ROC curve for a binary classifier (positive class = model.classes_[1])."""
    classes = predicted.classes or []
    if len(classes) != 2 or predicted.probabilities is None or set(pd.unique(predicted.target)) != set(classes):
        return None
    scores = predicted.probabilities[:, 1]
    fpr, tpr, thresholds = skm.roc_curve(predicted.target, scores, pos_label=classes[1])
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), max_points)).astype(int))
    # sklearn's first threshold is +inf, which JSON and KFP cannot hold.
    finite = np.where(np.isfinite(thresholds), thresholds, 1.0)
    return {
        "positive_class": str(classes[1]),
        "fpr": fpr[keep].tolist(),
        "tpr": tpr[keep].tolist(),
        "thresholds": finite[keep].tolist(),
    }


def champion_scores(store: ObjectStore, model_name: str, test, target: str, task: str) -> dict | None:
    """The champion's version and metrics on this test split (a frame or a Parquet file, predicted batch
    by batch), or why it could not be scored; None when the model has no champion."""
    registry = ModelRegistry(store)
    champion = registry.champion(model_name)
    if champion is None:
        return None
    if model_io.FILE_NAME not in champion.files:
        return {
            "version": champion.version,
            "error": f"it is stored as {', '.join(sorted(champion.files))}, a format that is not loaded "
            "for safety (pickle)",
        }
    try:
        model = model_io.loads(registry.read_file(champion, model_io.FILE_NAME), source=f"champion {champion.ref}")
        scores = predict_split(model, split_batches(test), target, task).scores(task)
        return {"version": champion.version, "test_metrics": scores}
    except Exception as error:  # noqa: BLE001 - a champion trained on other columns fails in many ways
        return {"version": champion.version, "error": f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"}


def decide_blessing(
    test_metrics: dict,
    baseline_metrics: dict,
    metric: str,
    min_skill: float,
    min_score: float | None,
    champion: dict | None,
    test_rows: int = 0,
) -> Blessing:
    """The blessing from the test scores, the trivial baseline, the floor and the champion."""
    score = require_metric(test_metrics, metric, "test")
    baseline = require_metric(baseline_metrics, metric, "test")
    gained = skill(score, baseline, metric)
    decision = Blessing(
        blessed=False,
        reason="",
        metric=metric,
        score=score,
        baseline_score=baseline,
        skill=gained,
        min_skill=min_skill,
        min_score=min_score,
        champion_version=champion["version"] if champion else None,
        test_rows=test_rows,
        test_metrics=test_metrics,
        baseline_metrics=baseline_metrics,
    )
    versus = (
        f"test {metric} {score:.4f} has skill {gained:.2f} over a trivial predictor ({baseline:.4f}; "
        f"minimum {min_skill:.2f})"
    )
    if gained < min_skill:
        decision.reason = f"{versus}: it learnt too little"
        return decision
    checked, worse = sanity_check(test_metrics, baseline_metrics, metric)
    if worse:
        decision.reason = f"{versus}, but it is worse than the trivial predictor on {worse}" + (
            f" (not worse on {checked})" if checked else ""
        )
        return decision
    sane = f"; not worse than the trivial predictor on {checked}" if checked else ""
    if min_score is not None and not is_at_least_as_good(score, min_score, metric):
        decision.reason = f"test {metric} {score:.4f} does not meet the floor {min_score:.4f}"
        return decision
    if champion is None:
        decision.blessed = True
        decision.reason = f"{versus}; no champion yet{sane}"
        return decision
    if "error" in champion:
        decision.champion_error = champion["error"]
        decision.reason = f"champion v{champion['version']} could not be scored on this test data ({champion['error']})"
        return decision
    decision.champion_metrics = champion["test_metrics"]
    reference = require_metric(champion["test_metrics"], metric, "test")
    decision.champion_score = reference
    if not is_at_least_as_good(score, reference, metric):
        decision.reason = f"test {metric} {score:.4f} is worse than champion v{champion['version']} ({reference:.4f})"
        return decision
    decision.blessed = True
    decision.reason = f"{versus}; not worse than champion v{champion['version']} ({reference:.4f}){sane}"
    return decision


def sanity_check(test_metrics: dict, baseline_metrics: dict, metric: str) -> tuple[str, str]:
    """The sanity metrics the model is not worse than the trivial predictor on, and those it is worse on,
    each as "name score vs trivial" text ("" when none); a metric this split cannot compute is named as such."""
    held: list[str] = []
    worse: list[str] = []
    for name in SANITY_METRICS[METRICS[metric][0]]:
        if name == metric:
            continue
        if name not in test_metrics or name not in baseline_metrics:
            held.append(f"{name} (not computable on this split)")
            continue
        text = f"{name} {test_metrics[name]:.4f} vs {baseline_metrics[name]:.4f}"
        (held if is_at_least_as_good(test_metrics[name], baseline_metrics[name], name) else worse).append(text)
    return ", ".join(held), ", ".join(worse)


@dataclass
class Evaluation:
    """The blessing plus what the report and the KFP UI show of the test split."""

    blessing: Blessing
    confusion_matrix: dict | None = None
    roc: dict | None = None
    diagnostics: dict = field(default_factory=dict)


def evaluate_model(
    model,
    train: pd.DataFrame | str | Path,
    test: pd.DataFrame | str | Path,
    target: str,
    task: str,
    metric: str,
    min_skill: float,
    min_score: float | None,
    store: ObjectStore,
    model_name: str,
    validation: pd.DataFrame | str | Path | None = None,
    seed: int = 0,
) -> Evaluation:
    """Everything the evaluate stage decides, and what the report draws of it.

    Each split is a frame or a Parquet file. From a file, the test split is read in batches of
    BATCH_ROWS rows (the model and the champion predict each, and only their predictions are kept),
    the training split's target column alone, and the validation rows permutation importance samples:
    the same numbers as from the whole tables, without them in memory.
    """
    from mlops.stages import diagnostics

    predicted = predict_split(model, split_batches(test), target, task, count_unseen=True)
    rows = len(predicted.target)
    if isinstance(train, pd.DataFrame):
        train_target = train[target]
    else:
        train_target = pd.read_parquet(train, columns=[target])[target]
    trivial = trivial_model(train_target, task)
    nothing = np.zeros((rows, 0))  # the trivial predictor looks at no feature
    baseline = Predicted(
        target=predicted.target,
        predictions=trivial.predict(nothing),
        probabilities=trivial.predict_proba(nothing) if task == "classification" else None,
        classes=list(trivial.classes_) if trivial.classes_ is not None else None,
    )
    test_metrics, baseline_metrics = predicted.scores(task), baseline.scores(task)
    champion = champion_scores(store, model_name, test, target, task)
    blessing = decide_blessing(test_metrics, baseline_metrics, metric, min_skill, min_score, champion, rows)
    blessing.unseen_categories = predicted.unseen_categories
    result = Evaluation(blessing=blessing)
    if task == "classification":
        categories, matrix = confusion(predicted)
        result.confusion_matrix = {"labels": categories, "matrix": matrix}
        result.roc = roc_points(predicted)
        result.diagnostics.update(
            diagnostics.classification_curves(predicted.target, predicted.probabilities, predicted.classes)
        )
    else:
        result.diagnostics["regression"] = diagnostics.regression_points(predicted.target, predicted.predictions)
    if validation is not None:
        sample = diagnostics.importance_sample(validation, seed)
        result.diagnostics["importance"] = diagnostics.permutation_importance(
            model, sample.drop(columns=[target]), sample[target], metric, task, seed
        )
    return result
