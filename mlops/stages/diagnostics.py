"""What the report draws about a model on held-out data: curves, calibration, residuals, importance.

Computed where the model and the data already are (the evaluate stage) and kept
as small lists of points in the Blessing artifact, so the report needs neither.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

MAX_POINTS = 200
MAX_SCATTER = 2000
IMPORTANCE_ROWS = 1000
IMPORTANCE_REPEATS = 5
# our metric -> scikit-learn scoring name (higher is better for all of them)
SCORING = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "f1_macro": "f1_macro",
    "roc_auc": "roc_auc",
    "log_loss": "neg_log_loss",
    "r2": "r2",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
}


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[list, list]:
    keep = np.unique(np.linspace(0, len(x) - 1, min(len(x), MAX_POINTS)).astype(int))
    return x[keep].round(5).tolist(), y[keep].round(5).tolist()


def classification_curves(target: pd.Series, probabilities, classes) -> dict:
    """ROC and precision-recall curves (one-vs-rest per class; the positive class alone when binary)
    and reliability (calibration) curves, from a model's class probabilities (None: it has none)."""
    from sklearn.calibration import calibration_curve

    classes = list(classes or [])
    if probabilities is None or len(classes) < 2:
        return {}
    shown = classes[1:] if len(classes) == 2 else classes
    roc, pr, reliability = [], [], []
    for cls in shown:
        truth = (target == cls).to_numpy()
        if truth.all() or not truth.any():
            continue  # this class is absent (or alone) in the split: no curve to draw
        score = probabilities[:, classes.index(cls)]
        fpr, tpr, _ = skm.roc_curve(truth, score)
        precision, recall, _ = skm.precision_recall_curve(truth, score)
        x, y = _thin(fpr, tpr)
        roc.append({"label": str(cls), "x": x, "y": y, "area": float(skm.auc(fpr, tpr))})
        x, y = _thin(recall[::-1], precision[::-1])
        pr.append({"label": str(cls), "x": x, "y": y, "area": float(skm.average_precision_score(truth, score))})
        observed, predicted = calibration_curve(truth, score, n_bins=10, strategy="quantile")
        reliability.append(
            {"label": str(cls), "predicted": predicted.round(4).tolist(), "observed": observed.round(4).tolist()}
        )
    return {"roc": roc, "precision_recall": pr, "calibration": reliability}


def regression_points(target: pd.Series, predictions) -> dict:
    """Actual and predicted values (a sample of them) for predicted-vs-actual and residual plots."""
    keep = np.unique(np.linspace(0, len(target) - 1, min(len(target), MAX_SCATTER)).astype(int))
    return {
        "actual": target.to_numpy(dtype=float)[keep].round(5).tolist(),
        "predicted": np.asarray(predictions, dtype=float)[keep].round(5).tolist(),
    }


def importance_sample(split, seed: int = 0) -> pd.DataFrame:
    """The rows permutation importance shuffles: at most IMPORTANCE_ROWS of a split (a frame, or a Parquet
    file read batch by batch), the same rows as ``frame.sample(IMPORTANCE_ROWS, random_state=seed)``."""
    if isinstance(split, pd.DataFrame):
        return split.sample(IMPORTANCE_ROWS, random_state=seed) if len(split) > IMPORTANCE_ROWS else split
    import pyarrow.parquet as pq

    from mlops.store.datasets import read_parquet_rows

    rows = pq.ParquetFile(split).metadata.num_rows
    if rows <= IMPORTANCE_ROWS:
        return pd.read_parquet(split)
    # What DataFrame.sample draws: pandas' random_state(seed) is a RandomState, and it takes .choice's rows.
    positions = np.random.RandomState(seed).choice(rows, size=IMPORTANCE_ROWS, replace=False)
    return read_parquet_rows(split, positions)


def permutation_importance(
    model, features: pd.DataFrame, target: pd.Series, metric: str, task: str, seed: int = 0
) -> dict:
    """How much the validation score drops when each feature's values are shuffled (mean and spread)."""
    from sklearn.inspection import permutation_importance as importance

    if len(features) > IMPORTANCE_ROWS:
        sample = features.sample(IMPORTANCE_ROWS, random_state=seed)
        features, target = sample, target.loc[sample.index]
    scoring = SCORING[metric]
    if scoring == "roc_auc" and len(getattr(model, "classes_", [])) > 2:
        scoring = "roc_auc_ovr"
    try:
        result = importance(
            model, features, target, scoring=scoring, n_repeats=IMPORTANCE_REPEATS, random_state=seed, n_jobs=1
        )
    except ValueError:
        return {}  # the sample cannot score this metric (a class missing): leave the chart out
    order = np.argsort(result.importances_mean)[::-1]
    return {
        "metric": metric,
        "rows": int(len(features)),
        "features": [str(features.columns[i]) for i in order],
        "mean": [round(float(result.importances_mean[i]), 6) for i in order],
        "std": [round(float(result.importances_std[i]), 6) for i in order],
    }
