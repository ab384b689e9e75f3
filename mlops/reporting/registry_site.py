"""A read-only browser of a store: static pages generated from it, served on 127.0.0.1 (`mlops ui`).

    index.html                     models (champion, versions), data sets, the monitor's decisions
    models/<name>.html             a model card: versions, the champion and since when (the alias
                                   history), test metric over versions
    models/<name>/v<N>.html        one version: its lineage, and its run report
    data/<name>.html               a data set's versions
    monitor/<name>.html            the monitor's decisions for a model, with their reports
    reports/...                    the run and monitor reports the pipelines kept in the store

Every page is generated once, from what the store holds at that moment; nothing
is written to the store, and nothing is loaded from anywhere but this server.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from html import escape
from pathlib import Path
from urllib.parse import unquote

from mlops import config
from mlops.errors import MlopsError
from mlops.reporting import charts
from mlops.reporting.report import _fmt, _table, definitions, lineage_section, page

# The only store keys the site copies: a run's report (mlops.reporting.report.report_key) and a
# monitor decision's report (mlops.stages.monitor.report_key). A log entry naming anything else
# (an absolute path, "..", another prefix) is shown without its report.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
REPORT_KEY_PATTERN = re.compile(rf"reports/{_NAME}/(v[0-9]{{6}}|monitor/[0-9]{{8}}T[0-9]{{6}}Z-[0-9a-f]{{8}})\.html")


def _link(href: str, text: str) -> str:
    return f"<a href='{escape(href)}'>{escape(text)}</a>"


def _champion_since(history: list[dict], version: int | None) -> str:
    for move in reversed(history):
        if move["version"] == version:
            return move["at"] or "?"
    return "-"


class SiteBuilder:
    """Writes the pages for one store into a directory."""

    def __init__(self, store, out: Path):
        from mlops.store.datasets import DataVersions
        from mlops.store.registry import ModelRegistry

        self.store, self.out = store, Path(out)
        self.registry, self.data = ModelRegistry(store), DataVersions(store)

    def _write(self, relative: str, html: str) -> None:
        root = self.out.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or path == root:
            raise MlopsError(f"refusing to write {relative!r} outside the site folder {root}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")

    def _report(self, key: str) -> str | None:
        """Copy a report kept in the store into the site; its relative path, or None."""
        from mlops.store import NotFound

        if not isinstance(key, str) or not REPORT_KEY_PATTERN.fullmatch(key):
            return None
        try:
            data = self.store.read(key)
        except NotFound:
            return None
        self._write(key, data.decode("utf-8", errors="replace"))
        return key

    def build(self) -> Path:
        from mlops.stages.monitor import history as monitor_history

        models = self.registry.names()
        data_sets = self.data.names()
        monitored = sorted(
            {key.split("/")[1] for key in self.store.list("monitor/") if re.fullmatch(_NAME, key.split("/")[1])}
        )
        rows = []
        for name in models:
            versions = self.registry.versions(name)
            champion = self.registry.champion(name)
            self._model_pages(name, versions, champion)
            rows.append(
                f"<tr><td class='l'>{_link(f'models/{name}.html', name)}</td><td>{len(versions)}</td>"
                f"<td>{'v' + str(champion.version) if champion else '-'}</td>"
                f"<td class='l'>{escape(versions[-1].created_at if versions else '')}</td></tr>"
            )
        body = [
            "<h1>Registry</h1>",
            f"<p class='muted'>store {escape(self.store.uri)} · read-only</p>",
            "<h2>Models</h2>",
            "<table><tr><th class='l'>model</th><th>versions</th><th>champion</th><th class='l'>latest</th></tr>"
            + "".join(rows)
            + "</table>"
            if rows
            else "<p>No models yet.</p>",
            "<h2>Data sets</h2>",
        ]
        if data_sets:
            body.append(
                "<ul>"
                + "".join(
                    f"<li>{_link(f'data/{n}.html', n)} ({len(self.data.versions(n))} versions)</li>" for n in data_sets
                )
                + "</ul>"
            )
            for name in data_sets:
                self._data_page(name)
        else:
            body.append("<p>No data versions yet.</p>")
        body.append("<h2>Monitor</h2>")
        if monitored:
            body.append(
                "<ul>"
                + "".join(
                    f"<li>{_link(f'monitor/{n}.html', n)} ({len(monitor_history(self.store, n))} decisions)</li>"
                    for n in monitored
                )
                + "</ul>"
            )
            for name in monitored:
                self._monitor_page(name)
        else:
            body.append("<p>No monitor decisions yet.</p>")
        self._write("index.html", page("Registry", body))
        return self.out / "index.html"

    def _model_pages(self, name, versions, champion) -> None:
        from mlops.reporting.report import report_key

        history = self.registry.alias_history(name, config.CHAMPION_ALIAS)
        metric = next(
            (v.lineage.get("params", {}).get("metric") for v in reversed(versions) if v.lineage.get("params")), None
        )
        table = []
        for version in versions:
            lineage = version.lineage
            report = self._report(report_key(name, version.version))
            self._version_page(name, version, report)
            table.append(
                [
                    f"v{version.version}",
                    version.created_at,
                    lineage.get("params", {}).get("candidate", {}).get("id", "-"),
                    _fmt(version.metrics.get(f"test_{metric}", "-")) if metric else "-",
                    "yes" if lineage.get("blessing", {}).get("blessed") else "no",
                    ", ".join(version.aliases) or "-",
                ]
            )
        body = [
            f"<h1>Model card: {escape(name)}</h1>",
            f"<p>{_link('../index.html', 'registry')}</p>",
            definitions(
                [
                    ("champion", f"v{champion.version}" if champion else "none"),
                    ("champion since", _champion_since(history, champion.version if champion else None)),
                    ("versions", len(versions)),
                    ("ranking metric", metric or "-"),
                    ("trained on", champion.lineage.get("data", {}).get("ref", "-") if champion else "-"),
                ]
            ),
        ]
        points = [
            (v.version, v.metrics[f"test_{metric}"]) for v in versions if metric and f"test_{metric}" in v.metrics
        ]
        if points:
            body.append(
                "<div class='charts'>"
                + charts.metric_over_versions(points, metric, champion.version if champion else None)
                + "</div>"
            )
        body.append("<h2>Versions</h2>")
        body.append(
            "<table><tr><th class='l'>version</th><th class='l'>created</th><th class='l'>candidate</th>"
            f"<th>test {escape(metric or '')}</th><th>blessed</th><th class='l'>aliases</th></tr>"
            + "".join(
                "<tr>"
                + f"<td class='l'>{_link(f'{name}/{row[0]}.html', row[0])}</td>"
                + "".join(
                    f"<td{' class=l' if i in (0, 1, 4) else ''}>{escape(str(v))}</td>" for i, v in enumerate(row[1:])
                )
                + "</tr>"
                for row in table
            )
            + "</table>"
        )
        body.append("<h2>Champion history</h2>")
        body.append(
            _table(
                ["when", "champion", "before", "why"],
                [
                    [
                        m.get("at") or "?",
                        f"v{m['version']}",
                        f"v{m['previous']}" if m.get("previous") else "-",
                        m.get("reason") or "",
                    ]
                    for m in reversed(history)
                ],
                left=4,
            )
            if history
            else "<p>Never promoted.</p>"
        )
        self._write(f"models/{name}.html", page(f"Model card: {name}", body))

    def _version_page(self, name, version, report: str | None) -> None:
        body = [
            f"<h1>{escape(name)} v{version.version}</h1>",
            f"<p>{_link(f'../{name}.html', 'model card')} · "
            + (_link(f"../../{report}", "run report") if report else "no run report kept")
            + "</p>",
            definitions(
                [
                    ("created", version.created_at),
                    ("aliases", ", ".join(version.aliases) or "-"),
                    ("tags", json.dumps(version.tags, sort_keys=True)),
                    ("files", ", ".join(sorted(version.files))),
                ]
            ),
        ]
        if version.lineage.get("data") and version.lineage.get("blessing"):
            body.extend(lineage_section(version.to_json()))
        self._write(f"models/{name}/v{version.version}.html", page(f"{name} v{version.version}", body))

    def _data_page(self, name) -> None:
        versions = self.data.versions(name)
        body = [
            f"<h1>Data set: {escape(name)}</h1>",
            f"<p>{_link('../index.html', 'registry')}</p>",
            _table(
                ["version", "rows", "columns", "created", "source"],
                [[v.ref, v.rows, len(v.columns), v.created_at, v.source] for v in versions],
                left=1,
            ),
        ]
        self._write(f"data/{name}.html", page(f"Data set: {name}", body))

    def _monitor_page(self, name) -> None:
        from mlops.stages.monitor import history as monitor_history

        rows = []
        for entry in monitor_history(self.store, name):
            report = self._report(entry["report_key"]) if entry.get("report_key") else None
            rows.append(
                f"<tr><td class='l'>{escape(entry['time'])}</td><td>v{entry['model']['version']}</td>"
                f"<td class='l'>{escape(entry['decision'])}</td>"
                f"<td>{'v' + str(entry['retrained_version']) if entry['retrained_version'] else '-'}</td>"
                f"<td class='l'>{escape(entry['data_version'])}</td>"
                f"<td class='l'>{escape('; '.join(entry['reasons']))}</td>"
                f"<td class='l'>{_link('../' + report, 'report') if report else '-'}</td></tr>"
            )
        body = [
            f"<h1>Monitor: {escape(name)}</h1>",
            f"<p>{_link('../index.html', 'registry')}</p>",
            "<table><tr><th class='l'>time</th><th>model</th><th class='l'>decision</th><th>retrained</th>"
            "<th class='l'>batch</th><th class='l'>reasons</th><th class='l'>report</th></tr>"
            + "".join(rows)
            + "</table>",
        ]
        self._write(f"monitor/{name}.html", page(f"Monitor: {name}", body))


class ReadOnlyHandler(http.server.SimpleHTTPRequestHandler):
    """GET and HEAD only, quietly; only for a Host naming this loopback server (no DNS rebinding),
    and a path that is not a file name (a NUL byte, say) is a 404, never a traceback."""

    def log_message(self, *args):
        pass

    def _host_allowed(self) -> bool:
        port = self.server.server_address[1]
        return self.headers.get("Host", "") in {f"127.0.0.1:{port}", f"localhost:{port}"}

    def send_head(self):
        if not self._host_allowed():
            self.send_error(421, "unknown host: use http://127.0.0.1:<port>/")
            return None
        if "\x00" in unquote(self.path):
            self.send_error(404)
            return None
        try:
            return super().send_head()
        except (OSError, ValueError):
            self.send_error(404)
            return None

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.send_error(405, "read-only")

    do_PUT = do_DELETE = do_PATCH = do_POST


def serve(directory: Path, port: int = 0) -> tuple[http.server.ThreadingHTTPServer, threading.Thread]:
    """Serve ``directory`` on 127.0.0.1:``port`` (0: any free port) in a background thread."""
    handler = lambda *args, **kwargs: ReadOnlyHandler(*args, directory=str(directory), **kwargs)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
