"""Build the pipeline images (`make images`): base, TFDV and MinIO.

    python3 scripts/build_images.py            # build what changed, skip the rest
    python3 scripts/build_images.py --check    # exit 1 if an image is missing or stale; build nothing
    python3 scripts/build_images.py --bases local   # force the local Debian-made bases

Names and tags come from scripts/images.py, the one reader of the image names.
Each image is labelled with a hash of its inputs (the Dockerfile, the files its
COPY lines take from the build context, the build arguments, the image IDs of its
bases); an image whose label matches is not rebuilt, so a second run and CI on an
unchanged tree build nothing.

The Dockerfiles name public bases as ARG defaults (python:…-slim-bookworm,
debian:…-slim, golang:…-bookworm). With --bases auto (the default, or env
IMAGE_BASES) a base is used when present locally or pullable; otherwise a local
one is made from Debian packages by scripts/base-image.sh (once; it is reused).

Standard library only: it runs with the system python3 before any venv exists.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from images import image_refs  # noqa: E402  (scripts/images.py: the one reader of the names)

INPUTS_LABEL = "org.kfp-mlops.image.inputs"
BASE_KEY_LABEL = "org.kfp-mlops.base.key"  # on the local bases (scripts/base-image.sh)
# Size budgets in MB (docker's uncompressed size), measured on Debian 12 with the
# locks of 2026-11 plus headroom; tests/test_images.py holds every image to its budget.
SIZE_BUDGET_MB = {"base": 1000, "tfdv": 4000, "minio": 320, "git": 350}
# Which local base (scripts/base-image.sh VARIANT) stands in for which Dockerfile ARG.
LOCAL_VARIANT = {"PYTHON_BASE": "python", "RUNTIME_BASE": "debian", "GO_BASE": "golang"}
# Build arguments that describe an image rather than make it: not part of the inputs hash.
METADATA_ARGS = {"SOURCE_URL", "REVISION", "BUILD_CA_CERTS"}
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
PULL_TIMEOUT_SECONDS = float(os.environ.get("IMAGE_PULL_TIMEOUT", "120"))


@dataclass
class Image:
    name: str  # base, tfdv, minio
    ref: str  # full reference, from scripts/images.py
    dockerfile: Path

    def base_args(self) -> dict[str, str]:
        """ARG NAME_BASE=default lines before the first FROM: the public bases."""
        found = {}
        for line in self.dockerfile.read_text().splitlines():
            if line.startswith("FROM"):
                break
            match = re.match(r"ARG\s+([A-Z_]+_BASE)=(\S+)", line)
            if match and match.group(1) in LOCAL_VARIANT:
                found[match.group(1)] = match.group(2)
        return found

    def context_sources(self) -> list[str]:
        """Sources of the COPY/ADD lines that read the build context (not --from=)."""
        sources = []
        for line in self.dockerfile.read_text().splitlines():
            words = line.split()
            if not words or words[0] not in ("COPY", "ADD"):
                continue
            if any(w.startswith("--from=") for w in words):
                continue
            args = [w for w in words[1:] if not w.startswith("--")]
            sources.extend(args[:-1])
        return sources


def images() -> list[Image]:
    refs = image_refs(REPO)
    images = REPO / "images"
    return [
        Image("base", refs["BASE_IMAGE"], images / "Dockerfile.base"),
        Image("tfdv", refs["TFDV_IMAGE"], images / "Dockerfile.tfdv"),
        Image("minio", refs["MINIO_IMAGE"], images / "Dockerfile.minio"),
        Image("git", refs["GIT_IMAGE"], images / "Dockerfile.git"),
    ]


# -- docker ------------------------------------------------------------------


def docker(*args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [os.environ.get("DOCKER", "docker"), *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def image_id(ref: str) -> str | None:
    result = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def image_label(ref: str, label: str) -> str | None:
    result = docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', ref, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def can_pull(ref: str) -> bool:
    try:
        return docker("pull", "--quiet", ref, check=False, timeout=PULL_TIMEOUT_SECONDS).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def buildkit_env() -> dict[str, str]:
    """BuildKit when the buildx plugin is there; else the legacy builder, said explicitly
    (a CLI without buildx refuses DOCKER_BUILDKIT=1 and warns without the variable)."""
    env = dict(os.environ)
    if "DOCKER_BUILDKIT" not in env and docker("buildx", "version", check=False).returncode != 0:
        env["DOCKER_BUILDKIT"] = "0"
    return env


# -- inputs ------------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, str]]:
    """(include?, pattern) in file order; the last pattern that matches decides."""
    patterns = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        patterns.append((include, line.lstrip("!").strip("/")))
    return patterns


def sent_to_docker(relative: str, patterns: list[tuple[bool, str]]) -> bool:
    """Whether .dockerignore lets `relative` into the build context. Enough of Docker's
    rules for the patterns we use: a pattern matches the path or one of its parents,
    `*` and `**` match across directories, the last matching pattern wins."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    sent = True
    for include, pattern in patterns:
        if any(fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pattern.replace("**/", "")) for p in prefixes):
            sent = include
    return sent


