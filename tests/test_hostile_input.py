"""Hostile input, each class ending cleanly (SECURITY.md's table names these tests): no write outside
the folder it belongs in, no hang past a deadline, no secret printed, no control character passed to a
terminal, one line for every refusal."""

import base64
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from mlops import config
from mlops.cli.main import main as cli_main
from mlops.data.http_source import download
from mlops.data.uris import carries_secret, redact
from mlops.errors import StageError, quote
from mlops.reporting import charts
from mlops.reporting.registry_site import SiteBuilder, serve
from mlops.runners.local import failure_reason
from mlops.stages.monitor import append_log
from mlops.stages.prepare import fit_preprocessor
from mlops.stages.train import check_search_space, expand_search_space, train_candidate
from mlops.store.fs import FileStore
from mlops.store.registry import ModelRegistry

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


@pytest.fixture(params=["snapshot", "live"])
def ui_server(request, tmp_path):
    """`mlops ui`'s server: a folder of pages (--output), or pages made from the store at each request."""
    if request.param == "snapshot":
        (tmp_path / "index.html").write_text("<p>registry</p>")
        server, _ = serve(tmp_path, 0)
    else:
        server, _ = serve(SiteBuilder(FileStore(tmp_path / "store")), 0)
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


@pytest.mark.parametrize(
    "path",
    ["/%00", "/index.html%00.png", "/%2e%2e/%2e%2e/etc/passwd", "/a%00/b", "/runs/%2e%2e.html", "/models/..%2f.html"],
)
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


# -- The search space -----------------------------------------------------------------------------

MLOPS = str(Path(sys.executable).with_name("mlops"))


def _huge_grid(values_per_param: int = 50) -> dict:
    grid = {name: [1.0 + i for i in range(values_per_param)] for name in ("C", "tol", "intercept_scaling")}
    grid["max_iter"] = list(range(100, 100 + 4 * values_per_param))  # 50**3 * 200 = 25,000,000 combinations
    return {"metric": "auto", "candidates": {"classification": {"logistic_regression": grid}}}


def test_a_huge_search_space_is_refused_by_its_count_before_enumeration():
    started = time.monotonic()
    with pytest.raises(StageError, match=r"25000000 candidates for classification, over the limit of 64 \(MLOPS_MAX"):
        check_search_space(_huge_grid())
    assert time.monotonic() - started < 1


def test_the_candidate_limit_is_a_setting(monkeypatch):
    space = {"metric": "auto", "candidates": {"classification": {"logistic_regression": {"C": [0.1, 1.0, 10.0]}}}}
    check_search_space(space)
    monkeypatch.setenv(config.MAX_CANDIDATES.name, "2")
    with pytest.raises(StageError, match="3 candidates for classification, over the limit of 2"):
        expand_search_space(space, "classification")


