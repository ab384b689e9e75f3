"""A read-only browser of a store, served on 127.0.0.1 (`mlops ui`).

    index.html                     models (champion, versions), data sets, the monitor's decisions
    models/<name>.html             a model card: versions, the champion and since when (the alias
                                   history), test metric over versions
    models/<name>/v<N>.html        one version: its lineage, and its run report
    data/<name>.html               a data set's versions
    monitor/<name>.html            the monitor's decisions for a model, with their reports
    runs/index.html                the local runs (mlops.store.runs), succeeded or failed, to compare
    runs/<run id>.html             one run: parameters, data and code versions, metrics, outcome
    runs/compare.html?run=A&run=B  runs side by side, differing rows marked (no ``run``: the newest two)
    reports/...                    the run and monitor reports the pipelines kept in the store

:meth:`SiteBuilder.render` makes one page from what the store holds when it is asked:
:func:`serve` with a SiteBuilder answers every request that way (a live site), and
:meth:`SiteBuilder.build` writes every page once into a folder (a snapshot, served
as files). Nothing is written to the store, and nothing is loaded from anywhere but
this server (the served pages say so in their Content-Security-Policy too).
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from html import escape
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from mlops import config
from mlops.errors import MlopsError
from mlops.reporting import charts
from mlops.reporting.html import cell, definitions, page, table
from mlops.reporting.report import lineage_section

# The only store keys the site copies: a run's report (mlops.reporting.report.report_key) and a
# monitor decision's report (mlops.stages.monitor.report_key). A log entry naming anything else
# (an absolute path, "..", another prefix) is shown without its report.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
REPORT_KEY_PATTERN = re.compile(rf"reports/{_NAME}/(v[0-9]{{6}}|monitor/[0-9]{{8}}T[0-9]{{6}}Z-[0-9a-f]{{8}})\.html")
_RUN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"
# The pages of the site (the path after the host, without its leading "/") -> the method that makes it.
ROUTES = (
    (re.compile(r"(index\.html)?"), "_index_page"),
    (re.compile(rf"models/({_NAME})\.html"), "_model_page"),
    (re.compile(rf"models/({_NAME})/v([0-9]{{1,9}})\.html"), "_version_page"),
    (re.compile(rf"data/({_NAME})\.html"), "_data_page"),
    (re.compile(rf"monitor/({_NAME})\.html"), "_monitor_page"),
    (re.compile(r"runs/(index\.html)?"), "_runs_page"),
    (re.compile(r"runs/compare\.html"), "_compare_page"),
    (re.compile(rf"runs/({_RUN})\.html"), "_run_page"),
)
# The most runs one comparison shows side by side.
MAX_COMPARED = 8


def _link(href: str, text: str) -> str:
    return f"<a href='{escape(href)}'>{escape(text)}</a>"


def _champion_since(history: list[dict], version: int | None) -> str:
    for move in reversed(history):
        if move["version"] == version:
            return move["at"] or "?"
    return "-"


class PageNotFound(MlopsError):
    """No page at that path (an unknown model, run or report)."""


class SiteBuilder:
    """Makes the pages for one store: one on request (:meth:`render`), or all into a folder (:meth:`build`)."""

    def __init__(self, store, out: Path | None = None):
        from mlops.store.datasets import DataVersions
        from mlops.store.registry import ModelRegistry

        self.store, self.out = store, Path(out) if out is not None else None
        self.registry, self.data = ModelRegistry(store), DataVersions(store)

    # One page ---------------------------------------------------------------
    def render(self, path: str, query: dict[str, list[str]] | None = None) -> bytes:
        """The page at ``path`` (``models/wine.html``; "" is the index), made from the store now.

        ``query``: the parsed query string (the runs a comparison shows). Raises PageNotFound
        when there is no such page; a store that cannot be read raises its StoreError.
        """
        from mlops.store import NotFound

        query = query or {}
        if REPORT_KEY_PATTERN.fullmatch(path):
            try:
                return self.store.read(path)
            except NotFound:
                raise PageNotFound(path) from None
        for pattern, method in ROUTES:
            match = pattern.fullmatch(path)
            if match:
                arguments = [a for a in match.groups() if a is not None and not a.endswith("index.html")]
                if method == "_compare_page":
                    arguments = [query.get("run", [])]
                try:
                    return getattr(self, method)(*arguments).encode("utf-8")
                except NotFound as error:
                    raise PageNotFound(str(error)) from None
        raise PageNotFound(path)

    def _has_report(self, key) -> bool:
        return isinstance(key, str) and bool(REPORT_KEY_PATTERN.fullmatch(key)) and self.store.exists(key)

    # Every page -------------------------------------------------------------
    def paths(self) -> list[str]:
        """Every page of the site as the store is now (what :meth:`build` writes)."""
        from mlops.reporting.report import report_key
        from mlops.stages.monitor import history as monitor_history
        from mlops.store.runs import list_runs

        paths, reports = ["index.html"], []
        for name in self.registry.names():
            paths.append(f"models/{name}.html")
            for version in self.registry.versions(name):
                paths.append(f"models/{name}/v{version.version}.html")
                reports.append(report_key(name, version.version))
        paths += [f"data/{name}.html" for name in self.data.names()]
        for name in self._monitored():
            paths.append(f"monitor/{name}.html")
            reports += [entry.get("report_key") for entry in monitor_history(self.store, name)]
        paths += ["runs/index.html", "runs/compare.html"]
        paths += [f"runs/{record['id']}.html" for record in list_runs(self.store) if re.fullmatch(_RUN, record["id"])]
        return paths + [key for key in reports if self._has_report(key)]  # only keys of a report's shape

    def build(self) -> Path:
        """Write every page into the output folder (a snapshot of the store); return the index."""
        if self.out is None:
            raise MlopsError("the site has no output folder to write to")
        for path in self.paths():
            self._write(path, self.render(path))
        return self.out / "index.html"

    def _write(self, relative: str, data: bytes) -> None:
        assert self.out is not None
        root = self.out.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or path == root:
            raise MlopsError(f"refusing to write {relative!r} outside the site folder {root}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def _monitored(self) -> list[str]:
        return sorted(
            {key.split("/")[1] for key in self.store.list("monitor/") if re.fullmatch(_NAME, key.split("/")[1])}
        )

    # The pages --------------------------------------------------------------
    def _index_page(self) -> str:
        from mlops.stages.monitor import history as monitor_history
        from mlops.store.runs import list_runs

        models = self.registry.names()
        data_sets = self.data.names()
        monitored = self._monitored()
        rows = []
        for name in models:
            versions = self.registry.versions(name)
            champion = self.registry.champion(name)
            rows.append(
                f"<tr><td class='l'>{_link(f'models/{name}.html', name)}</td><td>{len(versions)}</td>"
                f"<td>{'v' + str(champion.version) if champion else '-'}</td>"
                f"<td class='l'>{escape(versions[-1].created_at if versions else '')}</td></tr>"
            )
        runs = list_runs(self.store)
        failed = sum(r.get("state") == "failed" for r in runs)
        body = [
            "<h1>Registry</h1>",
            f"<p class='muted'>store {escape(self.store.uri)} · read-only</p>",
            "<h2>Models</h2>",
            "<table><tr><th class='l'>model</th><th>versions</th><th>champion</th><th class='l'>latest</th></tr>"
            + "".join(rows)
            + "</table>"
            if rows
            else "<p>No models yet.</p>",
            "<h2>Runs</h2>",
            f"<p>{_link('runs/index.html', f'{len(runs)} local runs')} ({failed} failed), to compare side by side.</p>"
            if runs
            else "<p>No local runs recorded yet.</p>",
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
        else:
            body.append("<p>No monitor decisions yet.</p>")
        return page("Registry", body)

    def _model_page(self, name: str) -> str:
        versions = self.registry.versions(name)
        if not versions:
            from mlops.store import NotFound

            raise NotFound(f"no model {name!r}")
        champion = self.registry.champion(name)
        history = self.registry.alias_history(name, config.CHAMPION_ALIAS)
        metric = next(
            (v.lineage.get("params", {}).get("metric") for v in reversed(versions) if v.lineage.get("params")), None
        )
        listed = []
        for version in versions:
            lineage = version.lineage
            listed.append(
                [
                    f"v{version.version}",
                    version.created_at,
                    lineage.get("params", {}).get("candidate", {}).get("id", "-"),
                    cell(version.metrics.get(f"test_{metric}", "-")) if metric else "-",
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
                for row in listed
            )
            + "</table>"
        )
        body.append("<h2>Champion history</h2>")
        body.append(
            table(
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
        return page(f"Model card: {name}", body)

    def _version_page(self, name: str, number: str) -> str:
        from mlops.reporting.report import report_key

        version = self.registry.get(name, int(number))
        report = report_key(name, version.version)
        body = [
            f"<h1>{escape(name)} v{version.version}</h1>",
            f"<p>{_link(f'../{name}.html', 'model card')} · "
            + (_link(f"../../{report}", "run report") if self._has_report(report) else "no run report kept")
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
        return page(f"{name} v{version.version}", body)

    def _data_page(self, name: str) -> str:
        versions = self.data.versions(name)
        if not versions:
            from mlops.store import NotFound

            raise NotFound(f"no data set {name!r}")
        body = [
            f"<h1>Data set: {escape(name)}</h1>",
            f"<p>{_link('../index.html', 'registry')}</p>",
            table(
                ["version", "rows", "columns", "created", "source"],
                [[v.ref, v.rows, len(v.columns), v.created_at, v.source] for v in versions],
                left=1,
            ),
        ]
        return page(f"Data set: {name}", body)

    def _monitor_page(self, name: str) -> str:
        from mlops.stages.monitor import history as monitor_history

        rows = []
        for entry in monitor_history(self.store, name):
            report = entry.get("report_key") if self._has_report(entry.get("report_key")) else None
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
        return page(f"Monitor: {name}", body)

    # Runs -------------------------------------------------------------------
    def _runs_page(self) -> str:
        """The local runs, newest first, each with a box to tick: the form asks for their comparison."""
        from mlops.store.runs import list_runs

        records = [r for r in list_runs(self.store) if re.fullmatch(_RUN, str(r.get("id")))]
        rows = []
        for r in records:
            registered = (r.get("model_version") or {}).get("ref")
            state = r.get("state", "?")
            rows.append(
                f"<tr><td><input type='checkbox' name='run' value='{escape(r['id'])}' "
                f"aria-label='compare {escape(r['id'])}'></td>"
                f"<td class='l'>{_link(r['id'] + '.html', r['id'])}</td>"
                f"<td class='l'>{escape(str(r.get('model')))}</td>"
                f"<td class='l {'ok' if state == 'succeeded' else 'no'}'>{escape(state)}</td>"
                f"<td class='l'>{escape(str(r.get('started_at')))}</td>"
                f"<td class='l'>{escape(str((r.get('data') or {}).get('version') or '-'))}</td>"
                f"<td class='l'>{escape(registered or '-')}</td>"
                f"<td class='l'>{escape(r.get('reason') or '')}</td></tr>"
            )
        body = [
            "<h1>Runs</h1>",
            f"<p>{_link('../index.html', 'registry')} · the runs of <code>mlops run</code> on this store, "
            "newest first; tick two or more and compare them.</p>",
        ]
        if rows:
            body.append(
                "<form method='get' action='compare.html'>"
                "<table><tr><th></th><th class='l'>run</th><th class='l'>model</th><th class='l'>state</th>"
                "<th class='l'>started</th><th class='l'>data version</th><th class='l'>model version</th>"
                "<th class='l'>reason</th></tr>" + "".join(rows) + "</table>"
                "<p><button type='submit'>Compare the ticked runs</button></p></form>"
            )
        else:
            body.append("<p>No local runs recorded yet.</p>")
        return page("Runs", body)

    def _run_page(self, run_id: str) -> str:
        from mlops.store.runs import flatten, format_value, get_run

        record = get_run(self.store, run_id)
        if record["id"] != run_id:  # a page is for one full id, not a prefix
            raise PageNotFound(run_id)
        registered = record.get("model_version") or {}
        items = [
            ("state", record.get("state")),
            ("reason", record.get("reason") or "-"),
            ("started", record.get("started_at")),
            ("finished", record.get("finished_at")),
            ("model", record.get("model")),
            ("model version", registered.get("ref") or "-"),
            ("promotion", registered.get("promotion") or "-"),
            ("data version", (record.get("data") or {}).get("version") or "-"),
            ("data source", (record.get("data") or {}).get("source") or "-"),
            ("code version", (record.get("code") or {}).get("version") or "-"),
        ]
        items += [(f"parameter {k}", format_value(v, 200)) for k, v in flatten(record.get("parameters", {})).items()]
        items += [(f"metric {k}", format_value(v)) for k, v in flatten(record.get("metrics", {})).items()]
        model_link = ""
        if registered.get("ref"):
            name, _, number = registered["ref"].partition("@")
            model_link = " · " + _link(f"../models/{name}/v{number}.html", registered["ref"])
        body = [
            f"<h1>Run {escape(run_id)}</h1>",
            f"<p>{_link('index.html', 'runs')}{model_link}</p>",
            definitions(items),
            "<details><summary>The whole run record (JSON)</summary>"
            f"<pre>{escape(json.dumps(record, indent=2, sort_keys=True))}</pre></details>",
        ]
        return page(f"Run {run_id}", body)

    def _compare_page(self, run_ids: list[str]) -> str:
        """The runs side by side (no ``run_ids``: the newest two of the newest run's model)."""
        from mlops.store import StoreError
        from mlops.store.runs import compare_runs, format_value, get_run, list_runs

        body = [f"<h1>Runs compared</h1><p>{_link('index.html', 'runs')}</p>"]
        try:
            if run_ids:
                records = [get_run(self.store, run_id) for run_id in run_ids[:MAX_COMPARED]]
            else:
                newest = list_runs(self.store)
                records = list_runs(self.store, newest[0]["model"])[:2][::-1] if newest else []
            comparison = compare_runs(records)
        except StoreError as error:
            body.append(f"<p class='no'>{escape(str(error))}</p>")
            return page("Runs compared", body)
        runs = comparison["runs"]
        changed = sum(row["differs"] for row in comparison["rows"])
        head = "".join(f"<th class='l'>{_link(escape(r['id']) + '.html', r['id'])}</th>" for r in runs)
        lines = [
            "<tr><td></td><td class='l'>state</td>"
            + "".join(
                f"<td class='l {'ok' if r['state'] == 'succeeded' else 'no'}'>{escape(r['state'])}</td>" for r in runs
            )
            + "</tr>",
            "<tr><td></td><td class='l'>model version</td>"
            + "".join(f"<td class='l'>{escape(r['model_version'] or '-')}</td>" for r in runs)
            + "</tr>",
        ]
        for row in comparison["rows"]:
            mark = "differs" if row["differs"] else "same"
            lines.append(
                f"<tr class='{mark}' data-section='{escape(row['section'])}' data-name='{escape(row['name'])}'>"
                f"<td>{'≠' if row['differs'] else ''}</td>"
                f"<td class='l'>{escape(row['section'])}: {escape(row['name'])}</td>"
                + "".join(f"<td class='l'>{escape(format_value(v, 60))}</td>" for v in row["values"])
                + "</tr>"
            )
        query = urlencode([("run", r["id"]) for r in runs])
        body += [
            f"<p>{len(runs)} runs; {changed} of {len(comparison['rows'])} rows differ (marked ≠, highlighted). "
            f"{_link('compare.html?' + query, 'link to this comparison')}</p>",
            "<style>tr.differs td{background:#fff3cd}tr.differs td:first-child{color:#a11;font-weight:bold}</style>",
            f"<table class='compare'><tr><th></th><th class='l'>field</th>{head}</tr>{''.join(lines)}</table>",
        ]
        return page("Runs compared", body)


# What a served page may load: nothing but itself (inline styles and SVG), and forms only to this server.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


class _LoopbackHandler(http.server.SimpleHTTPRequestHandler):
    """GET and HEAD only, quietly; only for a Host naming this loopback server (no DNS rebinding)."""

    def log_message(self, *args):
        pass

    def _host_allowed(self) -> bool:
        port = self.server.server_address[1]
        return self.headers.get("Host", "") in {f"127.0.0.1:{port}", f"localhost:{port}"}

    def end_headers(self):
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.send_error(405, "read-only")

    do_PUT = do_DELETE = do_PATCH = do_POST


class ReadOnlyHandler(_LoopbackHandler):
    """A folder of pages (a snapshot); a path that is not a file name (a NUL byte, say) is a 404,
    never a traceback."""

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


class LiveHandler(_LoopbackHandler):
    """Every page made from the store when it is asked for (``server.site``, a SiteBuilder)."""

    def send_head(self):
        import io

        from mlops.store import StoreError

        if not self._host_allowed():
            self.send_error(421, "unknown host: use http://127.0.0.1:<port>/")
            return None
        parts = urlsplit(self.path)
        path = unquote(parts.path).lstrip("/")
        if "\x00" in path:
            self.send_error(404)
            return None
        try:
            with self.server.lock:  # type: ignore[attr-defined]
                data = self.server.site.render(path, parse_qs(parts.query))  # type: ignore[attr-defined]
        except PageNotFound:
            self.send_error(404)
            return None
        except StoreError as error:
            self.send_error(503, " ".join(str(error).split())[:200])
            return None
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        return io.BytesIO(data)


def serve(source: Path | SiteBuilder, port: int = 0) -> tuple[http.server.ThreadingHTTPServer, threading.Thread]:
    """Serve on 127.0.0.1:``port`` (0: any free port) in a background thread: a folder of pages
    as files, or a SiteBuilder's pages made from its store at each request (live)."""
    if isinstance(source, SiteBuilder):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), LiveHandler)
        server.site, server.lock = source, threading.Lock()  # type: ignore[attr-defined]
    else:
        handler = lambda *args, **kwargs: ReadOnlyHandler(*args, directory=str(source), **kwargs)  # noqa: E731
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
