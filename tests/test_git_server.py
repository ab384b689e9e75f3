"""The GitOps Git server (images/git/git_http.py) and the submit Job's commit finder
(images/git/run_commit.py), with the host's real git over loopback HTTP."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "images" / "git" / "git_http.py"
FINDER = REPO / "images" / "git" / "run_commit.py"
USER, PASSWORD = "mlops", "s3cret-push-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "username").write_text(USER + "\n")
    (credentials / "password").write_text(PASSWORD + "\n")
    port = free_port()
    env = {
        **os.environ,
        "GIT_ROOT": str(tmp_path / "srv"),
        "GIT_CREDENTIALS_DIR": str(credentials),
        "GIT_HTTP_PORT": str(port),
        "REPOSITORIES": "mlops",
    }
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, str(SERVER)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    yield url, tmp_path / "server.log"
    proc.terminate()
    proc.wait(10)
    log.close()


def git(*args, cwd=None, password: str | None = None, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "HOME": str(cwd or Path.cwd())}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@x")
    if password is not None:
        token = base64.b64encode(f"{USER}:{password}".encode()).decode()
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader")
        env["GIT_CONFIG_VALUE_0"] = f"Authorization: Basic {token}"
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=check)


def commit(work: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", message, cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


@pytest.fixture()
def work(tmp_path):
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    return work


def test_push_needs_the_password_and_clone_is_anonymous(server, work, tmp_path):
    url, log = server
    first = commit(work, {"manifests/gitops/run-params.yaml": "target: a\n"}, "first")
    refused = git("push", "-q", f"{url}/mlops.git", "main:main", cwd=work, password="wrong", check=False)
    anonymous = git("push", "-q", f"{url}/mlops.git", "main:main", cwd=work, check=False)
    assert refused.returncode != 0 and anonymous.returncode != 0
    assert git("ls-remote", f"{url}/mlops.git", cwd=work).stdout == ""  # nothing was written
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{url}/mlops.git/info/refs?service=git-receive-pack", timeout=5)
    assert error.value.code == 401
    git("push", "-q", f"{url}/mlops.git", "main:main", cwd=work, password=PASSWORD)
    clone = tmp_path / "clone"
    git("clone", "-q", f"{url}/mlops.git", str(clone), cwd=tmp_path)
    assert git("rev-parse", "HEAD", cwd=clone).stdout.strip() == first
    assert (clone / "manifests/gitops/run-params.yaml").read_text() == "target: a\n"
    assert PASSWORD not in log.read_text()
    # Only the smart-protocol paths of existing repositories are served.
    for path in ("/mlops.git/config", "/other.git/info/refs", "/../etc/passwd"):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(url + path, timeout=5)
        assert error.value.code == 404


def find(url: str, mounted: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FINDER), f"{url}/mlops.git", "manifests/gitops", str(mounted), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(out.parent)},
    )


def mount(tmp_path: Path, files: dict[str, str]) -> Path:
    """A ConfigMap-like mount: the files, plus Kubernetes' ..data link, which is ignored."""
    mounted = tmp_path / "mounted"
    mounted.mkdir(exist_ok=True)
    for name, text in files.items():
        (mounted / name).write_text(text)
    (mounted / "..data").mkdir(exist_ok=True)
    return mounted


def test_the_run_is_keyed_on_the_commit_that_made_the_mounted_inputs(server, work, tmp_path):
    url, _ = server
    params_a = {"manifests/gitops/run-params.yaml": "max: 1\n", "manifests/gitops/d.data.yaml": "version: 1\n"}
    made_a = commit(work, params_a, "params A")
    commit(work, {"manifests/gitops/README.md": "docs\n"}, "docs only")  # changes nothing a run reads
    git("push", "-q", f"{url}/mlops.git", "main:main", cwd=work, password=PASSWORD)
    out = tmp_path / "commit"
    mounted = mount(tmp_path, {"run-params.yaml": "max: 1\n", "d.data.yaml": "version: 1\n"})
    found = find(url, mounted, out)
    assert found.returncode == 0, found.stderr
    assert out.read_text().strip() == made_a  # not the newer docs-only commit

    # A newer commit changes the parameters; a Job still holding A's finds A, one holding B finds B.
    made_b = commit(work, {"manifests/gitops/run-params.yaml": "max: 2\n"}, "params B")
    git("push", "-q", f"{url}/mlops.git", "main:main", cwd=work, password=PASSWORD)
    assert find(url, mounted, out).returncode == 0 and out.read_text().strip() == made_a
    (mounted / "run-params.yaml").write_text("max: 2\n")
    assert find(url, mounted, out).returncode == 0 and out.read_text().strip() == made_b

    # Back to A's content: a new commit made it, so a new key.
    made_a_again = commit(work, {"manifests/gitops/run-params.yaml": "max: 1\n"}, "back to A")
    git("push", "-q", f"{url}/mlops.git", "main:main", cwd=work, password=PASSWORD)
    (mounted / "run-params.yaml").write_text("max: 1\n")
    assert find(url, mounted, out).returncode == 0 and out.read_text().strip() == made_a_again


def test_inputs_never_pushed_are_a_one_line_usage_error(server, work, tmp_path):
    url, _ = server
    commit(work, {"manifests/gitops/run-params.yaml": "max: 1\n"}, "A")
    git("push", "-q", f"{url}/mlops.git", "main:main", cwd=work, password=PASSWORD)
    found = find(url, mount(tmp_path, {"run-params.yaml": "max: 9\n"}), tmp_path / "commit")
    assert found.returncode == 2
    assert found.stderr.count("\n") == 1 and "push them first" in found.stderr
    unreachable = subprocess.run(
        [sys.executable, str(FINDER), "http://127.0.0.1:9/x.git", ".", str(tmp_path / "mounted"), str(tmp_path / "c")],
        capture_output=True,
        text=True,
        env={**os.environ, "CLONE_WAITS": "0.1,0.1"},
    )
    assert unreachable.returncode == 3 and unreachable.stderr.startswith("cannot read")
    assert unreachable.stderr.count("\n") == 1
