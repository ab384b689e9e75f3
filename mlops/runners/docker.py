"""Every task of a local run in its own container: kfp.local's DockerRunner, configured
the way the cluster configures a pod.

Each task runs in the image the compiled spec names for it (the base image, or
the TFDV image for validate) with the cluster's settings (pipelines/task_settings.py):
a non-root user (uid 10001 when the run is started by root; else the invoking
user, so the store's files stay theirs), all capabilities dropped, no new
privileges, a read-only root filesystem with a writable /tmp (HOME and TMPDIR
point there), and the CPU and memory limits of a pod.

Containers get no network at all with a filesystem store (the store and the
run directory are bind-mounted at their own paths), or the host's when TFDV's
statistics go to a Beam job server (`--beam-runner spark`, docs/beam.md). With an s3:// store the
MinIO must itself be a container of ours (`make minio-up MINIO_RUNTIME=docker`,
mlops/runners/minio_local.py): the tasks join its internal network, which reaches
nothing else, and talk to it by its container name.

kfp.local's DockerRunner assumes success when a container is gone before it
asks for its exit status, so the local runner also trusts the stage's error
file, not only the status (mlops/runners/local.py).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlops import config
from mlops.errors import MlopsError

# What every task container gets (the cluster's limits: cpu_limit "1"; validate's memory_limit 4Gi).
CPU_LIMIT = 1.0
MEMORY_LIMIT = "4g"
TMPFS = {"/tmp": "rw,exec,nosuid,size=2g"}
# MLOPS_* settings a user may tune for a run; the rest describe the host, not the image.
PASSED_SETTINGS = (
    config.STORE_RETRIES,
    config.TFDV_TIMEOUT_SECONDS,
    config.HTTP_TIMEOUT_SECONDS,
    config.TFDV_BEAM_OVER,
    config.BEAM_JOB_ENDPOINT,  # what --beam-runner spark expands to, in the validate task
    config.BEAM_WORKER_POOL,
)
# Labels on our MinIO containers (mlops/runners/minio_local.py) that tell tasks how to reach them.
MINIO_LABEL = "org.kfp-mlops.minio"
MINIO_ENDPOINT_LABEL = "org.kfp-mlops.minio.endpoint"
MINIO_NETWORK_LABEL = "org.kfp-mlops.minio.network"
RUN_LABEL = "org.kfp-mlops.run"


class DockerRunError(MlopsError):
    """The Docker engine, an image or the store is not ready for a containerised run."""


def docker_client():
    """A client of the running Docker engine, or a one-line error saying how to get one."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
        return client
    except Exception as error:  # noqa: BLE001 - the docker SDK raises many types for "no engine"
        raise DockerRunError(
            f"no Docker engine answers ({type(error).__name__}); start one with `make engine-up`"
        ) from None


def check_images(client, images=(config.BASE_IMAGE, config.TFDV_IMAGE)) -> None:
    """Every image the compiled spec names must be here (nothing is pulled)."""
    import docker

    for image in images:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            raise DockerRunError(f"image {image} is not built here; run `make images`") from None


def _container_user() -> str:
    return f"{config.RUN_AS_USER}:{config.RUN_AS_GROUP}" if os.geteuid() == 0 else f"{os.getuid()}:{os.getgid()}"


def share_run_dir(run_dir: Path) -> None:
    """As root, let the pipeline's group write where kfp.local creates each task's output directory.

    kfp.local (running as root here) makes the output directories itself, after
    this function; with the run directory group-owned by the pipeline's group and
    setgid, and the process umask 002 (:func:`group_writable`), every directory it
    makes below is writable by the containers' user without giving them any of root.
    """
    if os.geteuid() != 0:
        return
    outputs = run_dir / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    for directory in (run_dir, outputs):
        os.chown(directory, 0, config.RUN_AS_GROUP)
        os.chmod(directory, 0o2775)


@contextlib.contextmanager
def group_writable():
    """umask 002 for the duration of a containerised run (see :func:`share_run_dir`)."""
    previous = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(previous)


def _hand_over(path: Path) -> None:
    """As root, give a directory tree the tasks write to to the pipeline's user (uid 10001)."""
    if os.geteuid() != 0:
        return
    for root, directories, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in directories), *(os.path.join(root, f) for f in files)]:
            os.chown(name, config.RUN_AS_USER, config.RUN_AS_GROUP, follow_symlinks=False)


def find_minio_container(client, endpoint: str):
    """Our MinIO container whose published endpoint is ``endpoint``, or None."""
    for container in client.containers.list(filters={"label": MINIO_LABEL}):
        if container.labels.get(MINIO_ENDPOINT_LABEL) == endpoint.rstrip("/"):
            return container
    return None


