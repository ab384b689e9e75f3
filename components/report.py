"""Report: one self-contained HTML page per run, for a person to open in a browser,
and a short Markdown summary for the KFP UI.

Sections follow the pipeline: data, validation, candidates, test metrics, the
blessing decision and the lineage. Pure functions of the run's records: no I/O.
"""

from __future__ import annotations

import json
from html import escape

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.best{background:#eef8ee}
.ok{color:#17632a;font-weight:bold}.no{color:#a11;font-weight:bold}
pre{background:#f7f7f7;padding:1rem;overflow:auto;font-size:.8rem}
iframe{width:100%;height:36rem;border:1px solid #ccc}.muted{color:#666}
"""


def _table(headers: list[str], rows: list[list], left: int = 1, highlight: int | None = None) -> str:
    def cell(tag, value, index):
        css = ' class="l"' if index < left else ""
        return f"<{tag}{css}>{escape(str(value))}</{tag}>"

    head = "".join(cell("th", h, i) for i, h in enumerate(headers))
    body = "".join(
        ("<tr class='best'>" if r == highlight else "<tr>") + "".join(cell("td", v, i) for i, v in enumerate(row))
        + "</tr>" for r, row in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_report(*, version: dict, validation: dict, schema_description: dict, leaderboard: list[dict],
                  evaluation: dict) -> str:
    """The run report as an HTML string.

    ``version``: the registered model version (ModelVersion.to_json(), lineage
    included); ``validation``: tfdv_tool's result; ``schema_description``: the
    Schema artifact's metadata; ``leaderboard``: every candidate with its
    validation metrics; ``evaluation``: the Blessing artifact's content.
    """
    lineage = version["lineage"]
    data, blessing = lineage["data"], lineage["blessing"]
    metric = lineage["params"]["metric"]
    name = version["name"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Run report: {escape(name)}</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Run report: {escape(name)} v{version['version']}</h1>",
             f"<p class='muted'>run {escape(str(lineage['kfp']['run_name']))} · code "
             f"{escape(str(lineage['code']['version']))}</p>"]

    rows = data["rows"]
    parts.append("<h2>Data</h2>")
    renamed = {original: clean for original, clean in data["columns"].items() if original != clean}
    parts.append(_table(["", "value"], [
        ["source", data["source"]],
        ["data version", data["ref"]],
        ["rows (train / validation / test)", f"{rows['train']} / {rows['validation']} / {rows['test']}"],
        ["dropped (missing target)", data["dropped_missing_target"]],
        ["target", data["target"]],
        ["renamed columns", ", ".join(f"{a} → {b}" for a, b in renamed.items()) or "none"],
        ["split", json.dumps(lineage["split"], sort_keys=True)],
    ], left=2))

    parts.append("<h2>Validation (TFDV)</h2>")
    origin = schema_description.get("origin") or ""
    parts.append(f"<p class='ok'>No anomalies against the {escape(schema_description.get('source', '?'))} schema "
                 f"{escape(origin)} (TFDV {escape(validation['tfdv_version'])}).</p>")
    skew = validation.get("skew", [])
    if skew:
        parts.append("<p>Train vs validation distance per feature (reported, not enforced):</p>")
        parts.append(_table(["feature", "measure", "value", "threshold"],
                            [[s["feature"], s["measure"], _fmt(s["value"]), s["threshold"]] for s in skew], left=2))
    train_features = validation.get("features", {}).get("train", [])
    numeric = [f for f in train_features if f["type"] == "numeric"]
    categorical = [f for f in train_features if f["type"] == "categorical"]
    if numeric:
        parts.append("<p>Training split, numeric features:</p>")
        parts.append(_table(["feature", "missing", "mean", "std dev", "min", "max", "zeros"],
                            [[f["feature"], f["missing"], _fmt(f["mean"]), _fmt(f["std_dev"]), _fmt(f["min"]),
                              _fmt(f["max"]), f["zeros"]] for f in numeric]))
    if categorical:
        parts.append("<p>Training split, categorical features:</p>")
        parts.append(_table(["feature", "missing", "unique", "most frequent"],
                            [[f["feature"], f["missing"], f["unique"], f["top"]] for f in categorical]))
    parts.append("<p class='muted'>TFDV's own facets view is the run's <code>statistics_view</code> artifact (in "
                 "the KFP UI); it loads its web components from the internet, so this page, which loads nothing, "
                 "does not embed it.</p>")

    parts.append("<h2>Candidates</h2>")
    chosen = lineage["params"]["candidate"]["id"]
    names = sorted({k for c in leaderboard for k in c["validation_metrics"]})
    table_rows, best_row = [], None
    for index, result in enumerate(leaderboard):
        candidate = result["candidate"]
        if candidate["id"] == chosen:
            best_row = index
        table_rows.append([candidate["id"], json.dumps(candidate["params"], sort_keys=True)]
                          + [_fmt(result["validation_metrics"].get(n, "")) for n in names])
    parts.append(f"<p>Ranked by validation <b>{escape(metric)}</b>; best: <b>{escape(chosen)}</b>.</p>")
    parts.append(_table(["candidate", "params"] + names, table_rows, left=2, highlight=best_row))

    parts.append("<h2>Test metrics</h2>")
    test, trivial = evaluation["test_metrics"], evaluation["baseline_metrics"]
    champion = evaluation.get("champion_metrics") or {}
    header = ["metric", "this model", "trivial predictor"] + (
        [f"champion v{evaluation['champion_version']}"] if champion else [])
    parts.append(_table(header, [[n, _fmt(v), _fmt(trivial.get(n, ""))] + ([_fmt(champion.get(n, ""))]
                                                                          if champion else [])
                                 for n, v in sorted(test.items())]))
    if evaluation.get("confusion_matrix"):
        matrix = evaluation["confusion_matrix"]
        parts.append("<p>Confusion matrix (rows: true, columns: predicted):</p>")
        parts.append(_table(["true \\ predicted"] + matrix["labels"],
                            [[label] + counts for label, counts in zip(matrix["labels"], matrix["matrix"])]))

    parts.append("<h2>Decision</h2>")
    verdict = "BLESSED" if blessing["blessed"] else "NOT BLESSED"
    parts.append(f"<p class='{'ok' if blessing['blessed'] else 'no'}'>{verdict}: {escape(blessing['reason'])}</p>")
    promoted = "champion" in version.get("aliases", [])
    parts.append(f"<p>Registered as <b>{escape(name)}@{version['version']}</b>; "
                 + ("the <code>champion</code> alias points to it." if promoted
                    else "the <code>champion</code> alias was not moved to it.") + "</p>")

    parts.append("<h2>Lineage</h2>")
    parts.append(f"<pre>{escape(json.dumps(lineage, indent=2, sort_keys=True))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_summary(*, version: dict, evaluation: dict) -> str:
    """A few lines of Markdown for the KFP UI's Markdown viewer."""
    lineage = version["lineage"]
    metric = lineage["params"]["metric"]
    blessing = lineage["blessing"]
    lines = [f"## {version['name']} v{version['version']}", "",
             f"- data: `{lineage['data']['ref']}` ({sum(lineage['data']['rows'].values())} rows)",
             f"- best candidate: `{lineage['params']['candidate']['id']}`",
             f"- test {metric}: **{evaluation['score']:.4f}** (trivial predictor {evaluation['baseline_score']:.4f}, "
             f"skill {evaluation['skill']:.2f})",
             f"- {'blessed' if blessing['blessed'] else 'not blessed'}: {blessing['reason']}",
             f"- champion: {'this version' if 'champion' in version.get('aliases', []) else 'unchanged'}"]
    return "\n".join(lines) + "\n"
