"""Run the training pipeline on this machine with kfp.local (no cluster).

Each stage runs as a subprocess of the current interpreter. kfp.local's own
logs go to a log file beside the run's outputs; the terminal gets one line per
stage, read from the progress file the stages append to.
"""

import contextlib
import datetime as dt
import json
import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from kfp import local

from pipelines.training import training_pipeline


class RunFailed(Exception):
    """The pipeline stopped; the message is the failing stage's one-line reason."""


@dataclass
class LocalRun:
    run_dir: Path
    log_path: Path
    registration: dict
    report_path: str


def default_runs_dir() -> Path:
    return Path(os.environ.get("MLOPS_RUNS_DIR") or Path.cwd() / "runs").resolve()


def _follow(progress_file: Path, stop: threading.Event, emit) -> None:
    """Print progress records as stages append them, until ``stop`` is set."""
    position = 0
    while True:
        finished = stop.is_set()
        if progress_file.exists():
            with open(progress_file, encoding="utf-8") as handle:
                handle.seek(position)
                for line in handle:
                    if line.endswith("\n"):
                        record = json.loads(line)
                        emit(f"[{record['stage']}] {record['message']}")
                        position += len(line.encode("utf-8"))
        if finished:
            return
        stop.wait(0.2)


def run_pipeline(arguments: dict, runs_dir: Path | None = None, emit=print, verbose: bool = False) -> LocalRun:
    """Run ``training_pipeline(**arguments)`` locally and return what it registered.

    Raises RunFailed with the failing stage's reason.
    """
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (runs_dir or default_runs_dir()) / f"{stamp}-{arguments['model_name']}-{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    progress_file, error_file, log_path = run_dir / "progress.jsonl", run_dir / "error.json", run_dir / "run.log"
    previous_env = {key: os.environ.get(key) for key in ("MLOPS_PROGRESS_FILE", "MLOPS_ERROR_FILE")}
    os.environ.update({"MLOPS_PROGRESS_FILE": str(progress_file), "MLOPS_ERROR_FILE": str(error_file)})

    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(progress_file, stop, emit), daemon=True)
    follower.start()
    try:
        with open(log_path, "w", encoding="utf-8") as log, warnings.catch_warnings():
            # kfp.local warns for every task whose image name lacks "python"; ours are ours.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            redirect = contextlib.nullcontext() if verbose else _redirected(log)
            with redirect:
                local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir / "outputs"),
                           raise_on_error=True)
                try:
                    outputs = training_pipeline(**arguments).outputs
                except Exception as error:
                    raise RunFailed(_failure_reason(error_file, error, log_path)) from None
    finally:
        stop.set()
        follower.join()
        for key, value in previous_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return LocalRun(run_dir=run_dir, log_path=log_path, registration=json.loads(outputs["registration"]),
                    report_path=outputs["report_path"])


@contextlib.contextmanager
def _redirected(log):
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield


def _failure_reason(error_file: Path, error: Exception, log_path: Path) -> str:
    if error_file.exists():
        record = json.loads(error_file.read_text(encoding="utf-8"))
        return f"{record['stage']}: {record['error']}"
    return f"{' '.join(str(error).split())} (details in {log_path})"
