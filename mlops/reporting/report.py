"""Report: one self-contained HTML page per run, for a person to open in a browser, and a short
Markdown summary for the KFP UI.

Sections follow the pipeline: data (with each feature's distribution by split),
validation (and train-vs-validation shift, shown with the sample sizes it comes
from), candidates, the test (metrics beside a trivial predictor and the champion;
confusion matrix, ROC, precision-recall and calibration curves, or predicted vs
actual and residuals), permutation importance, the blessing decision, and the
lineage; a local run adds which tasks came from the cache, and why (``with_cache_section``).
Charts are inline SVG (mlops.reporting.charts): the page loads nothing.
"""

from __future__ import annotations

import json
from html import escape

from mlops.reporting import charts
from mlops.reporting.html import cell, definitions, page, table
from mlops.stages.train import describe_training_rows


def shift_section(rows: list[dict], left: str, right: str) -> list[str]:
    """Distribution shift per feature, with the sample sizes and whether they can tell at all."""
    if not rows:
        return []
    told = [r for r in rows if r["verdict"] not in ("too few rows to tell", "too little data to tell")]
    parts = [
        f"<p>Shift between {left} and {right}, per feature. A feature counts as shifted only when its "
        "distance reaches the threshold AND the difference is significant for these sample sizes "
        "(chi-squared, Holm-corrected) AND there are enough rows to tell "
        f"(at least {rows[0]['min_rows']}).</p>"
    ]
    if not told:
        parts.append(
            f"<p class='muted'>{right.capitalize()} has {rows[0]['rows']} rows: too few to tell a shift "
            "from sampling noise, so no distance below is an alarm.</p>"
        )
    parts.append(
        table(
            ["feature", "measure", "distance", "threshold", "p (Holm)", f"{left} n", f"{right} n", "verdict"],
            [
                [
                    r["feature"],
                    r["measure"],
                    cell(r["distance"]),
                    r["threshold"],
                    f"{r['adjusted_p']:.2g}",
                    r["baseline_rows"],
                    r["rows"],
                    r["verdict"],
                ]
                for r in rows
            ],
            left=2,
        )
    )
    return parts


def lineage_section(version: dict) -> list[str]:
    """The lineage record as a person reads it, then the raw record."""
    lineage = version["lineage"]
    data, params, blessing = lineage["data"], lineage["params"], lineage["blessing"]
    environment = lineage.get("environment", {})
    items = [
        ("data version", data["ref"]),
        ("source", data["source"]),
        ("rows", json.dumps(data["rows"])),
        ("target", data["target"]),
        ("split", json.dumps(lineage["split"], sort_keys=True)),
        ("training rows", describe_training_rows(lineage.get("training", {}).get("rows")) or "-"),
        (
            "schema",
            f"{lineage.get('validation', {}).get('schema_source', '?')} "
            f"{lineage.get('validation', {}).get('schema_origin', '')}".strip(),
        ),
        ("code version", lineage["code"]["version"]),
        ("locks", ", ".join(f"{k} {v[:12]}" for k, v in environment.get("locks", {}).items()) or "-"),
        ("packages", ", ".join(f"{k} {v}" for k, v in environment.get("packages", {}).items()) or "-"),
        ("search space", f"sha256 {params.get('search_space_sha256', '')[:12]}"),
        ("chosen candidate", f"{params['candidate']['id']} {json.dumps(params['candidate'].get('params', {}))}"),
        ("ranking metric", params["metric"]),
        ("seed", lineage.get("seed")),
        ("validation metrics", json.dumps(lineage.get("metrics", {}).get("validation", {}), sort_keys=True)),
        ("test metrics", json.dumps(lineage.get("metrics", {}).get("test", {}), sort_keys=True)),
        ("blessing", f"{'blessed' if blessing['blessed'] else 'not blessed'}: {blessing['reason']}"),
        (
            "compared with",
            f"champion v{blessing['champion_version']}" if blessing.get("champion_version") else "no champion",
        ),
        ("KFP run", f"{lineage.get('kfp', {}).get('run_name')} ({lineage.get('kfp', {}).get('run_id')})"),
        ("model file", f"{lineage.get('model', {}).get('file')} sha256 {lineage.get('model', {}).get('sha256')}"),
    ]
    return [
        "<h2>Lineage</h2>",
        definitions(items),
        "<details><summary>The whole lineage record (JSON)</summary>"
        f"<pre>{escape(json.dumps(lineage, indent=2, sort_keys=True))}</pre></details>",
    ]


