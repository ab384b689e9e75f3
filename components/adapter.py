"""Everything that adapts plain stage code to running as a KFP task, in one place.

Inside a task (every component in components/ runs its body in :func:`stage`):

- :func:`stage` does the warm start, then turns any failure into ONE line that is
  the last thing the task prints (a pod log, the KFP UI and `mlops run` all show
  it), plus a record in MLOPS_ERROR_FILE for the local runner;
- :func:`progress` prints a stage's one-line summary and appends it to
  MLOPS_PROGRESS_FILE, which the local runner follows;
- :func:`as_mapping` and :func:`restore_integers` undo what the transport does to
  values: kfp.local hands a dict parameter to a task inside a ParallelFor already
  parsed (elsewhere as JSON text), and protobuf Structs (loop items, artifact
  metadata) carry every number as a double.

The side that starts runs (mlops/runners/local.py) reads the error record back.

Nothing here imports kfp at module level: it is imported by every task.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import traceback
from pathlib import Path

from mlops.errors import MlopsError


def warm_start() -> None:
    """Hand this task to the local runner's warm task server, if there is one, and exit with its status.

    Called first by :func:`stage`, so first in every task. The server (mlops/runners/task_server.py)
    has the stages' libraries imported already and forks a child that runs this
    same executor invocation; without a server (a cluster, a container, a server
    that cannot be reached) this returns and the task runs here, as it always could.
    """
    import os

    from mlops import config

    socket_path = config.TASK_SERVER.get()
    if not socket_path:
        return
    from mlops.runners import task_server

    if task_server.in_child():
        return
    try:
        status = task_server.hand_over(socket_path)
    except task_server.Unavailable:
        return
    os._exit(status)  # the child wrote the executor's output; nothing is left to do here


def progress(stage: str, message: str) -> None:
    """Print ``[stage] message`` and append it to MLOPS_PROGRESS_FILE when set."""
    from mlops import config

    print(f"[{stage}] {message}", flush=True)
    progress_file = config.PROGRESS_FILE.get()
    if progress_file:
        record = {"stage": stage, "message": message, "time": time.time()}
        with open(progress_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def _fail(stage: str, message: str) -> None:
    """Record the one-line reason, print it LAST on stderr, exit the task with status 1."""
    from mlops import config

    message = " ".join(message.split())
    try:
        error_file = config.ERROR_FILE.get()
    except MlopsError:
        error_file = None
    if error_file:
        Path(error_file).write_text(json.dumps({"stage": stage, "error": message}), encoding="utf-8")
    sys.stdout.flush()
    print(f"[{stage}] ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


class Stage:
    """What a task's body holds while it runs: its stage name, to tag progress lines."""

    def __init__(self, name: str):
        self.name = name

    def progress(self, message: str) -> None:
        """Print ``[stage] message`` and append it to MLOPS_PROGRESS_FILE (:func:`progress`)."""
        progress(self.name, message)


@contextlib.contextmanager
def stage(name: str):
    """The one context of every task body: the warm start, then any failure as ONE line and exit 1.

    ``with adapter.stage("register") as step:`` first hands the task to the local
    runner's warm task server if there is one (:func:`warm_start`); the body (its
    imports included) then runs with every failure mapped in one place. A
    :class:`MlopsError` (bad input, bad data, an unreachable store, a bad setting)
    is the user's to fix: its message is the line. Anything else is a bug: the
    traceback goes to stderr first, for whoever debugs it, and the one-line summary
    still comes last. ``step.progress(...)`` prints lines tagged with the stage.
    """
    warm_start()
    try:
        yield Stage(name)
    except MlopsError as error:
        _fail(name, str(error))
    except Exception as error:  # noqa: BLE001 - the last line must be ours, whatever was raised
        traceback.print_exc(file=sys.stderr)
        detail = " ".join(str(error).split())[:300]
        _fail(name, f"internal error: {type(error).__name__}: {detail} (a bug; the traceback is above)")


def as_mapping(value) -> dict | list:
    """A dict/list parameter as Python data, whether it arrived parsed or as JSON text."""
    return value if isinstance(value, (dict, list)) else json.loads(value)


def restore_integers(params: dict) -> dict:
    """Whole-number floats back to ints (Structs carry every number as a double).

    ``max_depth: 8`` arrives as 8.0, which scikit-learn rejects; every
    float-typed hyperparameter accepts an int, so the reverse is always safe.
    """
    return {
        key: int(value) if isinstance(value, float) and value.is_integer() else value for key, value in params.items()
    }
