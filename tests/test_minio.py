"""A real MinIO: faults (unreachable, wrong credentials, killed mid-write), `make minio-up`,
and the whole pipeline with its store on MinIO, including reproduce."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlops.runners.minio_local import MinioServer, free_port, minio_binary
from mlops.store import StoreError
from mlops.store.datasets import DataVersions
from mlops.store.registry import ModelRegistry
from mlops.store.s3 import S3Store

pytestmark = pytest.mark.minio
MLOPS = str(Path(sys.executable).with_name("mlops"))
PYTHON = sys.executable


@pytest.fixture
def own_minio(tmp_path, monkeypatch):
    """A MinIO of this test's own, which the test may kill and restart."""
    binary = minio_binary()
    if not binary.exists():
        pytest.skip("MinIO binary missing: run `make minio-bin`") if not os.environ.get("CI") else pytest.fail(
            "no MinIO"
        )
    server = MinioServer.with_random_credentials(tmp_path / "data", binary=binary).start()
    server.create_bucket("faults")
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLOPS_STORE_RETRIES", "1")
    yield server
    server.stop()


def test_unreachable_endpoint_is_one_clear_error(monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("MLOPS_STORE_RETRIES", "1")
    with pytest.raises(StoreError, match=f"^cannot reach the store at {endpoint} while listing models/"):
        ModelRegistry(S3Store.from_uri("s3://mlops/store")).names()


def test_wrong_credentials_are_one_clear_error_on_the_command_line(minio_env, tmp_path):
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "not-the-secret", "MLOPS_STORE_RETRIES": "1"}
    result = subprocess.run(
        [MLOPS, "models", "list", "--store", "s3://test/x"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: the store at {minio_env.endpoint} rejected the credentials "
        "(SignatureDoesNotMatch) while listing models/: check AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY\n"
    )


def test_missing_bucket_says_how_to_make_it(minio_env):
    with pytest.raises(StoreError, match="bucket 'nope' does not exist at .*make minio-up"):
        S3Store.from_uri("s3://nope/x").put("a", b"1")


WRITER = """
import sys
from mlops.store.s3 import S3Store
from mlops.store.registry import ModelRegistry
ModelRegistry(S3Store.from_uri(sys.argv[1])).register(
    "big", {"model.joblib": b"x" * (256 * 1024 * 1024)}, metrics={}, lineage={})
"""


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise TimeoutError("condition not reached")


def test_killing_the_writer_mid_registration_leaves_nothing_visible(own_minio):
    store = S3Store.from_uri("s3://faults/kill-writer")
    writer = subprocess.Popen([PYTHON, "-c", WRITER, store.uri], env=os.environ.copy())
    _wait_for(lambda: store.list("models/big/versions/000001/claim.json"))
    writer.send_signal(signal.SIGKILL)  # while the 256 MiB model is uploading
    writer.wait()
    registry = ModelRegistry(store)
    assert registry.versions("big") == []
    assert registry.register("big", {"model.joblib": b"small"}, metrics={}, lineage={}).version == 2
    assert [v.version for v in registry.versions("big")] == [2]


def test_killing_minio_mid_write_then_recovering(own_minio):
    store = S3Store.from_uri("s3://faults/kill-server")
    registry, versions = ModelRegistry(store), DataVersions(store)
    errors = []

    def register_big():
        try:
            registry.register("big", {"model.joblib": b"x" * (256 * 1024 * 1024)}, metrics={}, lineage={})
        except StoreError as error:
            errors.append(str(error))

    thread = threading.Thread(target=register_big)
    thread.start()
    _wait_for(lambda: store.list("models/big/versions/000001/claim.json"))
    own_minio.kill()
    thread.join(timeout=120)
    assert errors and own_minio.endpoint in errors[0], errors
    with pytest.raises(StoreError, match=f"cannot reach the store at {own_minio.endpoint}"):
        registry.versions("big")

    own_minio.start()  # same port, same data directory
    assert registry.versions("big") == []  # the half-written version never became visible
    assert registry.register("big", {"model.joblib": b"ok"}, metrics={}, lineage={}).version == 2
    assert versions.names() == []


def test_minio_up_writes_a_sourceable_env_file_and_down_stops_it(tmp_path):
    state = tmp_path / "state"
    env = {**os.environ, "MLOPS_MINIO_STATE_DIR": str(state), "MLOPS_MINIO_PORT": str(free_port())}
    up = subprocess.run([PYTHON, "-m", "mlops.runners.minio_local", "up"], capture_output=True, text=True, env=env)
    try:
        assert up.returncode == 0, up.stderr
        env_file = state / "env"
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        assert oct((state / "credentials.json").stat().st_mode & 0o777) == "0o600"
        listing = subprocess.run(
            ["bash", "-c", f"source {env_file} && {MLOPS} models list"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={k: v for k, v in env.items() if not k.startswith(("AWS_", "MLOPS_STORE"))},
        )
        assert listing.returncode == 0, listing.stderr
        assert "no models in s3://mlops/store" in listing.stdout
        again = subprocess.run(
            [PYTHON, "-m", "mlops.runners.minio_local", "up"], capture_output=True, text=True, env=env
        )
        assert "already running" in again.stdout
    finally:
        down = subprocess.run(
            [PYTHON, "-m", "mlops.runners.minio_local", "down"], capture_output=True, text=True, env=env
        )
    assert down.returncode == 0 and "MinIO stopped" in down.stdout
    assert not (state / "minio.pid").exists()


@pytest.mark.e2e
def test_pipeline_with_its_store_on_minio_and_reproduce(minio_env, demo_data, tmp_path):
    store_uri = "s3://test/e2e-store"
    env = {**os.environ, "MLOPS_STORE": store_uri}

    def mlops(*args):
        return subprocess.run([MLOPS, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)

    pushed = mlops("data", "push", str(demo_data["breast_cancer"]), "--name", "cancer", "--pointer", "cancer.data.yaml")
    assert pushed.returncode == 0, pushed.stderr
    run = mlops("run", "--data", "cancer.data.yaml", "--target", "target")
    assert run.returncode == 0, run.stderr
    assert "model:   cancer@1" in run.stdout and f"in {store_uri}" in run.stdout

    store = S3Store.from_uri(store_uri)
    version = ModelRegistry(store).resolve("cancer@champion")
    assert version.version == 1
    assert version.lineage["data"]["ref"].startswith("cancer@")
    assert len(DataVersions(store).versions("cancer")) == 1  # the run reused the pushed version

    reproduced = mlops("models", "reproduce", "cancer@1")
    assert reproduced.returncode == 0, reproduced.stdout + reproduced.stderr
    assert "model:    bit-identical" in reproduced.stdout and "metrics:  equal" in reproduced.stdout
    assert [v.version for v in ModelRegistry(store).versions("cancer")] == [1]  # reproduce registers nothing


@pytest.mark.e2e
def test_minio_killed_mid_run_fails_cleanly_and_a_rerun_succeeds(own_minio, demo_data, tmp_path):
    env = {**os.environ, "MLOPS_STORE": "s3://faults/run"}
    command = [MLOPS, "run", "--data", str(demo_data["wine"]), "--target", "target"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    for line in run.stdout:
        if line.startswith("[train]"):
            own_minio.kill()
            break
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 1
    assert stderr.count("\n") == 1 and own_minio.endpoint in stderr, stderr

    own_minio.start()
    store = S3Store.from_uri("s3://faults/run")
    assert ModelRegistry(store).names() == []  # nothing half-registered
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert [v.version for v in ModelRegistry(store).versions("demo-wine")] == [1]


def test_ingest_reads_an_s3_uri(minio_env, demo_data):
    from mlops.errors import StageError
    from mlops.stages.ingest import load_table

    store = S3Store.from_uri("s3://test")
    store.put("raw/wine.csv", demo_data["wine"].read_bytes())
    assert load_table("s3://test/raw/wine.csv").num_rows == 178
    with pytest.raises(StageError, match="no object at s3://test/raw/missing.csv"):
        load_table("s3://test/raw/missing.csv")