def context_files(image: Image) -> list[Path]:
    """The files of the build context that the image's COPY lines read."""
    patterns = dockerignore_patterns()
    files = set()
    for source in image.context_sources():
        path = REPO / source
        candidates = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        for file in candidates:
            relative = file.relative_to(REPO).as_posix()
            if sent_to_docker(relative, patterns):
                files.add(file)
    return sorted(files)


def inputs_hash(image: Image, build_args: dict[str, str]) -> str:
    digest = hashlib.sha256()

    def add(*items: str | bytes) -> None:
        for item in items:
            data = item if isinstance(item, bytes) else item.encode()
            digest.update(len(data).to_bytes(8, "big") + data)

    add("dockerfile", image.dockerfile.read_bytes())
    for name, value in sorted(build_args.items()):
        if name in METADATA_ARGS:
            continue
        if name.endswith(("_BASE", "_IMAGE")):
            value = image_id(value) or value  # a base counts by its content, not by its name
        add("arg", name, value)
    for file in context_files(image):
        mode = "x" if os.access(file, os.X_OK) else "-"
        add("file", file.relative_to(REPO).as_posix(), mode, file.read_bytes())
    return digest.hexdigest()


# -- metadata ----------------------------------------------------------------


def public_source_url(remote: str) -> str:
    """A git remote as a URL fit for a public label: no user, password or token, no
    query; scp-like and ssh remotes become https; local paths become "unknown"."""
    remote = remote.strip()
    scp = re.match(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$", remote)
    if scp and "://" not in remote:
        return f"https://{scp.group(1)}/{scp.group(2).lstrip('/')}"
    parts = urlsplit(remote)
    if parts.scheme not in ("http", "https", "ssh", "git", "git+ssh") or not parts.hostname:
        return "unknown"
    scheme = "https" if parts.scheme in ("ssh", "git+ssh", "git") else parts.scheme
    host = parts.hostname
    if parts.port and scheme == parts.scheme:
        host = f"{host}:{parts.port}"
    return urlunsplit((scheme, host, parts.path, "", ""))


def git(*args: str) -> str | None:
    result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def source_url() -> str:
    override = os.environ.get("IMAGE_SOURCE")
    if override:
        return public_source_url(override)
    remote = git("remote", "get-url", "origin")
    return public_source_url(remote) if remote else "unknown"


def revision(image: Image) -> str:
    """The commit, with -dirty when the image's own inputs differ from it."""
    head = git("rev-parse", "HEAD")
    if not head:
        return "unknown"
    paths = [image.dockerfile.relative_to(REPO).as_posix(), *image.context_sources()]
    dirty = git("status", "--porcelain", "--", *paths)
    return f"{head}-dirty" if dirty else head


def extra_ca_certs() -> str:
    """Base64 of the CA certificates added on this host (BUILD_CA_FILE, else
    /usr/local/share/ca-certificates/*.crt), for the build stages behind a
    TLS-intercepting proxy. The images never contain them."""
    named = os.environ.get("BUILD_CA_FILE")
    files = [Path(named)] if named else sorted(EXTRA_CA_DIR.glob("**/*.crt")) if EXTRA_CA_DIR.is_dir() else []
    pem = b"".join(f.read_bytes().rstrip(b"\n") + b"\n" for f in files if f.is_file())
    return base64.b64encode(pem).decode()


# -- bases -------------------------------------------------------------------


def local_base(variant: str, build: bool) -> str:
    args = [str(REPO / "scripts" / "base-image.sh"), variant] + ([] if build else ["--ref"])
    result = subprocess.run(args, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"images: could not make the local {variant} base (scripts/base-image.sh {variant})")
    return result.stdout.strip().splitlines()[-1]


def resolve_bases(all_images: list[Image], mode: str, build: bool) -> dict[str, str]:
    """Public base reference -> the reference to build from."""
    resolved = {}
    for image in all_images:
        for arg, public in image.base_args().items():
            if public in resolved:
                continue
            variant = LOCAL_VARIANT[arg]
            if mode == "public":
                chosen, why = public, "public (forced)"
            elif mode == "local":
                chosen, why = local_base(variant, build), "local (forced)"
            elif image_id(public):
                chosen, why = public, "present"
            elif build and can_pull(public):
                chosen, why = public, "pulled"
            else:
                chosen = local_base(variant, build)
                why = "not pullable here: local base from Debian packages" if build else "local"
            resolved[public] = chosen
            print(f"images: base {public:<32} -> {chosen} ({why})", flush=True)
    return resolved


# -- build -------------------------------------------------------------------


def build(image: Image, build_args: dict[str, str], digest: str, log_dir: Path) -> None:
    """docker build, retried (BUILD_RETRIES, default 1) after a failure: downloads from
    PyPI, Debian or the Go proxy fail now and then; finished steps come from the cache."""
    retries = int(os.environ.get("BUILD_RETRIES", "1"))
    for attempt in range(retries + 1):
        log_path = log_dir / f"{image.name}.log"
        if build_once(image, build_args, digest, log_path):
            return
        failed = log_path.with_suffix(f".failed-{attempt + 1}.log")
        log_path.replace(failed)
        tail = failed.read_text().splitlines()[-30:]
        print("\n".join(tail), file=sys.stderr)
        if attempt < retries:
            print(f"images: building {image.ref} failed (log: {failed}); trying again", flush=True)
    raise SystemExit(f"images: building {image.ref} failed (full log: {failed})")


def build_once(image: Image, build_args: dict[str, str], digest: str, log_path: Path) -> bool:
    command = [
        os.environ.get("DOCKER", "docker"),
        "build",
        "--file",
        str(image.dockerfile),
        "--tag",
        image.ref,
        "--label",
        f"{INPUTS_LABEL}={digest}",
    ]
    for name, value in build_args.items():
        command += ["--build-arg", f"{name}={value}"]
    env = buildkit_env()
    if env.get("DOCKER_BUILDKIT") == "0":
        command.append("--force-rm")  # the legacy builder keeps a failed step's container otherwise
    command.append(str(REPO))
    started = time.monotonic()
    with (
        open(log_path, "w") as log,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process,
    ):
        for line in process.stdout:
            log.write(line)
            # One line per step: "Step 5/28 : RUN ..." (legacy) or "#7 [build 3/9] RUN ..." (BuildKit).
            if line.startswith("Step ") or re.match(r"#\d+ \[", line):
                print(f"  {image.name}: {line.strip()[:110]}", flush=True)
    if process.returncode != 0:
        return False
    print(f"images: built {image.ref} in {time.monotonic() - started:.0f} s (log: {log_path})", flush=True)
    return True


def size_mb(ref: str) -> float:
    return int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip()) / 1e6


