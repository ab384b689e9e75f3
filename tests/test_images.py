"""The container images (`make images`, scripts/build_images.py): what the compiled
spec names is what gets built, and every built image runs the way a pod runs it.

Tests marked `docker` need a Docker engine and the images (`make engine-up images`).
Without them they skip, except under CI=true, where they fail. The others run
everywhere: they check names, labels and build inputs without an engine.
"""

import importlib.util
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def load_build_images():
    spec = importlib.util.spec_from_file_location("build_images", REPO / "scripts" / "build_images.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


BUILD = load_build_images()
REFS = BUILD.image_refs(REPO)
IMAGES = {image.name: image for image in BUILD.images()}
IN_CI = os.environ.get("CI", "").lower() == "true"
# How a pipeline pod runs (components.task_settings): uid/gid 10001, no capabilities, no
# privilege gain, a read-only root filesystem and one writable /tmp (HOME points there).
POD_LIKE = [
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--user",
    "10001:10001",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--network",
    "none",
]


def images_in(obj) -> set[str]:
    if isinstance(obj, dict):
        return (
            set().union(*(({v} if k == "image" and isinstance(v, str) else images_in(v)) for k, v in obj.items()))
            if obj
            else set()
        )
    if isinstance(obj, list):
        return set().union(*(images_in(v) for v in obj)) if obj else set()
    return set()


# -- without an engine ---------------------------------------------------------------


def test_make_images_builds_the_images_of_scripts_images_py():
    names = ("BASE_IMAGE", "TFDV_IMAGE", "MINIO_IMAGE", "GIT_IMAGE")
    assert [image.ref for image in BUILD.images()] == [REFS[name] for name in names]
    out = subprocess.run(
        ["python3", str(REPO / "scripts" / "images.py")], capture_output=True, text=True, check=True
    ).stdout
    printed = dict(line.split("=", 1) for line in out.split())
    assert {printed[k] for k in names} == {i.ref for i in IMAGES.values()}


def test_compiled_specs_name_exactly_the_built_images():
    specs = sorted((REPO / "pipelines" / "compiled").glob("*.yaml"))
    assert specs, "no compiled spec in pipelines/compiled"
    used = set()
    for spec in specs:
        for doc in yaml.safe_load_all(spec.read_text()):
            used |= images_in(doc)
    built = {image.ref for image in IMAGES.values()}
    assert used <= built, used - built
    assert {REFS["BASE_IMAGE"], REFS["TFDV_IMAGE"]} <= used


@pytest.mark.parametrize(
    "remote, expected",
    [
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://x-access-token:ghs_abc123@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://oauth2:glpat-secret@gitlab.example.com/org/repo", "https://gitlab.example.com/org/repo"),
        ("https://user@github.com/org/repo.git?access_token=abc#frag", "https://github.com/org/repo.git"),
        ("git@github.com:org/repo.git", "https://github.com/org/repo.git"),
        ("ssh://git@github.com:22/org/repo.git", "https://github.com/org/repo.git"),
        ("/home/someone/src/repo", "unknown"),
        ("file:///srv/git/repo.git", "unknown"),
    ],
)
def test_source_label_never_carries_credentials(remote, expected):
    assert BUILD.public_source_url(remote) == expected


def test_build_inputs_follow_the_dockerfiles_and_dockerignore():
    base = [f.relative_to(REPO).as_posix() for f in BUILD.context_files(IMAGES["base"])]
    assert "pyproject.toml" in base and "requirements/main.lock" in base and "schemas/demo-wine.pbtxt" in base
    assert any(f.startswith("components/") for f in base) and any(f.startswith("pipelines/") for f in base)
    assert not [f for f in base if "__pycache__" in f or f.endswith((".pyc", ".env")) or "Dockerfile" in f]
    assert [f.relative_to(REPO).as_posix() for f in BUILD.context_files(IMAGES["tfdv"])] == ["requirements/tfdv.lock"]
    assert BUILD.context_files(IMAGES["minio"]) == []
    patterns = BUILD.dockerignore_patterns()
    sent = BUILD.sent_to_docker
    assert sent("mlops/stages/train.py", patterns) and not sent("README.md", patterns)
    assert not sent("manifests/overlays/kind/minio.env", patterns) and not sent(".venv/bin/python", patterns)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_dockerfiles_take_their_bases_as_arguments(name):
    text = IMAGES[name].dockerfile.read_text()
    assert not re.search(r"^#\s*syntax=", text, re.M), "a syntax line makes BuildKit pull a frontend image"
    bases = IMAGES[name].base_args()
    assert bases, "the public base is an ARG default, so `make images` can pass a local one"
    for arg in bases:
        assert re.search(rf"^FROM \${{{arg}}}", text, re.M), arg


# -- with an engine and the images ---------------------------------------------------


def need(message: str):
    if IN_CI:
        pytest.fail(message + " (CI=true: it must be there)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def docker() -> str:
    binary = shutil.which("docker")
    if binary is None or subprocess.run([binary, "info"], capture_output=True).returncode != 0:
        need("no Docker engine answers: run `make engine-up`")
    missing = [
        ref
        for ref in (i.ref for i in IMAGES.values())
        if subprocess.run([binary, "image", "inspect", ref], capture_output=True).returncode != 0
    ]
    if missing:
        need(f"images not built: {', '.join(missing)}: run `make images`")
    return binary


def inspect(docker: str, ref: str) -> dict:
    return json.loads(
        subprocess.run([docker, "image", "inspect", ref], capture_output=True, text=True, check=True).stdout
    )[0]


def run(
    docker: str, ref: str, *command: str, entrypoint: str | None = None, options: list[str] = POD_LIKE
) -> subprocess.CompletedProcess:
    args = [docker, "run", "--rm", *options] + (["--entrypoint", entrypoint] if entrypoint else []) + [ref]
    return subprocess.run(args + list(command), capture_output=True, text=True, timeout=600)


@pytest.mark.docker
def test_images_are_up_to_date_with_their_inputs(docker):
    # What CI relies on to reuse images: an unchanged tree needs no build.
    result = subprocess.run(
        ["python3", str(REPO / "scripts" / "build_images.py"), "--check"], capture_output=True, text=True
    )
    if result.returncode != 0:
        need("images older than their inputs: run `make images`\n" + result.stdout + result.stderr)


@pytest.mark.docker
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_runs_as_non_root(docker, name):
    ref = IMAGES[name].ref
    user = inspect(docker, ref)["Config"]["User"]
    assert user and user.split(":")[0] not in ("", "0", "root"), user
    result = run(docker, ref, "-u", entrypoint="id", options=[])
    assert result.returncode == 0 and result.stdout.strip() not in ("", "0"), result.stderr
    assert result.stdout.strip() == ("10002" if name == "minio" else "10001")


@pytest.mark.docker
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_labels(docker, name):
    labels = inspect(docker, IMAGES[name].ref)["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == REFS["IMAGE_VERSION"]
    assert labels["org.opencontainers.image.title"] == f"mlops-{name}"
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", labels["org.opencontainers.image.revision"])
    assert re.fullmatch(r"[0-9a-f]{64}", labels[BUILD.INPUTS_LABEL])
    source = labels["org.opencontainers.image.source"]
    if source != "unknown":
        parts = urlsplit(source)
        assert parts.scheme in ("https", "http") and parts.hostname, source
        assert not (parts.username or parts.password or parts.query or parts.fragment), source
    # No label or environment value holds anything that looks like a secret.
    env = inspect(docker, IMAGES[name].ref)["Config"]["Env"] or []
    for text in [*labels.values(), *env]:
        assert not re.search(r"(?i)(token|password|secret|passwd)=|://[^/\s]*@|gh[pousr]_[A-Za-z0-9]{20}", text), text


@pytest.mark.docker
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_size_within_budget(docker, name):
    size_mb = inspect(docker, IMAGES[name].ref)["Size"] / 1e6
    assert size_mb <= BUILD.SIZE_BUDGET_MB[name], f"{name}: {size_mb:.0f} MB"


@pytest.mark.docker
def test_base_image_runs_the_stages_like_a_pod(docker):
    script = (
        "import components, pipelines, kfp, sklearn, skops, skops.io, os, tempfile\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])\n"
        "path = os.path.join(tempfile.mkdtemp(), 'model.skops')\n"
        "skops.io.dump(model, path)\n"
        "print('ok', os.getuid(), os.path.getsize(path) > 0)\n"
    )
    result = run(docker, REFS["BASE_IMAGE"], "python3", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "10001", "True"]
    result = run(docker, REFS["BASE_IMAGE"], "mlops", "--help")
    assert result.returncode == 0 and "Usage" in result.stdout, result.stderr


@pytest.mark.docker
def test_tfdv_image_validates_like_a_pod(docker):
    # The validate stage's path: the main interpreter writes the splits, the TFDV
    # interpreter (MLOPS_TFDV_PYTHON) runs the tool where the image's settings put it.
    script = (
        "import json, os, subprocess, sys, tempfile\n"
        "import pandas as pd\n"
        "from mlops import config\n"
        "tool = str(config.TFDV_TOOL.get())\n"
        "python = os.environ['MLOPS_TFDV_PYTHON']\n"
        "version = subprocess.run([python, tool, '--version'], capture_output=True, text=True, check=True)\n"
        "print(version.stdout.strip())\n"
        "work = tempfile.mkdtemp()\n"
        "frame = pd.DataFrame({'x': [float(i) for i in range(40)], 'c': ['a', 'b'] * 20})\n"
        "for split in ('train', 'validation'):\n"
        "    frame.to_parquet(os.path.join(work, split + '.parquet'))\n"
        "subprocess.run([python, tool, 'validate', '--split', 'train=' + work + '/train.parquet',\n"
        "                '--split', 'validation=' + work + '/validation.parquet', '--out', work + '/out'],\n"
        "               check=True, capture_output=True)\n"
        "result = json.load(open(work + '/out/result.json'))\n"
        "print(result['tfdv_version'], len(result['anomalies']), result['splits']['train']['num_examples'])\n"
    )
    result = run(docker, REFS["TFDV_IMAGE"], "python3", "-c", script)
    assert result.returncode == 0, result.stderr[-3000:]
    tool_version = runpy.run_path(str(REPO / "tools" / "tfdv_tool.py"))["TOOL_VERSION"]
    assert result.stdout.splitlines() == [f"tfdv_tool {tool_version}", "1.16.1 0 40"]


@pytest.mark.docker
def test_minio_image_runs_read_only(docker):
    options = [
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--network",
        "none",
    ]
    for binary in ("minio", "mc"):
        result = run(docker, REFS["MINIO_IMAGE"], "--version", entrypoint=binary, options=options)
        assert result.returncode == 0 and "go1.26.8" in result.stdout, result.stderr


@pytest.mark.docker
def test_git_image_serves_and_finds_commits_like_a_pod(docker):
    """The GitOps image (images/Dockerfile.git): git, and both of its programs, under the pod's limits."""
    version = run(docker, REFS["GIT_IMAGE"], "--version", entrypoint="git")
    assert version.returncode == 0 and version.stdout.startswith("git version 2."), version.stderr
    usage = run(docker, REFS["GIT_IMAGE"], "/opt/mlops-git/run_commit.py", entrypoint="python3")
    assert usage.returncode == 2 and "REPO_URL PATH_IN_REPO" in usage.stderr
    compiled = run(
        docker,
        REFS["GIT_IMAGE"],
        "-c",
        "import ast, sys; ast.parse(open(sys.argv[1]).read())",
        "/opt/mlops-git/git_http.py",
        entrypoint="python3",
    )
    assert compiled.returncode == 0, compiled.stderr
