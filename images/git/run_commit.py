"""Which commit a GitOps run is keyed on: the init container of the submit Job.

The Job mounts the run's inputs (run-params.yaml and the data pointer) as its Flux
or Argo CD sync applied them. This finds, in the repository's history, the newest
commit that changed those files and leaves them exactly as mounted: the commit that
made these parameters. A sync of the same content, a forced re-reconcile, a later
commit that touches other files, or a Job that runs again all find the same commit,
so `mlops submit --commit` keys them on the same run. A newer commit that changed
the parameters again does not match the mounted bytes, so it is skipped: its own
sync starts its own run.

Usage: run_commit.py REPO_URL PATH_IN_REPO MOUNTED_DIR OUTPUT_FILE
Exit 2 with one line when no commit matches (the files were never pushed), 3 when
the repository cannot be read (worth a retry).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# A new pod's network may be closed for its first seconds, until the NetworkPolicy
# controller (kube-router here, Calico or Cilium elsewhere) has seen it: retry the
# clone, with these waits (seconds; CLONE_WAITS=1,2 overrides), before giving up.
CLONE_WAITS = tuple(float(w) for w in os.environ.get("CLONE_WAITS", "1,2,4,8,15").split(",") if w)


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(" ".join(done.stderr.split()) or f"git {args[0]} failed")
    return done.stdout.strip()


def mounted_files(directory: Path) -> dict[str, str]:
    """File name → blob id of each file of a ConfigMap mount (not its ..data links)."""
    return {
        entry.name: git("hash-object", str(entry))
        for entry in sorted(directory.iterdir())
        if not entry.name.startswith(".") and entry.is_file()
    }


def commit_of(clone: Path, folder: str, wanted: dict[str, str]) -> str | None:
    """The newest commit that touched the files and holds them as ``wanted`` (name → blob id)."""
    paths = {name: f"{folder}/{name}" if folder else name for name in wanted}
    for commit in git("rev-list", "HEAD", "--", *paths.values(), cwd=clone).split():
        if all(blob(clone, commit, path) == wanted[name] for name, path in paths.items()):
            return commit
    return None


def blob(clone: Path, commit: str, path: str) -> str:
    """The blob id of a file at a commit, or "" when the commit lacks it."""
    done = subprocess.run(
        ["git", "rev-parse", "--quiet", "--verify", f"{commit}:{path}"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def clone_with_retries(url: str, clone: Path, waits=CLONE_WAITS) -> None:
    for wait in (*waits, None):
        try:
            git("clone", "--quiet", "--bare", url, str(clone))
            return
        except RuntimeError:
            if wait is None:
                raise
            time.sleep(wait)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.split("Usage: ")[1].splitlines()[0], file=sys.stderr)
        return 2
    url, folder, mounted, output = argv
    os.environ.setdefault("HOME", tempfile.gettempdir())
    wanted = mounted_files(Path(mounted))
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "repo"
        try:
            clone_with_retries(url, clone)
            commit = commit_of(clone, folder.strip("/").removeprefix("./").strip("."), wanted)
        except RuntimeError as error:
            print(f"cannot read {url}: {error}", file=sys.stderr)
            return 3
    if commit is None:
        print(f"no commit of {url} holds {', '.join(wanted)} as synced: push them first", file=sys.stderr)
        return 2
    Path(output).write_text(commit + "\n")
    print(f"run inputs last changed by commit {commit}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
