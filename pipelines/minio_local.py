"""A real MinIO server on 127.0.0.1 for development (`make minio-up`) and tests.

The server binary is built from source by `make minio-bin` (MinIO publishes no
community binaries since 2025-10). Credentials are random, made on first use,
kept in a git-ignored directory and never printed.

    python -m pipelines.minio_local up     # start, create the bucket, write .minio/env
    python -m pipelines.minio_local down   # stop
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

from components import config

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
        return cls(Path(data_dir), port or free_port(), "mlops-" + secrets.token_hex(6), secrets.token_urlsafe(24),
                   binary or minio_binary())

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def start(self, timeout: float = 60.0) -> "MinioServer":
        if not self.binary.exists():
            raise FileNotFoundError(f"MinIO server binary not found at {self.binary}: run `make minio-bin`")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir.parent / f"minio-{self.port}.log"
        env = {**os.environ, "MINIO_ROOT_USER": self.access_key, "MINIO_ROOT_PASSWORD": self.secret_key,
               "MINIO_BROWSER": "off", "MINIO_UPDATE": "off", "MINIO_CI_CD": "1"}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "server", str(self.data_dir), "--address", f"127.0.0.1:{self.port}",
                 "--console-address", f"127.0.0.1:{free_port()}", "--quiet"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
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
        from components.storage.s3 import client_from_env

        saved = {key: os.environ.get(key) for key in self.env()}
        os.environ.update(self.env())
        try:
            client, _ = client_from_env()
            if not client.bucket_exists(bucket):
                client.make_bucket(bucket)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


# `make minio-up` / `make minio-down` ------------------------------------------

def _credentials() -> dict:
    """Random credentials, made once and kept in .minio/credentials.json (mode 0600)."""
    path = state_dir() / "credentials.json"
    if path.exists():
        return json.loads(path.read_text())
    state_dir().mkdir(parents=True, exist_ok=True)
    credentials = {"access_key": "mlops-" + secrets.token_hex(6), "secret_key": secrets.token_urlsafe(24)}
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(credentials, handle)
    return credentials


def up(bucket: str = DEFAULT_BUCKET) -> None:
    directory = state_dir()
    pid_file = directory / "minio.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), 0)
            print(f"MinIO already running (pid {pid_file.read_text().strip()}); settings in {directory / 'env'}")
            return
        except (ProcessLookupError, ValueError):
            pid_file.unlink()
    credentials = _credentials()
    server = MinioServer(directory / "data", default_port(), credentials["access_key"], credentials["secret_key"],
                         minio_binary()).start()
    server.create_bucket(bucket)
    pid_file.write_text(str(server.process.pid))
    env_file = directory / "env"
    lines = [f"export {key}={value}" for key, value in server.env().items()]
    lines.append(f"export MLOPS_STORE=s3://{bucket}/store")
    descriptor = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"MinIO on {server.endpoint} (data in {server.data_dir}, log {server.log_path})")
    print(f"settings: source {env_file}")


def down() -> None:
    pid_file = state_dir() / "minio.pid"
    if not pid_file.exists():
        print("MinIO is not running")
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):  # up to 20 s for a clean shutdown
            time.sleep(0.2)
            os.kill(pid, 0)
    except ProcessLookupError:
        pass
    pid_file.unlink()
    print("MinIO stopped")


if __name__ == "__main__":
    commands = {"up": up, "down": down}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit("usage: python -m pipelines.minio_local up|down")
    commands[sys.argv[1]]()
