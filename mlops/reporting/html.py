"""The HTML every page shares: the run report, the monitor report and the registry site.

A page is self-contained (its style inline, nothing loaded), and every value put into
one is escaped here, so a column name or a cell from the data cannot inject markup.
"""

from __future__ import annotations

from html import escape

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.best{background:#eef8ee}
.ok{color:#17632a;font-weight:bold}.no{color:#a11;font-weight:bold}.muted{color:#666}
pre{background:#f7f7f7;padding:1rem;overflow:auto;font-size:.8rem}
.charts{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}svg.chart{max-width:100%;height:auto}
dl.lineage{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dl.lineage dt{font-weight:bold}
dl.lineage dd{margin:0;font-family:ui-monospace,monospace;font-size:.85rem;overflow-wrap:anywhere}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:.3rem;color:white;font-weight:bold}
.badge.ok{background:#17632a;color:white}.badge.no{background:#a11;color:white}
"""


def page(title: str, body: list[str]) -> str:
    """A complete, self-contained HTML page: ``body`` is HTML already, ``title`` is text."""
    return "\n".join(
        [
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>",
            *body,
            "</body></html>",
        ]
    )


def table(headers: list[str], rows: list[list], left: int = 1, highlight: int | None = None) -> str:
    """A table of text (every header and cell escaped). The first ``left`` columns are aligned left
    (text), the rest right (numbers); row number ``highlight`` is marked as the best."""

    def tagged(tag: str, value, index: int) -> str:
        css = ' class="l"' if index < left else ""
        return f"<{tag}{css}>{escape(str(value))}</{tag}>"

    head = "".join(tagged("th", h, i) for i, h in enumerate(headers))
    body = "".join(
        ("<tr class='best'>" if r == highlight else "<tr>")
        + "".join(tagged("td", v, i) for i, v in enumerate(row))
        + "</tr>"
        for r, row in enumerate(rows)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def cell(value) -> str:
    """The text of a value in a table cell: a float to four decimals, anything else as ``str()``."""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def definitions(items: list[tuple[str, object]]) -> str:
    """A definition list of (label, value) pairs, both escaped."""
    return (
        "<dl class='lineage'>"
        + "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd>" for k, v in items)
        + "</dl>"
    )
