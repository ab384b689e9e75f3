"""A real MinIO server on 127.0.0.1 for development (`make minio-up`) and tests.

The server binary is built from source by `make minio-bin` (MinIO publishes no
community binaries since 2025-10). Credentials are random, made on first use,
kept in a git-ignored directory and never printed.

    python -m mlops.runners.minio_local up     # start, create the bucket, write .minio/env
    python -m mlops.runners.minio_local down   # stop
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from mlops import config

DEFAULT_BINARY = config.MINIO_BIN.default
DEFAULT_BUCKET = config.STORE_BUCKET


def state_dir() -> Path:
    """Credentials, data, pid and env file of `make minio-up` (git-ignored)."""
    return config.MINIO_STATE_DIR.get()


def default_port() -> int:
    return config.MINIO_PORT.get()


def minio_binary() -> Path:
    return config.MINIO_BIN.get()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MinioServer:
    """One MinIO process serving ``data_dir`` on 127.0.0.1:``port``."""

    data_dir: Path
    port: int
    access_key: str
    secret_key: str
    binary: Path = DEFAULT_BINARY
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @classmethod
    def with_random_credentials(cls, data_dir: Path, port: int | None = None, binary: Path | None = None):
        return cls(
            Path(data_dir),
            port or free_port(),
            "mlops-" + secrets.token_hex(6),
            secrets.token_urlsafe(24),
            binary or minio_binary(),
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def start(self, timeout: float = 60.0) -> "MinioServer":
        if not self.binary.exists():
            raise FileNotFoundError(f"MinIO server binary not found at {self.binary}: run `make minio-bin`")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir.parent / f"minio-{self.port}.log"
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            "MINIO_CI_CD": "1",
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    "server",
                    str(self.data_dir),
                    "--address",
                    f"127.0.0.1:{self.port}",
                    "--console-address",
                    f"127.0.0.1:{free_port()}",
                    "--quiet",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"MinIO exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/minio/health/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"MinIO at {self.endpoint} not ready after {timeout}s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: the crash case, no graceful shutdown."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def create_bucket(self, bucket: str = DEFAULT_BUCKET) -> None:
        _create_bucket(self.env(), bucket)


class MinioContainer:
    """Our MinIO image as a container: published on 127.0.0.1:``port`` for this machine, and on
    an internal Docker network (which reaches nothing else) for task containers, by its name.

    The docker runner (mlops/runners/docker.py) finds it by its labels.
    """

    def __init__(self, port: int, access_key: str, secret_key: str, name: str | None = None):
        self.port, self.access_key, self.secret_key = port, access_key, secret_key
        self.name = name or f"mlops-minio-{port}"
        self.network = f"{self.name}-net"
        self.volume = f"{self.name}-data"

    @classmethod
    def with_random_credentials(cls, port: int | None = None):
        return cls(port or free_port(), "mlops-" + secrets.token_hex(6), secrets.token_urlsafe(24))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def start(self, timeout: float = 60.0) -> "MinioContainer":
        import docker

        from mlops.runners import docker as docker_runner

        client = docker_runner.docker_client()
        try:
            docker_runner.check_images(client, images=(config.MINIO_IMAGE,))
            try:
                client.networks.get(self.network)
            except docker.errors.NotFound:
                client.networks.create(self.network, internal=True, labels={docker_runner.MINIO_LABEL: "true"})
            labels = {
                docker_runner.MINIO_LABEL: "true",
                docker_runner.MINIO_ENDPOINT_LABEL: self.endpoint,
                docker_runner.MINIO_NETWORK_LABEL: self.network,
            }
            # The console stays off: nothing here needs it, and it is one more thing to expose.
            container = client.containers.run(
                config.MINIO_IMAGE,
                ["server", "/data", "--address", ":9000"],
                name=self.name,
                detach=True,
                labels=labels,
                ports={"9000/tcp": ("127.0.0.1", self.port)},
                environment={
                    "MINIO_ROOT_USER": self.access_key,
                    "MINIO_ROOT_PASSWORD": self.secret_key,
                    "MINIO_BROWSER": "off",
                    "MINIO_UPDATE": "off",
                    "MINIO_CI_CD": "1",
                },
                volumes={self.volume: {"bind": "/data", "mode": "rw"}},
                read_only=True,
                tmpfs={"/tmp": "rw,size=64m"},
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
            )
            client.networks.get(self.network).connect(container, aliases=[self.name])
        finally:
            client.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/minio/health/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise TimeoutError(f"MinIO container {self.name} not ready after {timeout}s (docker logs {self.name})")

    def stop(self, remove_data: bool = False) -> None:
        import docker

        from mlops.runners import docker as docker_runner

        client = docker_runner.docker_client()
        try:
            try:
                client.containers.get(self.name).remove(force=True)
            except docker.errors.NotFound:
                pass
            for remove, getter, name in (
                (True, client.networks.get, self.network),
                (remove_data, client.volumes.get, self.volume),
            ):
                if remove:
                    try:
                        getter(name).remove()
                    except docker.errors.NotFound:
                        pass
        finally:
            client.close()

    def create_bucket(self, bucket: str = DEFAULT_BUCKET) -> None:
        _create_bucket(self.env(), bucket)


def _create_bucket(env: dict, bucket: str) -> None:
    from minio import Minio

    endpoint = urlparse(env["AWS_ENDPOINT_URL"])
    client = Minio(
        endpoint.netloc,
        access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"],
        secure=endpoint.scheme == "https",
    )
    from mlops.store.roles import make_store_bucket

    make_store_bucket(client, bucket)


# `make minio-up` / `make minio-down` ------------------------------------------


def random_role_credentials() -> dict[str, tuple[str, str]]:
    """One random (access key, secret key) per role (mlops.store.roles)."""
    from mlops.store.roles import ROLES

    return {role: (f"mlops-{role}-{secrets.token_hex(4)}", secrets.token_urlsafe(24)) for role in ROLES}


def _credentials() -> dict:
    """Random credentials (root, for the bootstrap only, and one per role), made once and kept in
    .minio/credentials.json (mode 0600)."""
    path = state_dir() / "credentials.json"
    if path.exists():
        credentials = json.loads(path.read_text())
        if "roles" in credentials:
            return credentials
    state_dir().mkdir(parents=True, exist_ok=True)
    credentials = {
        "access_key": "mlops-" + secrets.token_hex(6),
        "secret_key": secrets.token_urlsafe(24),
        "roles": random_role_credentials(),
    }
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(credentials, handle)
    return credentials


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _ours(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a MinIO server serving ``data_dir`` (not a process that reused a stale pid)."""
    try:
        executable = os.readlink(f"/proc/{pid}/exe")
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return Path(executable).name == "minio" and str(data_dir).encode() in arguments


