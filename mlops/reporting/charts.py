"""Charts for the reports, drawn on the server with matplotlib and inlined as SVG.

A report stays one self-contained file that loads nothing: every chart is an
``<svg>`` element in the page (text kept as text, so it is searchable and small).
One module serves the run report, the drift monitor's report and the registry
browser's model pages. Each function takes plain data and returns SVG markup.
"""

from __future__ import annotations

import io
import itertools
import math
import re

import numpy as np

PALETTE = {"train": "#1f77b4", "validation": "#ff7f0e", "test": "#2ca02c", "baseline": "#1f77b4", "live": "#d62728"}
SMALL_MULTIPLES_PER_ROW = 4
_CHART_NUMBERS = itertools.count(1)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",
            "font.size": 8,
            "axes.titlesize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.dpi": 72,
            "svg.hashsalt": "mlops",
            # Labels are user data (categories, column names): "$\\foo$" is text, never mathtext
            # (which fails on what it cannot parse), and never TeX.
            "text.parse_math": False,
            "text.usetex": False,
        }
    )
    return plt


def _svg(figure, title: str) -> str:
    """The figure as an inline <svg> with a title for screen readers; the figure is closed."""
    plt = _pyplot()
    buffer = io.StringIO()
    figure.tight_layout()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    # One self-contained page holds many charts: make their element ids unique.
    prefix = f"chart{next(_CHART_NUMBERS)}"
    text = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(r"#([A-Za-z][\w.-]*)\)", lambda m: f"#{prefix}-{m.group(1)})", text)
    text = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{prefix}-{m.group(1)}"', text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{title}" class="chart" ', 1)


def _grid(count: int, width: float = 2.8, height: float = 2.1):
    plt = _pyplot()
    columns = min(SMALL_MULTIPLES_PER_ROW, max(count, 1))
    rows = math.ceil(max(count, 1) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    for axis in axes.flat[count:]:
        axis.set_visible(False)
    return figure, list(axes.flat)


def split_distributions(frames: dict, target: str | None = None, max_features: int = 40) -> str:
    """Per feature, its distribution in each split (small multiples): densities for numbers, shares for
    categories. ``frames``: split name -> DataFrame."""
    import pandas as pd

    names = [c for c in next(iter(frames.values())).columns][:max_features]
    figure, axes = _grid(len(names))
    for axis, name in zip(axes, names):
        columns = {split: frame[name] for split, frame in frames.items() if name in frame}
        numeric = all(pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) for s in columns.values())
        if numeric:
            values = np.concatenate([s.dropna().to_numpy(dtype=float) for s in columns.values()])
            edges = np.histogram_bin_edges(values, bins=20) if len(values) else np.linspace(0, 1, 21)
            for split, series in columns.items():
                axis.hist(
                    series.dropna().to_numpy(dtype=float),
                    bins=edges,
                    density=True,
                    histtype="step",
                    color=PALETTE.get(split),
                    label=f"{split} (n={series.notna().sum()})",
                )
        else:
            shares = {split: series.astype(str).value_counts(normalize=True) for split, series in columns.items()}
            categories = list(pd.concat(shares.values()).groupby(level=0).sum().sort_values(ascending=False).index[:8])
            width = 0.8 / len(shares)
            for index, (split, share) in enumerate(shares.items()):
                axis.bar(
                    np.arange(len(categories)) + index * width,
                    [share.get(c, 0.0) for c in categories],
                    width=width,
                    color=PALETTE.get(split),
                    label=split,
                )
            axis.set_xticks(np.arange(len(categories)) + 0.4 - width / 2)
            axis.set_xticklabels([c[:10] for c in categories], rotation=45, ha="right")
        axis.set_title(name + (" (target)" if name == target else ""))
        axis.set_yticks([])
    axes[0].legend(fontsize=6, frameon=False)
    return _svg(figure, "feature distributions by split")


def shares_comparison(rows: list[dict], left: str = "baseline", right: str = "live") -> str:
    """Per feature, the share of rows in each bucket, baseline vs live (the drift monitor's buckets).
    ``rows``: FeatureDrift.to_json() records."""
    figure, axes = _grid(len(rows))
    for axis, row in zip(axes, rows):
        positions = np.arange(len(row["buckets"]))
        axis.bar(
            positions - 0.2,
            row["baseline_shares"],
            width=0.4,
            color=PALETTE[left],
            label=f"{left} (n={row['baseline_rows']})",
        )
        axis.bar(positions + 0.2, row["shares"], width=0.4, color=PALETTE[right], label=f"{right} (n={row['rows']})")
        verdict = row["verdict"]
        axis.set_title(f"{row['feature']}: {verdict}", color="#a11" if row.get("drifted") else "#222")
        axis.set_xticks([])
        axis.set_yticks([])
    if rows:
        axes[0].legend(fontsize=6, frameon=False)
    return _svg(figure, f"{left} vs {right} distributions")