def features_section(decisions: dict) -> list[str]:
    """How prepare used each feature column (mlops.stages.features): kind and why, dropped ones first."""
    if not decisions:
        return []
    order = sorted(decisions, key=lambda c: (decisions[c]["kind"] not in ("id", "text", "drop"), str(c)))
    dropped = sum(decisions[c]["kind"] in ("id", "text", "drop") for c in decisions)
    return [
        "<h2>Features</h2>",
        f"<p>Each column's kind, decided once on the training split ({dropped} dropped); the params file's "
        "<code>features:</code> section overrides any of them.</p>",
        table(
            ["column", "kind", "why"],
            [[c, decisions[c]["kind"], decisions[c]["reason"]] for c in order],
            left=3,
        ),
    ]


def split_columns(paths: dict[str, str]) -> dict:
    """Each split's Parquet file (split name -> path) read a column at a time
    (mlops.stages.split.SplitColumns): :func:`render_report`'s ``frames`` and :func:`train_validation_shift`'s
    input, with every row and never a whole split in memory."""
    from mlops.stages.split import SplitColumns

    return {name: SplitColumns(path) for name, path in paths.items()}


def train_validation_shift(frames: dict) -> list[dict]:
    """The shift between the train and validation splits per feature (mlops.stages.drift.FeatureDrift as
    JSON): :func:`render_report`'s ``shift``. ``frames``: DataFrames or :func:`split_columns`."""
    from mlops.stages import drift

    return [row.to_json() for row in drift.compare_frame(drift.profile_frame(frames["train"]), frames["validation"])]