def _state() -> dict:
    path = state_dir() / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def up(bucket: str = DEFAULT_BUCKET, runtime: str = "process") -> None:
    """Start MinIO (a process of the built binary, or our image as a container) and write .minio/env."""
    directory = state_dir()
    state = _state()
    if state.get("runtime") == "process" and _ours(state.get("pid", 0), directory / "data"):
        print(f"MinIO already running (pid {state['pid']}); settings in {directory / 'env'}")
        return
    if state.get("runtime") == "docker":
        container = MinioContainer(default_port(), "", "", name=state["container"])
        try:
            container.wait_ready(timeout=1)
            print(f"MinIO already running (container {state['container']}); settings in {directory / 'env'}")
            return
        except TimeoutError:
            container.stop()
    credentials = _credentials()
    if runtime == "docker":
        server = MinioContainer(default_port(), credentials["access_key"], credentials["secret_key"]).start()
        new_state = {"runtime": "docker", "container": server.name}
        where = f"container {server.name}, data in volume {server.volume}"
    elif runtime == "process":
        server = MinioServer(
            directory / "data", default_port(), credentials["access_key"], credentials["secret_key"], minio_binary()
        ).start()
        new_state = {"runtime": "process", "pid": server.process.pid}
        where = f"data in {server.data_dir}, log {server.log_path}"
    else:
        raise SystemExit(f"MINIO_RUNTIME must be process or docker, got {runtime!r}")
    from mlops.store.roles import bootstrap, role_environment

    roles = {role: tuple(pair) for role, pair in credentials["roles"].items()}
    bootstrap(server.endpoint, credentials["access_key"], credentials["secret_key"], roles, bucket=bucket)
    (directory / "state.json").write_text(json.dumps(new_state))
    # The root credential stays in credentials.json: it is for the bootstrap only.
    lines = [f"export AWS_ENDPOINT_URL={server.endpoint}"]
    lines += [f"export {key}={value}" for key, value in role_environment(roles).items()]
    lines.append(f"export MLOPS_STORE=s3://{bucket}/store")
    _write_private(directory / "env", "\n".join(lines) + "\n")
    print(f"MinIO on {server.endpoint} ({where})")
    print(f"settings: source {directory / 'env'}")


def down() -> None:
    """Stop the MinIO that `up` started, and nothing else: a pid is signalled only if it is ours."""
    directory = state_dir()
    state = _state()
    if state.get("runtime") == "docker":
        MinioContainer(default_port(), "", "", name=state["container"]).stop()
        print(f"MinIO stopped (container {state['container']} removed; its data volume stays)")
    elif state.get("runtime") == "process":
        pid = state["pid"]
        if _ours(pid, directory / "data"):
            os.kill(pid, signal.SIGTERM)
            try:
                for _ in range(100):  # up to 20 s for a clean shutdown
                    time.sleep(0.2)
                    os.kill(pid, 0)
            except ProcessLookupError:
                pass
            print("MinIO stopped")
        else:
            print(f"MinIO is not running (pid {pid} is not our MinIO any more; nothing was signalled)")
    else:
        print("MinIO is not running")
    (directory / "state.json").unlink(missing_ok=True)


if __name__ == "__main__":
    commands = {"up": lambda: up(runtime=os.environ.get("MINIO_RUNTIME", "process")), "down": down}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit("usage: python -m mlops.runners.minio_local up|down  (env MINIO_RUNTIME=process|docker)")
    commands[sys.argv[1]]()
