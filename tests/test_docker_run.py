"""The compiled pipeline with every task in its image (kfp.local's DockerRunner), run the way a
pod runs: uid 10001, read-only root filesystem, no capabilities, no network but the store's.

Needs a Docker engine and the images (`make engine-up images`); without them these tests skip,
except under CI=true, where they fail.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops import config
from mlops.runners import docker as docker_runner
from mlops.runners.local import RunFailed, run_pipeline
from mlops.runners.minio_local import MinioContainer
from mlops.store.fs import FileStore
from mlops.store.registry import ModelRegistry
from mlops.store.s3 import S3Store

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.tfdv]
MLOPS = str(Path(sys.executable).with_name("mlops"))


@pytest.fixture(scope="module")
def docker():
    try:
        client = docker_runner.docker_client()
        docker_runner.check_images(client, images=(config.BASE_IMAGE, config.TFDV_IMAGE, config.MINIO_IMAGE))
    except docker_runner.DockerRunError as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{error} (CI=true: the engine and the images must be there)")
        pytest.skip(str(error))
    yield client
    client.close()


def started_containers(client, since: float, until: float) -> list[dict]:
    """The 'start' events of task containers (ours carry the run label) in a time window."""
    events = client.events(
        since=int(since),
        until=int(until) + 1,
        decode=True,
        filters={"type": "container", "event": "start", "label": docker_runner.RUN_LABEL},
    )
    return [event["Actor"]["Attributes"] for event in events]


def test_every_task_runs_in_its_image_as_the_pipelines_user(docker, demo_data, tmp_path):
    started = time.time()
    result = subprocess.run(
        [MLOPS, "run", "--data", str(demo_data["wine"]), "--target", "target", "--runner", "docker"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "blessed: yes, now the champion" in result.stdout
    stages = [line.split("]")[0].strip("[") for line in result.stdout.splitlines() if line.startswith("[")]
    assert stages[:4] == ["ingest", "split", "validate", "prepare"] and stages[-3:] == [
        "evaluate",
        "register",
        "report",
    ]
    # The engine's own record: one container per task of the pipeline, validate's in the TFDV image.
    images = [attributes["image"] for attributes in started_containers(docker, started, time.time())]
    tasks = [
        "ingest",
        "split",
        "prepare",
        "expand_candidates",
        "train c01",
        "train c02",
        "train c03",
        "train c04",
        "select_best",
        "evaluate",
        "register",
        "report",
    ]
    assert sorted(images) == sorted([config.BASE_IMAGE] * len(tasks) + [config.TFDV_IMAGE]), images
    version = ModelRegistry(FileStore(tmp_path / ".mlops")).get("demo-wine", 1)
    assert version.aliases == ["champion"] and version.lineage["environment"]["packages"]["python"].startswith("3.11")
    if os.geteuid() == 0:  # the tasks wrote the store as the pipeline's user, not as root
        manifest = tmp_path / ".mlops" / "models" / "demo-wine" / "versions" / "000001" / "manifest.json"
        assert manifest.stat().st_uid == config.RUN_AS_USER


def test_a_run_with_its_store_in_our_minio_container(docker, demo_data, tmp_path):
    minio = MinioContainer.with_random_credentials().start()
    try:
        minio.create_bucket("mlops")
        env = {**os.environ, **minio.env(), "MLOPS_STORE": "s3://mlops/store"}
        result = subprocess.run(
            [MLOPS, "run", "--data", str(demo_data["diabetes"]), "--target", "target", "--runner", "docker"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=1200,
            env=env,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        os.environ.update(minio.env())
        try:
            version = ModelRegistry(S3Store.from_uri("s3://mlops/store")).get("demo-diabetes", 1)
        finally:
            for key in minio.env():
                os.environ.pop(key, None)
        assert version.lineage["task"] == "regression"
    finally:
        minio.stop(remove_data=True)


def test_a_failing_task_in_a_container_fails_the_run_in_one_line(docker, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(RunFailed, match="^ingest: empty.csv is empty$"):
        run_pipeline(
            {
                "data_uri": str(empty),
                "target": "target",
                "model_name": "empty",
                "store_uri": (tmp_path / "store").as_uri(),
            },
            runs_dir=tmp_path / "runs",
            emit=lambda line: None,
            runner="docker",
        )


def _probe(client, settings, script: str) -> tuple[int, str]:
    """Run ``python3 -c script`` in the base image with a task container's settings."""
    arguments = settings.container_arguments()
    container = client.containers.run(config.BASE_IMAGE, ["python3", "-c", script], detach=True, **arguments)
    try:
        status = container.wait(timeout=120)["StatusCode"]
        return status, container.logs().decode()
    finally:
        container.remove(force=True)


def test_task_containers_meet_what_a_pod_meets(docker, tmp_path):
    """uid 10001 (when started by root), a read-only root filesystem, a writable /tmp, no capabilities,
    and no network at all with a filesystem store."""
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    settings = docker_runner.container_settings(
        run_dir, {"data_uri": str(data), "store_uri": (tmp_path / "store").as_uri()}
    )
    status, output = _probe(
        docker,
        settings,
        "\n".join(
            [
                "import os, socket, pathlib",
                "print('uid', os.getuid())",
                "pathlib.Path('/tmp/x').write_text('ok'); print('tmp writable')",
                "try:\n    pathlib.Path('/opt/venv/x').write_text('x'); print('root fs WRITABLE')\n"
                "except OSError as e:\n    print('root fs read-only', e.errno)",
                "print('caps', open('/proc/self/status').read().split('CapEff:')[1].split()[0])",
                "try:\n    socket.create_connection(('8.8.8.8', 53), timeout=3); print('network REACHABLE')\n"
                "except OSError:\n    print('no network')",
                f"print('data', open({str(data)!r}).read().strip().replace(chr(10), ';'))",
            ]
        ),
    )
    assert status == 0, output
    expected_uid = config.RUN_AS_USER if os.geteuid() == 0 else os.getuid()
    assert f"uid {expected_uid}" in output
    assert "tmp writable" in output and "root fs read-only 30" in output  # EROFS
    assert "caps 0000000000000000" in output and "no network" in output and "data a,b;1,2" in output


def test_tasks_reach_our_minio_container_and_nothing_else(docker, tmp_path):
    minio = MinioContainer.with_random_credentials().start()
    try:
        os.environ.update(minio.env())
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        settings = docker_runner.container_settings(run_dir, {"store_uri": "s3://mlops/store"})
        status, output = _probe(
            docker,
            settings,
            "\n".join(
                [
                    "import os, socket, urllib.request",
                    "print('endpoint', os.environ['AWS_ENDPOINT_URL'])",
                    "print('minio', urllib.request.urlopen(os.environ['AWS_ENDPOINT_URL'] + '/minio/health/ready',"
                    " timeout=5).status)",
                    "try:\n    socket.create_connection(('8.8.8.8', 53), timeout=3); print('outside REACHABLE')\n"
                    "except OSError:\n    print('outside unreachable')",
                ]
            ),
        )
        assert status == 0, output
        assert f"endpoint http://{minio.name}:9000" in output and "minio 200" in output
        assert "outside unreachable" in output
    finally:
        for key in minio.env():
            os.environ.pop(key, None)
        minio.stop(remove_data=True)


def test_an_s3_store_that_is_not_our_container_is_refused_in_one_line(docker, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(docker_runner.DockerRunError, match="is not a MinIO container of ours"):
        docker_runner.container_settings(tmp_path, {"store_uri": "s3://mlops/store"})