def render_report(
    *,
    version: dict,
    validation: dict,
    schema_description: dict,
    leaderboard: list[dict],
    evaluation: dict,
    frames: dict | None = None,
    shift: list[dict] | None = None,
) -> str:
    """The run report as an HTML string.

    ``version``: the registered model version (ModelVersion.to_json(), lineage
    included); ``validation``: tfdv_tool's result; ``schema_description``: the
    Schema artifact's metadata; ``leaderboard``: every candidate with its
    validation metrics; ``evaluation``: the Blessing artifact's content;
    ``frames``: split name -> DataFrame or :func:`split_columns` (for the distributions); ``shift``:
    train-vs-validation FeatureDrift rows (mlops.stages.drift).
    """
    lineage = version["lineage"]
    data, blessing = lineage["data"], lineage["blessing"]
    metric = lineage["params"]["metric"]
    name = version["name"]
    verdict = "BLESSED" if blessing["blessed"] else "NOT BLESSED"
    promoted = "champion" in version.get("aliases", [])
    body = [
        f"<h1>Run report: {escape(name)} v{version['version']} "
        f"<span class='badge {'ok' if blessing['blessed'] else 'no'}'>{verdict}</span></h1>",
        f"<p class='muted'>run {escape(str(lineage['kfp']['run_name']))} · code "
        f"{escape(str(lineage['code']['version']))}"
        + (f" · registered {escape(version['created_at'])}" if version.get("created_at") else "")
        + "</p>",
    ]

    rows = data["rows"]
    body.append("<h2>Data</h2>")
    renamed = {original: clean for original, clean in data["columns"].items() if original != clean}
    body.append(
        table(
            ["", "value"],
            [
                ["source", data["source"]],
                ["data version", data["ref"]],
                ["rows (train / validation / test)", f"{rows['train']} / {rows['validation']} / {rows['test']}"],
                ["trained on", describe_training_rows(lineage.get("training", {}).get("rows")) or "-"],
                ["dropped (missing target)", data["dropped_missing_target"]],
                ["target", data["target"]],
                ["renamed columns", ", ".join(f"{a} → {b}" for a, b in renamed.items()) or "none"],
            ],
            left=2,
        )
    )
    body.extend(features_section(lineage.get("features") or {}))
    if frames:
        body.append("<p>Each feature's distribution in each split:</p>")
        body.append(f"<div class='charts'>{charts.split_distributions(frames, target=data['target'])}</div>")

    body.append("<h2>Validation (TFDV)</h2>")
    origin = schema_description.get("origin") or ""
    body.append(
        f"<p class='ok'>No anomalies against the {escape(schema_description.get('source', '?'))} schema "
        f"{escape(origin)} (TFDV {escape(validation['tfdv_version'])}).</p>"
    )
    body.extend(shift_section(shift or [], "train", "validation"))
    body.append(
        "<p class='muted'>TFDV's own facets view is the run's <code>statistics_view</code> artifact (in "
        "the KFP UI); it loads its web components from the internet, so this page, which loads nothing, "
        "does not embed it.</p>"
    )

    body.append("<h2>Candidates</h2>")
    chosen = lineage["params"]["candidate"]["id"]
    names = sorted({k for c in leaderboard for k in c["validation_metrics"]})
    table_rows, best_row, scores, chosen_label = [], None, {}, None
    for index, result in enumerate(leaderboard):
        candidate = result["candidate"]
        if candidate["id"] == chosen:
            best_row = index
        if metric in result["validation_metrics"]:
            label = f"{candidate['id']} {json.dumps(candidate['params'], sort_keys=True)}"
            scores[label] = result["validation_metrics"][metric]
            if candidate["id"] == chosen:
                chosen_label = label
        table_rows.append(
            [candidate["id"], json.dumps(candidate["params"], sort_keys=True)]
            + [cell(result["validation_metrics"].get(n, "")) for n in names]
        )
    body.append(f"<p>Ranked by validation <b>{escape(metric)}</b>; best: <b>{escape(chosen)}</b>.</p>")
    if scores:
        body.append(
            "<div class='charts'>"
            + charts.horizontal_bars(scores, "candidates compared", f"validation {metric}", highlight=chosen_label)
            + "</div>"
        )
    body.append(table(["candidate", "params"] + names, table_rows, left=2, highlight=best_row))

    body.append("<h2>Test</h2>")
    test, trivial = evaluation["test_metrics"], evaluation["baseline_metrics"]
    champion = evaluation.get("champion_metrics") or {}
    header = ["metric", "this model", "trivial predictor"] + (
        [f"champion v{evaluation['champion_version']}"] if champion else []
    )
    body.append(
        table(
            header,
            [
                [n, cell(v), cell(trivial.get(n, ""))] + ([cell(champion.get(n, ""))] if champion else [])
                for n, v in sorted(test.items())
            ],
        )
    )
    unseen = evaluation.get("unseen_categories") or {}
    if unseen:
        body.append(
            "<p class='no'>Categories the model never saw in training, in test rows (they set no one-hot "
            "column, or hash to an unlearnt bucket): "
            + ", ".join(f"{escape(str(c))}: {n} rows" for c, n in sorted(unseen.items()))
            + "</p>"
        )
    else:
        body.append("<p class='muted'>Unseen categories in test rows: none.</p>")
    diagnostics = evaluation.get("diagnostics") or {}
    figures = []
    if evaluation.get("confusion_matrix"):
        matrix = evaluation["confusion_matrix"]
        figures.append(charts.confusion_heatmap(matrix["labels"], matrix["matrix"]))
    if diagnostics.get("roc"):
        figures.append(charts.curves(diagnostics["roc"], "roc"))
    if diagnostics.get("precision_recall"):
        figures.append(charts.curves(diagnostics["precision_recall"], "pr"))
    if diagnostics.get("calibration"):
        figures.append(charts.calibration(diagnostics["calibration"]))
    if diagnostics.get("regression"):
        figures.append(
            charts.regression_diagnostics(diagnostics["regression"]["actual"], diagnostics["regression"]["predicted"])
        )
    if figures:
        body.append("<div class='charts'>" + "".join(figures) + "</div>")
    importance = diagnostics.get("importance")
    if importance and importance.get("features"):
        body.append(
            f"<h2>Permutation importance</h2><p>How much validation {escape(importance['metric'])} drops "
            f"when a feature's values are shuffled ({importance['rows']} validation rows, 5 repeats):</p>"
        )
        shown = dict(zip(importance["features"][:20], importance["mean"][:20]))
        spread = dict(zip(importance["features"][:20], importance["std"][:20]))
        body.append(
            "<div class='charts'>"
            + charts.horizontal_bars(
                shown, "permutation importance", f"drop in validation {importance['metric']}", errors=spread
            )
            + "</div>"
        )

    body.append("<h2>Decision</h2>")
    body.append(f"<p class='{'ok' if blessing['blessed'] else 'no'}'>{verdict}: {escape(blessing['reason'])}</p>")
    body.append(
        f"<p>Registered as <b>{escape(name)}@{version['version']}</b>; "
        + (
            "the <code>champion</code> alias points to it."
            if promoted
            else "the <code>champion</code> alias was not moved to it."
        )
        + "</p>"
    )
    body.extend(lineage_section(version))
    return page(f"Run report: {name} v{version['version']}", body)


