"""What every stage shares at run time: one error type, progress lines, project paths.

Stages run in three places (a unit test, a kfp.local subprocess, a pod), so
everything that differs between them comes from environment variables that
have a sensible default for a checkout of this repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class StageError(Exception):
    """A problem with the input or the data that stops the run.

    The message is one line a person can act on; it is what `mlops run`
    prints, so it names the thing that is wrong and, where possible, the fix.
    """


def project_path(env_var: str, default_relative: str) -> Path:
    """A path from ``env_var``, else ``default_relative`` under the checkout.

    Container images set the variables (their layout differs from a checkout).
    """
    value = os.environ.get(env_var)
    return Path(value) if value else PROJECT_ROOT / default_relative


def report_progress(stage: str, message: str) -> None:
    """Record that ``stage`` finished, with a one-line summary.

    The local runner sets MLOPS_PROGRESS_FILE and prints these lines as they
    arrive; in a pod the line goes to the log only.
    """
    print(f"[{stage}] {message}", flush=True)
    progress_file = os.environ.get("MLOPS_PROGRESS_FILE")
    if progress_file:
        record = {"stage": stage, "message": message, "time": time.time()}
        with open(progress_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def fail(stage: str, error: StageError) -> None:
    """Record a stage failure's one-line reason and exit the component non-zero.

    The reason goes to MLOPS_ERROR_FILE when set (the local runner reads it to
    print the cause instead of KFP's generic "task failed") and to stderr.
    """
    message = " ".join(str(error).split())
    error_file = os.environ.get("MLOPS_ERROR_FILE")
    if error_file:
        Path(error_file).write_text(json.dumps({"stage": stage, "error": message}), encoding="utf-8")
    print(f"[{stage}] ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def run_stage(stage: str, func, /, **kwargs):
    """Call a stage's entry point, turning a StageError or StoreError into a clean failure."""
    from components.storage.base import StoreError

    try:
        return func(**kwargs)
    except (StageError, StoreError) as error:
        fail(stage, error)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The environments a pipeline run executes in (tools.lock is for checks only).
RUNTIME_LOCKS = ("main.lock", "tfdv.lock")


def lock_hashes() -> dict[str, str]:
    """sha256 of each runtime environment's lock file, for the lineage record."""
    lock_dir = project_path("MLOPS_LOCK_DIR", "requirements")
    return {name: sha256_file(lock_dir / name) for name in RUNTIME_LOCKS if (lock_dir / name).is_file()}


def parse_json(value):
    """Parse a JSON string parameter passed between stages.

    Stage summaries travel as JSON strings (exact ints survive, unlike a KFP
    struct, which turns every number into a double). kfp.local 2.17 hands such
    strings to tasks inside a ParallelFor already parsed, so accept both.
    """
    return value if isinstance(value, (dict, list)) else json.loads(value)