def clean(all_images: list[Image]) -> None:
    """Remove what this script and scripts/base-image.sh made: the three images, the
    local bases, and every image built on those (the legacy builder's layer cache).
    Images of others stay, also those built on a public base such as python:*-slim."""
    ids = docker("images", "--all", "--quiet", "--no-trunc").stdout.split()
    if not ids:
        return
    parent, ours = {}, set()
    fields = f'{{{{.Id}}}}|{{{{.Parent}}}}|{{{{index .Config.Labels "{BASE_KEY_LABEL}"}}}}'
    for line in docker("image", "inspect", "--format", fields, *sorted(set(ids))).stdout.splitlines():
        image, up, key = line.split("|")
        parent[image] = up
        if key and not key.startswith("<no"):
            ours.add(image)
    for image in all_images:
        if image_label(image.ref, INPUTS_LABEL):
            ours.add(image_id(image.ref))

    def depth(image: str) -> int:
        return 0 if not parent.get(image) else 1 + depth(parent[image])

    def descends(image: str) -> bool:
        while image:
            if image in ours:
                return True
            image = parent.get(image, "")
        return False

    doomed = sorted((i for i in parent if descends(i)), key=depth, reverse=True)
    for image in doomed:  # children first; --force drops every tag of it
        docker("rmi", "--force", "--no-prune", image, check=False)
    print(f"images: removed {len(doomed)} images (ours, the local bases and their layer cache)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_images", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if an image is missing or stale")
    parser.add_argument(
        "--bases",
        choices=("auto", "public", "local"),
        default=os.environ.get("IMAGE_BASES", "auto"),
        help="public bases, local Debian-made ones, or public when pullable (default: auto)",
    )
    parser.add_argument(
        "--print-source",
        action="store_true",
        help="print the source URL the labels get (the git remote without credentials) and exit",
    )
    parser.add_argument(
        "--clean", action="store_true", help="remove the images, the local bases and the layer cache built on them"
    )
    args = parser.parse_args(argv)
    if args.print_source:
        print(source_url())
        return 0

    if shutil.which(os.environ.get("DOCKER", "docker")) is None or docker("info", check=False).returncode != 0:
        print("images: no Docker engine answers: run `make engine-up` (or start Docker)", file=sys.stderr)
        return 1
    started = time.monotonic()
    all_images = images()
    if args.clean:
        clean(all_images)
        return 0
    bases = resolve_bases(all_images, args.bases, build=not args.check)
    refs = image_refs(REPO)
    ca = "" if args.check else extra_ca_certs()
    if ca:
        print("images: build stages trust the extra CA certificates of this host (not copied into images)")
    log_dir = Path(tempfile.gettempdir()) / "kfp-mlops-images"
    log_dir.mkdir(exist_ok=True)
    stale, replaced = [], []
    for image in all_images:
        build_args = {arg: bases[public] for arg, public in image.base_args().items()}
        if image.name == "tfdv":
            build_args["BASE_IMAGE"] = refs["BASE_IMAGE"]
        build_args.update(IMAGE_VERSION=refs["IMAGE_VERSION"], SOURCE_URL=source_url(), REVISION=revision(image))
        if ca:
            build_args["BUILD_CA_CERTS"] = ca
        digest = inputs_hash(image, build_args)
        if image_label(image.ref, INPUTS_LABEL) == digest:
            print(f"images: {image.ref} is up to date ({size_mb(image.ref):.0f} MB)", flush=True)
            continue
        if args.check:
            print(f"images: {image.ref} is {'stale' if image_id(image.ref) else 'missing'}", flush=True)
            stale.append(image.ref)
            continue
        previous = image_id(image.ref)
        build(image, build_args, digest, log_dir)
        print(f"images: {image.ref}: {size_mb(image.ref):.0f} MB (budget {SIZE_BUDGET_MB[image.name]} MB)", flush=True)
        if previous and previous != image_id(image.ref) and image_label(previous, INPUTS_LABEL):
            replaced.append(previous)
    # The images these builds replaced (made by this script: they carry its label), newest
    # first so a TFDV image goes before the base under it; one still in use stays.
    for previous in reversed(replaced):
        docker("rmi", previous, check=False)
    print(f"images: done in {time.monotonic() - started:.0f} s", flush=True)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
