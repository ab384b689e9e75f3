"""Report: one self-contained HTML page per run, for a person to open in a browser.

Sections follow the pipeline: data, validation (with TFDV's own view),
candidates, test metrics, the blessing decision and the lineage record.
"""

import json
from html import escape

from kfp.dsl import HTML, Input, Output

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


def render_report(*, model_name: str, ingest: dict, validation: dict, statistics_html: str, selection: dict,
                  evaluation: dict, registration: dict) -> str:
    """The run report as an HTML string (pure: no I/O)."""
    metric = selection["metric"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Run report: {escape(model_name)}</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Run report: {escape(model_name)} v{registration['version']}</h1>",
             f"<p class='muted'>store {escape(registration['store'])} · run {escape(str(registration['lineage']['kfp']['run_name']))}</p>"]

    rows = ingest["rows"]
    parts.append("<h2>Data</h2>")
    parts.append(_table(["", "value"], [
        ["source", registration["lineage"]["data"]["uri"]],
        ["data version", registration["lineage"]["data"].get("ref") or "-"],
        ["content hash", ingest["content_hash"]],
        ["rows (train / validation / test)", f"{rows['train']} / {rows['validation']} / {rows['test']}"],
        ["dropped (missing target)", ingest["dropped_missing_target"]],
        ["target", ingest["target"]],
        ["split", json.dumps(ingest["split"], sort_keys=True)],
    ], left=2))

    parts.append("<h2>Validation (TFDV)</h2>")
    parts.append(f"<p class='ok'>No anomalies against the {escape(validation['schema_source'])} schema "
                 f"(TFDV {escape(validation['tfdv_version'])}).</p>")
    skew = validation.get("skew", [])
    if skew:
        parts.append("<p>Train vs validation distance per feature (reported, not enforced):</p>")
        parts.append(_table(["feature", "measure", "value", "threshold", "over"],
                            [[s["feature"], s["measure"], _fmt(s["value"]), s["threshold"],
                              "yes" if s["exceeded"] else ""] for s in skew], left=2))
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
    parts.append("<p class='muted'>TFDV's own facets view (its web components load from the internet):</p>")
    parts.append(f"<iframe title='TFDV statistics' srcdoc=\"{escape(statistics_html)}\"></iframe>")

    parts.append("<h2>Candidates</h2>")
    names = sorted({k for c in selection["candidates"] for k in c["validation_metrics"]})
    table_rows, best_row = [], None
    for index, result in enumerate(selection["candidates"]):
        candidate = result["candidate"]
        if candidate["id"] == selection["best"]:
            best_row = index
        table_rows.append([candidate["id"], json.dumps(candidate["params"], sort_keys=True)]
                          + [_fmt(result["validation_metrics"].get(n, "")) for n in names])
    parts.append(f"<p>Ranked by validation <b>{escape(metric)}</b>; best: <b>{escape(selection['best'])}</b>.</p>")
    parts.append(_table(["candidate", "params"] + names, table_rows, left=2, highlight=best_row))

    parts.append("<h2>Test metrics</h2>")
    test = evaluation["test_metrics"]
    champion = evaluation.get("champion") or {}
    header = ["metric", "this model"] + ([f"champion v{champion['version']}"] if "test_metrics" in champion else [])
    parts.append(_table(header, [[n, _fmt(v)] + ([_fmt(champion["test_metrics"].get(n, ""))]
                                                 if "test_metrics" in champion else [])
                                 for n, v in sorted(test.items())]))
    if "confusion_matrix" in evaluation:
        matrix = evaluation["confusion_matrix"]
        parts.append("<p>Confusion matrix (rows: true, columns: predicted):</p>")
        parts.append(_table(["true \\ predicted"] + matrix["labels"],
                            [[label] + counts for label, counts in zip(matrix["labels"], matrix["matrix"])]))

    verdict = "BLESSED" if evaluation["blessed"] else "NOT BLESSED"
    parts.append("<h2>Decision</h2>")
    parts.append(f"<p class='{'ok' if evaluation['blessed'] else 'no'}'>{verdict}: {escape(evaluation['reason'])}</p>")
    parts.append(f"<p>Registered as <b>{escape(registration['ref'])}</b>; "
                 + ("the <code>champion</code> alias now points to it." if registration["champion"]
                    else "the <code>champion</code> alias was not moved.") + "</p>")

    parts.append("<h2>Lineage</h2>")
    parts.append(f"<pre>{escape(json.dumps(registration['lineage'], indent=2, sort_keys=True))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def report(
    model_name: str,
    ingest_summary: str,
    validation_summary: str,
    statistics_view: Input[HTML],
    selection: str,
    evaluation: str,
    registration: str,
    run_report: Output[HTML],
) -> str:
    """KFP component: write the run report; returns its path."""
    from components import report as stage
    from components import runtime

    with open(statistics_view.path, encoding="utf-8") as handle:
        statistics_html = handle.read()
    page = stage.render_report(
        model_name=model_name, ingest=runtime.parse_json(ingest_summary), validation=runtime.parse_json(validation_summary),
        statistics_html=statistics_html, selection=runtime.parse_json(selection), evaluation=runtime.parse_json(evaluation),
        registration=runtime.parse_json(registration))
    with open(run_report.path, "w", encoding="utf-8") as handle:
        handle.write(page)
    runtime.report_progress("report", run_report.path)
    return run_report.path