def cache_section(record: dict) -> list[str]:
    """Whether each task came from the cache and, when not, what changed in its key since the last
    run of the same pipeline and model (a cache record: mlops.reporting.cache_explain)."""
    from mlops.reporting import cache_explain

    found = cache_explain.explanations(record)
    if not found:
        return []
    against = f"the last run of this pipeline and model ({record['previous']})" if record.get("previous") else None
    parts = [
        "<h2>Cache</h2>",
        f"<p>{sum(e.cached for e in found)} of {len(found)} tasks came from the cache. A task's cache key "
        "holds its data version, parameters, code (the component's source) and image; "
        + (f"what changed is said against {escape(against)}." if against else "no earlier run to compare with.")
        + "</p>",
        table(
            ["task", "from the cache", "why"],
            [[e.task, "yes" if e.cached else "no", e.reason] for e in found],
            left=3,
        ),
    ]
    parts.extend(f"<p class='no'>Note: {escape(note)}.</p>" for note in sorted({e.note for e in found if e.note}))
    return parts


def with_cache_section(html: str, record: dict) -> str:
    """A run report (``render_report``) with the Cache section before its lineage (or at its end)."""
    section = "\n".join(cache_section(record))
    if not section:
        return html
    marker = "<h2>Lineage</h2>" if "<h2>Lineage</h2>" in html else "</body>"
    return html.replace(marker, f"{section}\n{marker}", 1)


def render_summary(*, version: dict, evaluation: dict) -> str:
    """A few lines of Markdown for the KFP UI's Markdown viewer."""
    lineage = version["lineage"]
    metric = lineage["params"]["metric"]
    blessing = lineage["blessing"]
    lines = [
        f"## {version['name']} v{version['version']}",
        "",
        f"- data: `{lineage['data']['ref']}` ({sum(lineage['data']['rows'].values())} rows)",
        f"- best candidate: `{lineage['params']['candidate']['id']}`",
        *(
            [f"- trained on {trained}"]
            if (trained := describe_training_rows(lineage.get("training", {}).get("rows")))
            else []
        ),
        f"- test {metric}: **{evaluation['score']:.4f}** (trivial predictor {evaluation['baseline_score']:.4f}, "
        f"skill {evaluation['skill']:.2f})",
        f"- {'blessed' if blessing['blessed'] else 'not blessed'}: {blessing['reason']}",
        f"- champion: {'this version' if 'champion' in version.get('aliases', []) else 'unchanged'}",
    ]
    return "\n".join(lines) + "\n"


def report_key(model_name: str, version: int) -> str:
    """Where a run's report is kept in the store, beside the model version it describes."""
    return f"reports/{model_name}/v{version:06d}.html"