def confusion_heatmap(labels: list[str], matrix: list[list[int]]) -> str:
    plt = _pyplot()
    size = max(2.5, 0.5 * len(labels) + 1.5)
    figure, axis = plt.subplots(figsize=(size, size))
    values = np.asarray(matrix)
    axis.imshow(values, cmap="Blues")
    for i in range(len(labels)):
        for j in range(len(labels)):
            axis.text(
                j,
                i,
                str(values[i, j]),
                ha="center",
                va="center",
                color="white" if values[i, j] > values.max() / 2 else "black",
            )
    axis.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels=labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    return _svg(figure, "confusion matrix")


def curves(series: list[dict], kind: str) -> str:
    """ROC or precision-recall curves: ``series`` of {"label", "x", "y", "area"}."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(3.4, 3.0))
    for item in series:
        axis.plot(item["x"], item["y"], label=f"{item['label']} ({item['area']:.3f})", linewidth=1.2)
    if kind == "roc":
        axis.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=0.8)
        axis.set_xlabel("false positive rate")
        axis.set_ylabel("true positive rate")
    else:
        axis.set_xlabel("recall")
        axis.set_ylabel("precision")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=6, frameon=False, loc="lower right" if kind == "roc" else "lower left")
    return _svg(figure, "ROC curves" if kind == "roc" else "precision-recall curves")


def calibration(series: list[dict]) -> str:
    """Reliability curves: ``series`` of {"label", "predicted", "observed"}."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(3.4, 3.0))
    axis.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=0.8)
    for item in series:
        axis.plot(item["predicted"], item["observed"], marker="o", markersize=3, linewidth=1.2, label=item["label"])
    axis.set_xlabel("mean predicted probability")
    axis.set_ylabel("observed frequency")
    axis.legend(fontsize=6, frameon=False)
    return _svg(figure, "calibration curve")


def regression_diagnostics(actual: list[float], predicted: list[float]) -> str:
    """Predicted vs actual, and residuals vs predicted."""
    plt = _pyplot()
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    figure, (left, right) = plt.subplots(1, 2, figsize=(6.8, 3.0))
    left.scatter(actual, predicted, s=6, alpha=0.6)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    left.plot([low, high], [low, high], color="#999", linestyle="--", linewidth=0.8)
    left.set_xlabel("actual")
    left.set_ylabel("predicted")
    right.scatter(predicted, actual - predicted, s=6, alpha=0.6)
    right.axhline(0, color="#999", linestyle="--", linewidth=0.8)
    right.set_xlabel("predicted")
    right.set_ylabel("residual")
    return _svg(figure, "predicted vs actual and residuals")


def horizontal_bars(
    values: dict[str, float],
    title: str,
    xlabel: str,
    highlight: str | None = None,
    errors: dict[str, float] | None = None,
) -> str:
    """One bar per name (candidates by score, features by importance)."""
    plt = _pyplot()
    names = list(values)
    figure, axis = plt.subplots(figsize=(5.0, 0.3 * len(names) + 0.8))
    colors = ["#2ca02c" if name == highlight else "#1f77b4" for name in names]
    axis.barh(
        range(len(names)),
        [values[n] for n in names],
        color=colors,
        xerr=[errors.get(n, 0.0) for n in names] if errors else None,
    )
    axis.set_yticks(range(len(names)), labels=[n[:60] for n in names])
    axis.invert_yaxis()
    axis.set_xlabel(xlabel)
    return _svg(figure, title)


def metric_over_versions(points: list[tuple[int, float]], metric: str, champion: int | None = None) -> str:
    """A model's test metric, version by version; the champion marked."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.0, 2.4))
    versions = [v for v, _ in points]
    axis.plot(versions, [s for _, s in points], marker="o", markersize=4)
    if champion in versions:
        axis.plot(
            [champion],
            [dict(points)[champion]],
            marker="*",
            markersize=12,
            color="#d62728",
            linestyle="none",
            label=f"champion v{champion}",
        )
        axis.legend(fontsize=7, frameon=False)
    axis.set_xticks(versions)
    axis.set_xlabel("version")
    axis.set_ylabel(f"test {metric}")
    return _svg(figure, f"test {metric} over versions")
