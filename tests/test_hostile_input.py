"""Hostile input, each class ending cleanly (SECURITY.md's table names these tests): no write outside
the folder it belongs in, no hang past a deadline, no secret printed, no control character passed to a
terminal, one line for every refusal."""

import http.client
import socket
import threading
import time

import pytest

from mlops.data.http_source import download
from mlops.errors import StageError
from mlops.reporting.registry_site import SiteBuilder, serve
from mlops.stages.monitor import append_log

# -- mlops ui -------------------------------------------------------------------------------------


def _decision(report_key: str) -> dict:
    return {
        "type": "decision",
        "model": {"name": "m", "version": 1},
        "data_version": "d@0123abcd",
        "decision": "ok",
        "reasons": [],
        "report_key": report_key,
    }


@pytest.mark.parametrize(
    "report_key",
    [
        "{outside}",  # an absolute path on the operator's machine
        "reports/m/../../../{name}",  # out of the site folder through ".."
        "reports/m/monitor/../../../../{name}",
    ],
)
def test_the_registry_site_writes_nothing_outside_its_folder(file_store, tmp_path, report_key):
    outside = tmp_path / "outside" / "evil.html"
    key = report_key.format(outside=outside, name="evil.html")
    file_store.put(str(outside).lstrip("/"), b"<p>planted</p>")  # what an absolute key reads in a file store
    append_log(file_store, "m", _decision(key))
    site = tmp_path / "site"
    SiteBuilder(file_store, site).build()
    assert not outside.exists() and not (tmp_path / "evil.html").exists()
    written = [p for p in tmp_path.rglob("*.html") if not p.is_relative_to(site) and "store" not in p.parts]
    assert written == []
    assert "report</a>" not in (site / "monitor" / "m.html").read_text()


def test_the_registry_site_copies_a_report_of_the_expected_shape(file_store, tmp_path):
    key = "reports/m/monitor/20260101T000000Z-0123abcd.html"
    file_store.put(key, b"<p>kept</p>")
    append_log(file_store, "m", _decision(key))
    SiteBuilder(file_store, tmp_path / "site").build()
    assert (tmp_path / "site" / key).read_text() == "<p>kept</p>"


@pytest.fixture
def ui_server(tmp_path):
    (tmp_path / "index.html").write_text("<p>registry</p>")
    server, _ = serve(tmp_path, 0)
    yield server.server_address[1]
    server.shutdown()


def _get(port: int, path: str, host: str | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Host": host} if host else {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io:{port}", ""])
def test_mlops_ui_answers_only_its_own_host_name(ui_server, host):
    # A DNS-rebinding page reaches 127.0.0.1 under its own name: that Host is refused.
    assert _get(ui_server, "/index.html", host.format(port=ui_server) or " ") == 421
    assert _get(ui_server, "/index.html") == 200
    assert _get(ui_server, "/index.html", f"localhost:{ui_server}") == 200


@pytest.mark.parametrize("path", ["/%00", "/index.html%00.png", "/%2e%2e/%2e%2e/etc/passwd", "/a%00/b"])
def test_mlops_ui_answers_a_strange_path_with_a_404_and_no_traceback(ui_server, path, capsys):
    assert _get(ui_server, path) == 404
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out


# -- The download deadline ------------------------------------------------------------------------


@pytest.fixture
def dripping_server():
    """A loopback server that sends its status line and headers one byte every 50 ms (about 10 s)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip(connection):
        with connection:
            try:
                connection.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Drip: " + b"x" * 200 + b"\r\n\r\n":
                    if stop.is_set():
                        return
                    connection.sendall(bytes([byte]))
                    time.sleep(0.05)
            except OSError:
                pass

    def accept():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=drip, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/data.csv"
    stop.set()
    listener.close()


def test_the_download_deadline_covers_the_status_line_and_headers(dripping_server):
    started = time.monotonic()
    with pytest.raises(StageError, match=r"took longer than 1 s \(MLOPS_HTTP_TIMEOUT_SECONDS\)$"):
        download(dripping_server, max_bytes=1_000_000, deadline_seconds=1)
    assert time.monotonic() - started < 3
