"""The drift monitor's report: the decision, why, and every feature baseline vs live."""

from __future__ import annotations

from html import escape

from mlops.reporting import charts
from mlops.reporting.html import cell, page, table


def render(record: dict) -> str:
    """One self-contained HTML page for a monitor decision (``Decision.to_json()`` plus TFDV's drift rows)."""
    model = record["model"]
    decision = record["decision"]
    css = {"none": "ok", "retrain": "no", "blocked": "no"}.get(decision, "muted")
    parts = [
        f"<h1>Monitor: {escape(model['name'])} v{model['version']}</h1>",
        f"<p class='muted'>batch {escape(record['data_version'])} · {record['rows']} rows · {escape(record['time'])}"
        "</p>",
        f"<p class='{css}'>Decision: {escape(decision.upper())}</p>",
        "<ul>" + "".join(f"<li>{escape(reason)}</li>" for reason in record["reasons"]) + "</ul>",
    ]
    if record.get("retrain_held"):
        parts.append(f"<p class='no'>Not retrained: {escape(record['retrain_held'])}</p>")
    if record.get("warnings"):
        parts.append("<p>Warnings:</p><ul>" + "".join(f"<li>{escape(w)}</li>" for w in record["warnings"]) + "</ul>")
    if record.get("anomalies"):
        parts.append("<h2>Schema anomalies (SERVING environment)</h2>")
        parts.append(
            table(
                ["feature", "kind", "detail"],
                [[a["feature"], a["kind"], a["detail"]] for a in record["anomalies"]],
                left=3,
            )
        )
    if record.get("features"):
        parts.append("<h2>Drift per feature</h2>")
        power = record["features"][0].get("power", 0.8)
        parts.append(
            "<p class='muted'>A feature drifts only when the distance reaches its threshold AND the "
            "difference is significant for these sample sizes (chi-squared, Holm-corrected) AND the batch "
            "has enough rows. The smallest detectable distance (MDE) is the one the test finds with "
            f"{power:.0%} power at these sample sizes: above the threshold, a drift of the threshold's size "
            "could go unseen, and the verdict is too little data to tell.</p>"
        )
        parts.append("<div class='charts'>" + charts.shares_comparison(record["features"]) + "</div>")
        parts.append(
            table(
                [
                    "feature",
                    "measure",
                    "distance",
                    "threshold",
                    "MDE",
                    "p (Holm)",
                    "baseline n",
                    "live n",
                    "rows needed",
                    "verdict",
                ],
                [
                    [
                        f["feature"],
                        f["measure"],
                        cell(f["distance"]),
                        f["threshold"],
                        cell(f.get("min_detectable_effect", "-")),
                        f"{f['adjusted_p']:.2g}",
                        f["baseline_rows"],
                        f["rows"],
                        f.get("rows_needed") or "-",
                        f["verdict"],
                    ]
                    for f in record["features"]
                ],
                left=2,
            )
        )
    prediction = record.get("prediction_drift")
    if prediction:
        parts.append("<h2>Predictions</h2>")
        parts.append(
            "<div class='charts'>" + charts.shares_comparison([prediction], left="baseline", right="live") + "</div>"
        )
        parts.append(
            f"<p>{escape(prediction['measure'])} {prediction['distance']:.4f} between the champion's "
            f"predictions on its test split and on this batch (p={prediction['adjusted_p']:.2g}): "
            f"{escape(prediction['verdict'])}.</p>"
        )
    performance = record.get("performance")
    if performance:
        parts.append("<h2>Live performance</h2>")
        parts.append(
            f"<p>{escape(performance['metric'])}: {performance['live']:.4f} live vs "
            f"{performance['registered']:.4f} registered on {performance['rows']} labelled rows: "
            f"{escape(performance['verdict'])}.</p>"
        )
    if record.get("tfdv_drift"):
        parts.append("<h2>TFDV's drift comparators (for reference)</h2>")
        parts.append(
            table(
                ["feature", "measure", "value"],
                [[r["feature"], r["measure"], cell(r["value"])] for r in record["tfdv_drift"]],
                left=2,
            )
        )
    return page(f"Monitor: {model['name']}", parts)


def summary(record: dict) -> str:
    """A few lines of Markdown for the KFP UI."""
    drifted = [f["feature"] for f in record.get("features", []) if f["drifted"]]
    lines = [
        f"## Monitor {record['model']['name']} v{record['model']['version']}: **{record['decision']}**",
        "",
        f"- batch `{record['data_version']}` ({record['rows']} rows)",
        f"- drifting features: {', '.join(drifted) or 'none'}",
    ]
    lines += [f"- {reason}" for reason in record["reasons"]]
    if record.get("retrain_held"):
        lines.append(f"- not retrained: {record['retrain_held']}")
    return "\n".join(lines) + "\n"
