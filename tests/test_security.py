"""Least privilege and safe loading: what a task may read, what is never recorded, what is never loaded.

Each test here fails without the fix it is named after (SECURITY.md lists them)."""

import base64
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlops.data.http_source import download
from mlops.data.source_policy import SourcePolicy
from mlops.errors import MlopsError, StageError
from mlops.stages.ingest import load_table
from mlops.store import StoreError, model_io
from mlops.store.registry import ModelRegistry

MLOPS = str(Path(sys.executable).with_name("mlops"))
SECRET_TOKEN = "S3CR3T-T0KEN-do-not-record"
SECRET_SIGNATURE = "S1GNATURE-do-not-record"


class Server:
    """A loopback HTTP server with a few behaviours: files, basic auth, redirects, slow and endless bodies."""

    def __init__(self, directory: Path, user: str | None = None, password: str | None = None):
        server_self = self
        self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(directory), **kwargs)

            def log_message(self, *args):
                pass

            def do_GET(self):
                server_self.requests.append((self.path, self.headers.get("Authorization")))
                if user is not None:
                    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                    if self.headers.get("Authorization") != expected:
                        self.send_response(401)
                        self.end_headers()
                        return
                if self.path.startswith("/redirect?to="):
                    self.send_response(302)
                    self.send_header("Location", self.path.split("to=", 1)[1])
                    self.end_headers()
                    return
                if self.path.startswith("/slow"):
                    self.send_response(200)
                    self.end_headers()
                    for _ in range(100):
                        self.wfile.write(b"a,b\n")
                        self.wfile.flush()
                        time.sleep(0.2)
                    return
                if self.path.startswith("/endless"):
                    self.send_response(200)
                    self.end_headers()
                    try:
                        for _ in range(10_000):
                            self.wfile.write(b"x" * 65536)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                self.path = self.path.split("?", 1)[0]
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}{path}"

    def stop(self):
        self.httpd.shutdown()


@pytest.fixture
def server(tmp_path, wine_frame):
    wine_frame.to_csv(tmp_path / "wine.csv", index=False)
    running = Server(tmp_path)
    yield running
    running.stop()


# -- Sources under policy -------------------------------------------------------------------------


def test_without_an_allow_list_everything_local_may_be_read(server):
    assert len(load_table(server.url("/wine.csv"))) == 178


@pytest.mark.parametrize(
    "entries, uri_path, message",
    [
        # a host that is not listed
        (("https://data.example.com",), "/wine.csv", "host '127.0.0.1' is not in MLOPS_INGEST_ALLOW"),
        # listed by name, but it resolves to loopback: refused unless its range is listed
        (("http://127.0.0.1",), "/wine.csv", "may not connect to 127.0.0.1 at 127.0.0.1: a loopback"),
    ],
)
def test_hosts_are_checked_by_name_and_by_the_address_connected_to(server, monkeypatch, entries, uri_path, message):
    monkeypatch.setenv("MLOPS_INGEST_ALLOW", ",".join(entries))
    with pytest.raises(StageError, match=message):
        load_table(server.url(uri_path))


def test_a_listed_private_range_may_be_read(server, monkeypatch):
    monkeypatch.setenv("MLOPS_INGEST_ALLOW", "http://127.0.0.1,cidr:127.0.0.0/8")
    assert len(load_table(server.url("/wine.csv"))) == 178


def test_every_redirect_is_checked(server, monkeypatch):
    monkeypatch.setenv("MLOPS_INGEST_ALLOW", "http://127.0.0.1,cidr:127.0.0.0/8")
    with pytest.raises(StageError, match="host '169.254.169.254' is not in MLOPS_INGEST_ALLOW"):
        load_table(server.url("/redirect?to=http://169.254.169.254/latest/meta-data/"))


def test_the_metadata_address_is_refused_even_when_a_host_name_points_there():
    policy = SourcePolicy(("http://metadata.internal",))
    with pytest.raises(StageError, match="link-local or private address"):
        policy.check_address("metadata.internal", "169.254.169.254")


@pytest.mark.parametrize(
    "uri, message",
    [
        ("s3://mlpipeline/v2/artifacts/x.csv", "that bucket is not in MLOPS_INGEST_ALLOW"),
        ("/etc/passwd", "may not read the local file /etc/passwd"),
        ("ftp://example.com/x.csv", "scheme 'ftp' is not allowed"),
    ],
)
def test_buckets_files_and_schemes_are_checked(monkeypatch, uri, message):
    monkeypatch.setenv("MLOPS_INGEST_ALLOW", "s3://mlops/incoming,file:/srv/data")
    with pytest.raises(StageError, match=message):
        load_table(uri)


def test_a_download_is_capped_while_streaming_and_bounded_in_time(server):
    with pytest.raises(StageError, match="is larger than the limit of 1000000 bytes"):
        download(server.url("/endless"), max_bytes=1_000_000)
    started = time.monotonic()
    with pytest.raises(StageError, match="took longer than 1 s"):
        download(server.url("/slow"), max_bytes=1_000_000, deadline_seconds=1)
    assert time.monotonic() - started < 5
    with pytest.raises(StageError, match=r"is \d+ bytes, over the limit of 100$"):  # Content-Length, before reading
        download(server.url("/wine.csv"), max_bytes=100)


# -- Credentials in a data URI: they work, and are never recorded -----------------------------------