@dataclass
class ContainerSettings:
    """What a run's task containers get; ``runner()`` makes the kfp.local DockerRunner."""

    run_id: str
    user: str
    mounts: list
    environment: dict
    network_mode: str | None = None
    network: str | None = None

    def container_arguments(self) -> dict:
        """Keyword arguments of docker's ``containers.run`` for every task container."""
        arguments = dict(
            user=self.user,
            mounts=self.mounts,
            environment=self.environment,
            read_only=True,
            tmpfs=dict(TMPFS),
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=MEMORY_LIMIT,
            nano_cpus=int(CPU_LIMIT * 1e9),
            labels={RUN_LABEL: self.run_id},
        )
        if self.network:
            arguments["network"] = self.network
        else:
            arguments["network_mode"] = self.network_mode or "none"
        return arguments

    def runner(self):
        from kfp import local

        return local.DockerRunner(**self.container_arguments())


def beam_runs_outside(arguments: dict) -> bool:
    """Whether the run's TFDV statistics go to a Beam runner outside the validate container (a job server,
    Dataflow): anything but none or Beam's DirectRunner, which runs in the task's own process."""
    options = [option.lstrip("-") for option in str(arguments.get("beam_options", "")).split()]
    runners = [option.split("=", 1)[1] for option in options if option.startswith("runner=")]
    return (
        arguments.get("beam_runner", "") not in ("", "direct")
        or any(option.startswith("job_endpoint=") for option in options)
        or any(runner not in ("DirectRunner", "direct") for runner in runners)
    )


def _bind(source: Path, read_only: bool):
    from docker.types import Mount

    return Mount(target=str(source), source=str(source), type="bind", read_only=read_only)


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri:
        return Path(uri).resolve()
    return None


def container_settings(run_dir: Path, arguments: dict) -> ContainerSettings:
    """The container settings for one run of ``training_pipeline(**arguments)`` writing to ``run_dir``."""
    client = docker_client()
    try:
        check_images(client)
        run_id = uuid.uuid4().hex[:12]
        environment = {
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "MPLCONFIGDIR": "/tmp/matplotlib",
            config.PROGRESS_FILE.name: str(config.PROGRESS_FILE.get() or ""),
            config.ERROR_FILE.name: str(config.ERROR_FILE.get() or ""),
        }
        for setting in PASSED_SETTINGS:
            if os.environ.get(setting.name):
                environment[setting.name] = str(setting.get())
        from mlops.data.uris import SECRET_URI_ENV

        if os.environ.get(SECRET_URI_ENV):  # a data URI's secret travels by environment, never as a parameter
            environment[SECRET_URI_ENV] = os.environ[SECRET_URI_ENV]
        mounts = [_bind(run_dir, read_only=False)]
        for key in ("data_uri", "schema_uri"):
            path = _local_path(arguments.get(key, ""))
            if path is not None and path.is_file():
                mounts.append(_bind(path, read_only=True))
        settings = ContainerSettings(run_id=run_id, user=_container_user(), mounts=mounts, environment=environment)
        store = arguments.get("store_uri") or config.default_store_uri()
        store_path = _local_path(store)
        if beam_runs_outside(arguments):
            if store_path is None:
                raise DockerRunError(
                    "--runner docker with a Beam runner outside the container needs a filesystem store: the tasks "
                    "then share the host's network to reach the job server (with an s3:// store they join only "
                    "MinIO's network); use --runner subprocess, or --store file://..."
                )
            # The job server and its workers (the local Spark cluster listens on 127.0.0.1) are the host's;
            # they read the split files at the paths the run directory is mounted at, which are the host's.
            settings.network_mode = "host"
        if store_path is not None:
            store_path.mkdir(parents=True, exist_ok=True)
            _hand_over(store_path)
            mounts.append(_bind(store_path, read_only=False))
        elif store.startswith("s3://"):
            endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
            minio = find_minio_container(client, endpoint)
            if minio is None:
                raise DockerRunError(
                    f"the store's endpoint {endpoint or '(AWS_ENDPOINT_URL unset)'} is not a MinIO "
                    "container of ours; tasks in containers reach MinIO only as one: "
                    "`make minio-up MINIO_RUNTIME=docker`, then `source .minio/env`"
                )
            settings.network = minio.labels[MINIO_NETWORK_LABEL]
            # Every role's credential (each task uses only its own: kfp.local gives all tasks one
            # environment; on a cluster a pod mounts the one Secret of its role).
            environment["AWS_ENDPOINT_URL"] = f"http://{minio.name}:9000"
            environment.update(
                {
                    key: value
                    for key, value in os.environ.items()
                    if key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
                    or (key.startswith("MLOPS_") and key.endswith(("_ACCESS_KEY_ID", "_SECRET_ACCESS_KEY")))
                }
            )
        share_run_dir(run_dir)
        return settings
    finally:
        client.close()
