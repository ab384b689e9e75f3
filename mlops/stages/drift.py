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

A feature that does not drift is "no drift" only when the samples were large
enough to see a drift of the threshold's size: each comparison reports its
minimum detectable effect (:func:`min_detectable_effect`, in the units of its
distance), and when that is above the threshold the verdict is "too little data
to tell", with the rows a batch would need.

A profile (:func:`profile_frame`) is the baseline's binned counts: it is small,
stored with every model version, and all the comparison needs.
"""

from __future__ import annotations

import functools
import math
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
# The chance of detecting a drift as large as the threshold that the monitor must have before it says
# "no drift" (1 - the false "no drift" rate); below it, the answer is "too little data to tell".
DEFAULT_POWER = 0.8
DEFAULT_MIN_ROWS = 100
NO_DRIFT, DRIFT, TOO_LITTLE_DATA, NOT_SIGNIFICANT = "no drift", "drift", "too little data to tell", "not significant"


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


@functools.lru_cache(maxsize=256)
def detectable_noncentrality(df: int, alpha: float, power: float) -> float:
    """The noncentrality a chi-squared test with ``df`` degrees of freedom, at level ``alpha``, rejects
    with probability ``power``: the lambda solving P(noncentral chi2(df, lambda) > chi2 quantile
    1 - alpha) = power (infinite when alpha is 0)."""
    from scipy.optimize import brentq
    from scipy.stats import chi2, ncx2

    if alpha <= 0:
        return math.inf
    if power <= alpha:
        return 0.0
    critical = chi2.isf(alpha, df)

    def shortfall(noncentrality: float) -> float:
        return float(ncx2.sf(critical, df, noncentrality)) - power

    high = 1.0
    while shortfall(high) < 0:
        high *= 2
    return float(brentq(shortfall, 0.0, high, xtol=1e-6))


def min_detectable_effect(
    measure: str,
    base: np.ndarray,
    rows: float,
    *,
    alpha: float,
    power: float,
    threshold: float | None = None,
    min_rows: int = 1,
) -> tuple[float, int | None]:
    """The smallest distance (in ``measure``'s units) that the chi-squared test finds, at level ``alpha``,
    with probability ``power``, between the baseline's counts ``base`` and a batch of ``rows`` rows; and,
    given ``threshold``, the rows a batch needs for that distance to be at most the threshold (None when
    no batch is enough: the baseline itself is too small).

    The test of homogeneity on the two rows of counts (n0 baseline rows, n1 batch rows, k buckets the
    baseline fills) has, when the batch's shares q differ from the baseline's p by d = q - p, a
    noncentrality lambda = n_eff * w2 with n_eff = n0 n1 / (n0 + n1) and w2 = sum(d_j^2 / p_j) (the
    chi-squared divergence, Cohen's w squared). It rejects with probability ``power`` once lambda reaches
    lambda* = :func:`detectable_noncentrality` (k - 1, alpha, power), so the detectable w2 is
    lambda* / n_eff. Expressed in the distance the threshold is set in:

    - Jensen-Shannon divergence (base 2): JS = w2 / (8 ln 2) to second order in d (both are the same
      quadratic form near p = q), so the MDE is lambda* / (8 ln 2 n_eff). For a shift of the mean of a
      normal feature, w2 grows faster than 8 ln 2 JS (1 sd: JS 0.16, w2 / (8 ln 2) 0.24), so a shift of
      this JS is, if anything, easier to see than the formula says.
    - L-infinity distance between shares: a change of d in one bucket of share p, the rest taking it
      proportionally, has the smallest w2 of all changes with that L-infinity, d^2 / (p (1 - p)); the
      worst bucket is the one with p nearest 1/2, so the MDE is sqrt(lambda* max_j p_j (1 - p_j) / n_eff).
      Every change with a larger L-infinity is found with at least that probability.

    ``alpha`` is the level each feature's test must reach: the caller divides the policy's alpha by the
    number of features compared (the first step of Holm's correction, exact for one drifting feature).
    Both distances are at most 1, and so is the MDE.
    """
    shares = base / base.sum()
    df = max(int((base > 0).sum()) - 1, 1)
    n0 = float(base.sum())
    noncentrality = detectable_noncentrality(df, float(alpha), float(power))
    if measure == "jensen_shannon_divergence":
        scale = 1 / (8 * math.log(2))  # distance = scale * w2

        def w2_for(distance: float) -> float:
            return distance / scale

        def distance_for(w2: float) -> float:
            return scale * w2
    else:
        spread = float(np.max(shares * (1 - shares))) or 0.25  # distance = sqrt(spread * w2)

        def w2_for(distance: float) -> float:
            return distance**2 / spread

        def distance_for(w2: float) -> float:
            return math.sqrt(spread * w2)

    effective = n0 * rows / (n0 + rows) if rows > 0 else 0.0
    mde = 1.0 if effective == 0 or math.isinf(noncentrality) else min(1.0, distance_for(noncentrality / effective))
    needed = None
    if threshold is not None and threshold > 0 and not math.isinf(noncentrality):
        effective_needed = noncentrality / w2_for(min(threshold, 1.0))
        if effective_needed < n0:
            needed = max(math.ceil(effective_needed * n0 / (n0 - effective_needed)), min_rows)
    return mde, needed


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
    verdict: str  # drift | no drift | too little data to tell | not significant
    buckets: list
    baseline_shares: list
    shares: list
    # The smallest distance these sample sizes detect with probability ``power`` (min_detectable_effect),
    # and the batch rows that would bring it to the threshold (None: no batch, the baseline is too small).
    min_detectable_effect: float = 0.0
    power: float = DEFAULT_POWER
    rows_needed: int | None = None

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
    power: float = DEFAULT_POWER,
    min_rows: int = DEFAULT_MIN_ROWS,
    columns=None,
) -> list[FeatureDrift]:
    """Compare ``frame`` with ``profile`` column by column (the columns both have, or ``columns``).

    Each verdict is one of: "too little data to tell" (fewer than ``min_rows`` rows, or a minimum
    detectable effect above the threshold, unless the feature drifts anyway), "drift", "no drift", or
    "not significant" (a distance at the threshold that these sample sizes cannot tell from noise).
    """
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
        mde, needed = min_detectable_effect(
            measure,
            base,
            live.sum(),
            alpha=alpha / max(len(measured), 1),
            power=power,
            threshold=threshold,
            min_rows=min_rows,
        )
        if rows < min_rows:
            verdict = TOO_LITTLE_DATA
        elif distance >= threshold and adjusted[name] < alpha:
            verdict = DRIFT
        elif mde > threshold:
            verdict = TOO_LITTLE_DATA
        elif distance < threshold:
            verdict = NO_DRIFT
        else:
            verdict = NOT_SIGNIFICANT
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
                drifted=verdict == DRIFT,
                verdict=verdict,
                buckets=labels,
                baseline_shares=(base / base.sum()).round(6).tolist(),
                shares=(live / max(live.sum(), 1)).round(6).tolist(),
                min_detectable_effect=round(mde, 6),
                power=power,
                rows_needed=needed,
            )
        )
    return results