def test_mlops_run_refuses_a_huge_params_file_in_one_line(tmp_path, demo_data):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(_huge_grid()))
    result = subprocess.run(
        [MLOPS, "run", "--data", str(demo_data["wine"]), "--target", "target", "--params", str(params)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "over the limit of 64 (MLOPS_MAX_CANDIDATES)" in result.stderr
    assert not (tmp_path / ".mlops" / "models").exists()


# -- Credentials in malformed user-info ----------------------------------------------------------

SECRET = "Zq9-s3cr3t"


@pytest.mark.parametrize(
    "uri",
    [
        f"https://alice:{SECRET}@example.com/data.csv",
        f"https://alice:a/{SECRET}@example.com/data.csv",  # an unencoded "/" ends urlsplit's authority
        f"https://alice:a#{SECRET}@example.com/data.csv",
        f"https://alice:a?{SECRET}@example.com/data.csv",
        f"https://alice:a?{SECRET}@b@example.com/data.csv",
        f"https://alice:@:{SECRET}/@example.com:8443/data.csv?x=1",
        f"s3://key:{SECRET}/x@bucket/data.csv",
        f"//alice:{SECRET}@example.com/data.csv",
        f"https://alice:{SECRET}@[::1/data.csv",  # unparseable
    ],
)
def test_no_byte_of_a_password_survives_redaction(uri):
    shown = redact(uri)
    assert SECRET not in shown and SECRET[:4] not in shown
    assert carries_secret(uri)


@pytest.fixture
def basic_auth_server(tmp_path):
    expected = "Basic " + base64.b64encode(f"alice:a/{SECRET}#?".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            ok = self.headers.get("Authorization") == expected
            self.send_response(200 if ok else 401)
            self.end_headers()
            if ok:
                self.wfile.write(b"a,b\n1,2\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_a_password_with_slash_hash_and_question_mark_authenticates(basic_auth_server):
    assert download(f"http://alice:a/{SECRET}#?@127.0.0.1:{basic_auth_server}/x.csv") == b"a,b\n1,2\n"


@pytest.mark.parametrize("port", ["1", "notaport"])
def test_a_failed_download_never_prints_the_password(port):
    with pytest.raises(StageError) as failure:
        download(f"http://alice:a/{SECRET}@127.0.0.1:{port}/x.csv", deadline_seconds=5)
    assert SECRET not in str(failure.value) and SECRET[:4] not in str(failure.value)


# -- Terminal injection ---------------------------------------------------------------------------

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\u202eevil\x9b31m"


def _no_control_characters(text: str) -> bool:
    return all(c.isprintable() or c in "\n" for c in text)


def test_an_error_message_carries_no_control_character_and_has_a_bounded_length():
    message = str(StageError(f"bad cell {quote(HOSTILE * 100)} in {HOSTILE * 1000}"))
    assert _no_control_characters(message) and "\n" not in message
    assert "\\x1b" in message  # shown, not acted on
    assert len(message) < 2100 and f"({len(HOSTILE) * 100} characters)" in message


def test_data_show_and_list_print_no_control_character(tmp_path, file_store):
    csv = tmp_path / "hostile.csv"
    pd.DataFrame({f"col{HOSTILE}": [f"{HOSTILE}{'y' * 500}", "b", "c", "d", "e", "f"], "x": [1, 2, 3, 4, 5, 6]}).to_csv(
        csv, index=False
    )
    runner = CliRunner()
    pushed = runner.invoke(cli_main, ["data", "push", str(csv), "--name", "hostile", "--store", file_store.uri])
    assert pushed.exit_code == 0, pushed.output
    shown = runner.invoke(cli_main, ["data", "show", "hostile@latest", "--store", file_store.uri])
    listed = runner.invoke(cli_main, ["data", "list", "--store", file_store.uri])
    for result in (shown, listed):
        assert result.exit_code == 0 and _no_control_characters(result.output), repr(result.output)
    assert "y" * 100 not in shown.output  # a cell is cut
    malformed = runner.invoke(cli_main, ["data", "show", f"{HOSTILE}@latest", "--store", file_store.uri])
    assert malformed.exit_code != 0 and _no_control_characters(malformed.output), repr(malformed.output)


def test_mlops_run_quotes_a_hostile_target_name_without_control_characters(tmp_path, demo_data):
    result = subprocess.run(
        [MLOPS, "run", "--data", str(demo_data["wine"]), "--target", HOSTILE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert _no_control_characters(result.stderr + result.stdout), repr(result.stderr)


# -- The report cannot fail on data ---------------------------------------------------------------

MATH = ["$\\foo$", "$x^$", "$$", "\\$a$", "$\\frac{1}{$"]


def test_charts_show_mathtext_like_categories_as_text():
    frame = pd.DataFrame({f"col {MATH[0]}": MATH * 4, "$n$": range(20)})
    svg = charts.split_distributions({"train": frame, "test": frame})
    svg += charts.confusion_heatmap(MATH[:2], [[1, 0], [0, 1]])
    svg += charts.horizontal_bars({m: 0.5 for m in MATH}, "candidates", "metric")
    assert "$\\foo$" in svg and "<svg" in svg


def test_a_failure_after_register_says_that_the_registration_stands(tmp_path):
    progress, error = tmp_path / "progress.jsonl", tmp_path / "error.json"
    progress.write_text(
        json.dumps({"stage": "evaluate", "message": "blessed"})
        + "\n"
        + json.dumps({"stage": "register", "message": "wine@v3 in file:///s (champion -> this version)"})
        + "\n"
    )
    error.write_text(json.dumps({"stage": "report", "error": "could not store the report"}))
    assert failure_reason(error, progress) == (
        "report: could not store the report (after register, which stands: wine@v3 in file:///s "
        "(champion -> this version))"
    )
    error.write_text(json.dumps({"stage": "register", "error": "the store refused"}))
    assert failure_reason(error, progress) == "register: the store refused"


# -- One-line reasons -----------------------------------------------------------------------------


@pytest.mark.parametrize("empty", [np.nan, None], ids=["float", "object"])
def test_an_all_empty_column_trains_instead_of_failing(wine_frame, empty):
    frame = wine_frame.assign(empty=empty, only_missing=None)
    frame.loc[::7, "target"] = np.nan  # rows without a target, as ingest drops them
    frame = frame.dropna(subset=["target"]).sample(frac=1, random_state=0).reset_index(drop=True)
    train, validation = frame.iloc[:100], frame.iloc[100:]
    preprocessor, facts = fit_preprocessor(train, "target")
    assert facts["output_features"] >= 13
    candidate = expand_search_space(
        {"metric": "auto", "candidates": {"classification": {"logistic_regression": {"C": [1.0]}}}}, "classification"
    )[0]
    _, scores = train_candidate(candidate, preprocessor, train, validation, "target", "classification", 0)
    assert scores["accuracy"] > 0.5


# -- The local task server ------------------------------------------------------------------------


def _hello_as(uid: int, socket_path: str) -> bytes:
    """The first byte the task server sends a client that runs as ``uid`` (b"": it hung up)."""
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            os.close(reading)
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(120)
                client.connect(socket_path)
                os.write(writing, b"<" + client.recv(1) + b">")
        except BaseException as error:
            os.write(writing, f"could not ask: {error!r}".encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as answer:
        data = answer.read()
    os.waitpid(child, 0)
    assert data.startswith(b"<") and data.endswith(b">"), data
    return data[1:-1]


def test_the_task_server_serves_only_its_own_user():
    from mlops.runners.task_server import peer_is_own_user

    left, right = socket.socketpair()
    assert peer_is_own_user(left)
    left.close(), right.close()
    if os.getuid() != 0:
        pytest.skip("switching to another user needs root")
    folder = Path(tempfile.mkdtemp(prefix="mlops-peer-", dir="/tmp"))
    folder.chmod(0o777)  # the folder's mode no longer protects the socket: the peer check must
    socket_path = str(folder / "tasks.sock")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlops.runners.task_server", "--socket", socket_path, "--parent", str(os.getpid())]
    )
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(socket_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        os.chmod(socket_path, 0o777)
        assert _hello_as(65534, socket_path) == b""  # nobody: hung up on, nothing run
        assert _hello_as(os.getuid(), socket_path) == b"H"
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("header", [",", "a,a", "x,,"])
def test_a_header_that_names_a_column_twice_is_refused_in_one_line(tmp_path, file_store, header):
    (tmp_path / "data.csv").write_text(f"{header}\r\n{',' * header.count(',')}\r\n")
    result = CliRunner().invoke(
        cli_main, ["data", "push", str(tmp_path / "data.csv"), "--name", "d", "--store", file_store.uri]
    )
    assert result.exit_code == 1 and result.exception.__class__ is SystemExit, result.exception
    assert "two columns are named" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert file_store.list("") == []


@pytest.mark.parametrize("args", [["models", "list", HOSTILE], ["data", "list", "--json", HOSTILE], [HOSTILE]])
def test_click_usage_errors_quote_arguments_without_control_characters(args):
    result = CliRunner().invoke(cli_main, args)
    assert result.exit_code != 0 and _no_control_characters(result.stderr), repr(result.stderr)


@pytest.mark.e2e
@pytest.mark.tfdv
def test_a_champion_that_fails_to_load_stops_the_monitor_in_one_line(tmp_path, demo_data):
    def mlops(*args):
        return subprocess.run([MLOPS, *args], cwd=tmp_path, capture_output=True, text=True, timeout=600)

    trained = mlops("run", "--data", str(demo_data["wine"]), "--target", "target", "--model-name", "wine")
    assert trained.returncode == 0, trained.stderr
    store = FileStore(tmp_path / ".mlops")
    registry = ModelRegistry(store)
    first = registry.get("wine", 1)
    files = {name: registry.read_file(first, name) for name in first.files}
    broken = registry.register(
        "wine", {**files, "model.skops": b"PK\x03\x04 not a model"}, metrics={}, lineage=first.lineage
    )
    registry.set_alias("wine", "champion", broken.version)
    before = store.list("")
    result = mlops("monitor", "--data", str(demo_data["wine"]), "--model-name", "wine")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"the model of wine@{broken.version} is not a readable skops model file" in result.stderr
    assert "Traceback" not in result.stderr and "/" not in result.stderr  # no path of a task's files
    assert [k for k in store.list("") if k not in before and not k.startswith("data/")] == []


@pytest.mark.parametrize(
    "uri", [f"https://alice:{SECRET}@example.com/x.csv", f"https://alice:a/{SECRET}@h/x.csv", "https://h/x.csv?sig=1"]
)
def test_submit_never_passes_a_credential_as_a_run_parameter(uri):
    from mlops.cluster.kfp_client import ParameterError, coerce_params, packaged_spec

    with pytest.raises(ParameterError, match=r"data_uri carries a credential, .* mlops-data-source") as refused:
        coerce_params(packaged_spec(), {"data_uri": uri, "target": "t", "model_name": "m"})
    assert SECRET not in str(refused.value)
    assert coerce_params(packaged_spec(), {"data_uri": redact(uri), "target": "t", "model_name": "m"})[
        "data_uri"
    ] == redact(uri)


def test_a_model_that_cannot_be_loaded_is_named_by_its_version_never_by_a_path(file_store, tmp_path):
    from mlops.stages.monitor import load_baseline
    from mlops.store import model_io

    registry = ModelRegistry(file_store)
    baseline = {"baseline/profile.json": b"{}", "baseline/schema.pbtxt": b"", "baseline/train_statistics.pb": b""}
    broken = registry.register("m", {**baseline, "model.skops": b"PK\x03\x04 not a model"}, metrics={}, lineage={})
    registry.set_alias("m", "champion", broken.version)
    with pytest.raises(model_io.UnsafeModel) as failure:
        load_baseline(file_store, "m")
    assert str(failure.value).startswith("the model of m@1 is not a readable skops model file (")
    assert load_baseline(file_store, "m", check_model=False).version.version == 1  # the CLI's pre-flight
    (tmp_path / "champion").write_bytes(b"PK\x03\x04 not a model")  # a task's file: its name, not its path
    with pytest.raises(model_io.UnsafeModel, match="^model file 'champion' is not a readable") as failure:
        model_io.load(tmp_path / "champion")
    assert str(tmp_path) not in str(failure.value)
