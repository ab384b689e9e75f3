"""Distribution shift between a baseline and a new sample, decided with the sample size in mind.

A distance alone cannot tell drift from noise: the Jensen-Shannon divergence of
30 rows drawn from the very distribution they are compared with is about 0.25
(tensorflow/data-validation#216 reports 0.43 for 10), and a tiny but real
difference in a million rows is significant yet harmless. So a feature drifts
only when all three hold:

1. the effect is large: Jensen-Shannon divergence (base 2, on the baseline's own
   quantile bins) for numbers, L-infinity distance between category shares for
   categories (TFDV's comparators for each kind), at least the threshold;
2. the difference is significant for these sample sizes: a chi-squared test of
   homogeneity on the binned counts, p below ``alpha`` after a Holm correction
   over all features compared;
3. the new sample has at least ``min_rows`` rows.

A profile (:func:`profile_frame`) is the baseline's binned counts: it is small,
stored with every model version, and all the comparison needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

PROFILE_FORMAT = 1
MAX_BINS = 20
MIN_ROWS_PER_BIN = 10  # fewer bins for a small baseline, so each holds enough rows to test
MAX_CATEGORIES = 50
OTHER = "(other)"
MISSING = "(missing)"

DEFAULT_NUMERIC_THRESHOLD = 0.1  # Jensen-Shannon divergence (base 2): a 1-sd mean shift gives about 0.17-0.22
DEFAULT_CATEGORICAL_THRESHOLD = 0.1  # L-infinity distance between category shares
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_ROWS = 100


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def profile_series(series: pd.Series) -> dict:
    """The binned counts of one column: quantile bins for numbers, top categories for the rest."""
    values = series.dropna()
    missing = int(series.isna().sum())
    if _is_numeric(series) and len(values):
        numbers = values.to_numpy(dtype="float64")
        bins = int(max(2, min(MAX_BINS, len(numbers) // MIN_ROWS_PER_BIN)))
        edges = np.unique(np.quantile(numbers, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, numbers, side="right"), minlength=len(edges) + 1)
        return {
            "kind": "numeric",
            "edges": edges.tolist(),
            "counts": counts.astype(int).tolist(),
            "missing": missing,
            "rows": int(len(series)),
        }
    text = values.map(str)
    counts = text.value_counts()
    top = counts.head(MAX_CATEGORIES)
    return {
        "kind": "categorical",
        "counts": {str(k): int(v) for k, v in top.items()},
        "other": int(counts.iloc[MAX_CATEGORIES:].sum()),
        "missing": missing,
        "rows": int(len(series)),
    }


def profile_frame(frame: pd.DataFrame) -> dict:
    """A profile of every column of ``frame``."""
    return {
        "format": PROFILE_FORMAT,
        "rows": int(len(frame)),
        "columns": {str(column): profile_series(frame[column]) for column in frame.columns},
    }


def _live_counts(profile: dict, series: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(baseline counts, live counts, bucket labels) on the baseline's buckets (+ missing, + new values)."""
    missing = int(series.isna().sum())
    values = series.dropna()
    if profile["kind"] == "numeric":
        edges = np.asarray(profile["edges"], dtype="float64")
        numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype="float64")
        live = np.bincount(np.searchsorted(edges, numbers, side="right"), minlength=len(edges) + 1)
        base = np.asarray(profile["counts"], dtype="float64")
        labels = (
            [f"< {edges[0]:.4g}"]
            + [f"[{a:.4g}, {b:.4g})" for a, b in zip(edges[:-1], edges[1:])]
            + [f">= {edges[-1]:.4g}"]
            if len(edges)
            else ["all"]
        )
    else:
        known = list(profile["counts"])
        text = values.map(str)
        counted = text.value_counts()
        live = np.array([counted.get(k, 0) for k in known] + [int(counted[~counted.index.isin(known)].sum())])
        base = np.array([profile["counts"][k] for k in known] + [profile["other"]], dtype="float64")
        labels = known + [OTHER]
    base = np.append(base, profile["missing"])
    live = np.append(live, missing).astype("float64")
    return base, live, labels + [MISSING]