def test_user_info_becomes_basic_auth_and_is_not_sent_to_another_host(tmp_path, wine_frame):
    wine_frame.to_csv(tmp_path / "wine.csv", index=False)
    private = Server(tmp_path, user="alice", password=SECRET_TOKEN)
    try:
        assert len(load_table(private.url("/wine.csv", f"alice:{SECRET_TOKEN}@"))) == 178
        with pytest.raises(StageError) as failure:
            load_table(private.url("/wine.csv", "alice:wrong@"))
        assert "HTTP 401" in str(failure.value) and "wrong" not in str(failure.value)
        other = Server(tmp_path)
        try:
            load_table(private.url(f"/redirect?to={other.url('/wine.csv')}", f"alice:{SECRET_TOKEN}@"))
            assert other.requests and other.requests[-1][1] is None  # no Authorization to the other host
        finally:
            other.stop()
    finally:
        private.stop()


@pytest.mark.e2e
@pytest.mark.tfdv
def test_a_run_from_a_uri_with_credentials_records_them_nowhere(tmp_path, wine_frame):
    (tmp_path / "served").mkdir()
    wine_frame.to_csv(tmp_path / "served" / "wine.csv", index=False)
    private = Server(tmp_path / "served", user="alice", password=SECRET_TOKEN)
    work = tmp_path / "work"
    work.mkdir()
    try:
        uri = private.url(f"/wine.csv?X-Amz-Signature={SECRET_SIGNATURE}", f"alice:{SECRET_TOKEN}@")
        result = subprocess.run(
            [MLOPS, "run", "--data", uri, "--target", "target"], cwd=work, capture_output=True, text=True, timeout=900
        )
    finally:
        private.stop()
    assert result.returncode == 0, result.stderr
    assert "REDACTED" in result.stdout
    everything = [result.stdout, result.stderr]
    for path in work.rglob("*"):
        if path.is_file():
            everything.append(path.read_bytes().decode("utf-8", "replace"))
    written = "\n".join(everything)
    assert SECRET_TOKEN not in written and SECRET_SIGNATURE not in written
    assert any("REDACTED@127.0.0.1" in text for text in everything[2:])  # the lineage kept the redacted source


# -- Models load safely --------------------------------------------------------------------------


def test_a_model_naming_an_untrusted_type_is_refused_before_it_is_built():
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    booby_trapped = Pipeline([("step", FunctionTransformer(os.system))])
    with pytest.raises(model_io.UnsafeModel, match="names types that are not trusted \\(posix.system"):
        model_io.loads(model_io.dumps(booby_trapped), source="model.skops")


def test_a_tampered_model_file_is_refused_by_its_manifest(file_store, overwrite):
    registry = ModelRegistry(file_store)
    version = registry.register("m", {"model.skops": b"original"}, metrics={}, lineage={})
    overwrite(file_store, "models/m/versions/000001/model.skops", b"tampered")
    with pytest.raises(StoreError, match="does not match its recorded sha256"):
        registry.read_file(version, "model.skops")


# -- Names, reports, processes --------------------------------------------------------------------


def test_a_model_name_cannot_reach_other_paths(file_store):
    from mlops.stages import validate

    with pytest.raises(MlopsError, match="invalid model name '../etc'"):
        validate.curated_schema_path("../etc")
    with pytest.raises(MlopsError, match="invalid model name"):
        ModelRegistry(file_store).versions("a/../../b")


def test_minio_down_signals_only_our_own_minio(tmp_path, monkeypatch):
    from mlops.runners import minio_local

    monkeypatch.setenv("MLOPS_MINIO_STATE_DIR", str(tmp_path))
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "state.json").write_text(json.dumps({"runtime": "process", "pid": bystander.pid}))
        minio_local.down()
        time.sleep(0.2)
        assert bystander.poll() is None  # a stale pid file pointing at someone else's process
    finally:
        bystander.kill()


def test_reports_load_nothing_from_anywhere():
    from mlops.reporting import report

    page = report.render_report(
        version=_version(),
        validation={"tfdv_version": "1", "skew": [], "features": {}},
        schema_description={"source": "inferred", "origin": ""},
        leaderboard=[],
        evaluation={"test_metrics": {"f1_macro": 0.9}, "baseline_metrics": {"f1_macro": 0.3}},
    )
    assert (
        "<script" not in page
        and "<iframe" not in page
        and "http" not in page.split("</style>", 1)[1].replace("http://127", "")
    )


def _version() -> dict:
    lineage = {
        "data": {
            "rows": {"train": 1, "validation": 1, "test": 1},
            "columns": {},
            "source": "s",
            "ref": "d@1",
            "dropped_missing_target": 0,
            "target": "t",
        },
        "blessing": {"blessed": True, "reason": "r"},
        "params": {"metric": "f1_macro", "candidate": {"id": "c01"}},
        "kfp": {"run_name": "r"},
        "code": {"version": "v"},
        "split": {},
    }
    return {"name": "m", "version": 1, "lineage": lineage, "aliases": []}


def test_the_compiled_specs_mount_only_each_tasks_role_secret():
    import yaml

    from mlops import config
    from pipelines.compile import COMPILED_DIR

    for name in ("training_pipeline.yaml", "monitor_pipeline.yaml"):
        documents = list(yaml.safe_load_all((COMPILED_DIR / name).read_text()))
        for executor, settings in documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items():
            secrets = {entry["secretName"] for entry in settings["secretAsEnv"]}
            role = "registry" if executor == "exec-register" else "pipeline"
            assert config.ROLE_SECRET_NAMES[role] in secrets, executor
            assert config.MINIO_SECRET_NAME not in secrets  # KFP's artifact credential is KFP's alone
            assert {"/tmp"} == {mount["mountPath"] for mount in settings["emptyDirMounts"]}, executor
            assert settings["securityContext"]["runAsNonRoot"] is True