def jensen_shannon(base: np.ndarray, live: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two count vectors."""
    p, q = base / base.sum(), live / live.sum()
    m = (p + q) / 2

    def kl(a):
        keep = a > 0
        return float(np.sum(a[keep] * np.log2(a[keep] / m[keep])))

    return (kl(p) + kl(q)) / 2


def l_infinity(base: np.ndarray, live: np.ndarray) -> float:
    """The largest difference between two distributions' shares of one bucket."""
    return float(np.max(np.abs(base / base.sum() - live / live.sum())))


def chi_squared_p(base: np.ndarray, live: np.ndarray) -> float:
    """p-value of a chi-squared test that both samples come from one distribution."""
    from scipy.stats import chi2_contingency

    table = np.vstack([base, live])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(chi2_contingency(table, correction=False)[1])


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    adjusted, running = {}, 0.0
    count = len(ordered)
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (count - rank) * p))
        adjusted[name] = running
    return adjusted


@dataclass
class FeatureDrift:
    """One feature's comparison: effect, significance, sample sizes and the verdict."""

    feature: str
    kind: str
    measure: str
    distance: float
    threshold: float
    p_value: float
    adjusted_p: float
    alpha: float
    baseline_rows: int
    rows: int
    min_rows: int
    drifted: bool
    verdict: str  # drift | no drift | too few rows to tell | not significant
    buckets: list
    baseline_shares: list
    shares: list

    def to_json(self) -> dict:
        return asdict(self)


def compare_frame(
    profile: dict,
    frame: pd.DataFrame,
    *,
    thresholds: dict | None = None,
    numeric_threshold: float = DEFAULT_NUMERIC_THRESHOLD,
    categorical_threshold: float = DEFAULT_CATEGORICAL_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    min_rows: int = DEFAULT_MIN_ROWS,
    columns=None,
) -> list[FeatureDrift]:
    """Compare ``frame`` with ``profile`` column by column (the columns both have, or ``columns``)."""
    thresholds = thresholds or {}
    names = [c for c in (columns or profile["columns"]) if c in frame.columns and c in profile["columns"]]
    measured = {}
    for name in names:
        column = profile["columns"][name]
        base, live, labels = _live_counts(column, frame[name])
        if column["kind"] == "numeric":
            measure, distance = "jensen_shannon_divergence", jensen_shannon(base, live)
            threshold = thresholds.get(name, numeric_threshold)
        else:
            measure, distance = "l_infinity", l_infinity(base, live)
            threshold = thresholds.get(name, categorical_threshold)
        measured[name] = (column, measure, distance, threshold, chi_squared_p(base, live), base, live, labels)
    adjusted = holm({name: values[4] for name, values in measured.items()})
    results = []
    for name, (column, measure, distance, threshold, p, base, live, labels) in measured.items():
        rows = int(len(frame))
        if rows < min_rows:
            verdict = "too few rows to tell"
        elif distance < threshold:
            verdict = "no drift"
        elif adjusted[name] >= alpha:
            verdict = "not significant"
        else:
            verdict = "drift"
        results.append(
            FeatureDrift(
                feature=name,
                kind=column["kind"],
                measure=measure,
                distance=round(distance, 6),
                threshold=threshold,
                p_value=p,
                adjusted_p=adjusted[name],
                alpha=alpha,
                baseline_rows=int(column["rows"]),
                rows=rows,
                min_rows=min_rows,
                drifted=verdict == "drift",
                verdict=verdict,
                buckets=labels,
                baseline_shares=(base / base.sum()).round(6).tolist(),
                shares=(live / max(live.sum(), 1)).round(6).tolist(),
            )
        )
    return results
