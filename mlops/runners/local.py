"""Run the training pipeline on this machine with kfp.local (no cluster).

Each stage runs as a subprocess of the current interpreter. kfp.local's own
logs go to a log file beside the run's outputs; the terminal gets one line per
stage, read from the progress file the stages append to.
"""

import contextlib
import datetime as dt
import json
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from mlops import config
from mlops.errors import MlopsError


class RunFailed(MlopsError):
    """The pipeline stopped; the message is the failing stage's one-line reason."""


# (message regex, category) pairs for warnings.filterwarnings in the local runner.
LOCAL_RUNNER_WARNINGS = (
    # kfp.local warns for every task whose image name lacks "python"; ours are ours.
    (r".*non-Python base image.*", RuntimeWarning),
    # Cluster settings (resources, Secrets, security context) are for KFP; kfp.local ignores them.
    (r".*have no effect in the current local runner.*", UserWarning),
)


def failure_reason(error_file: Path, progress_file: Path | None = None) -> str | None:
    """The failing stage's ``stage: reason`` line, as the task recorded it (components/adapter.py), if any.

    A failure after ``register`` (the report, say) does not undo the registration: the run still
    fails (exit 1: not every stage ran), and the line says what was registered and promoted, so
    nobody reads the failure as "no new model" (``progress_file``: the stages' progress lines).
    """
    if not error_file.exists():
        return None
    record = json.loads(error_file.read_text(encoding="utf-8"))
    reason = f"{record['stage']}: {record['error']}"
    registered = _registered(progress_file) if record["stage"] != "register" else None
    if registered:
        reason += f" (after register, which stands: {registered})"
    return reason


def _registered(progress_file: Path | None) -> str | None:
    """The register stage's progress line (what it registered, and the champion move), if it ran."""
    if progress_file is None or not progress_file.exists():
        return None
    lines = progress_file.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return next((r["message"] for r in reversed(records) if r.get("stage") == "register"), None)


@dataclass
class LocalRun:
    run_dir: Path
    log_path: Path
    model_version: int
    promoted: bool
    promotion: str
    report_path: str


class _ProgressFollower(threading.Thread):
    """Prints progress records as stages append them to the progress file."""

    def __init__(self, progress_file: Path, emit):
        super().__init__(daemon=True)
        self.progress_file, self.emit, self.position = progress_file, emit, 0
        self.stopped = threading.Event()

    def drain(self) -> None:
        """Emit every complete line past the last one emitted."""
        if not self.progress_file.exists():
            return
        with open(self.progress_file, "rb") as handle:
            handle.seek(self.position)
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # a stage is still writing this line
                self.position += len(raw)
                try:
                    record = json.loads(raw)
                    self.emit(f"[{record['stage']}] {record['message']}")
                except (ValueError, KeyError):
                    self.emit(raw.decode("utf-8", "replace").rstrip())

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            self.drain()

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.drain()  # whatever arrived after the last poll


RUNNERS = ("subprocess", "docker")


def run_pipeline(
    arguments: dict,
    runs_dir: Path | None = None,
    emit=None,
    verbose: bool = False,
    runner: str = "subprocess",
    cache: bool = True,
) -> LocalRun:
    """Run ``training_pipeline(**arguments)`` locally and return what it registered.

    ``runner``: "subprocess" runs each task as a process of this interpreter;
    "docker" runs each task in its image (mlops/runners/docker.py).
    ``emit`` receives one line per finished stage (default: print to the
    terminal as it is now, before kfp.local's output is redirected to the log).
    ``cache``: reuse the outputs of tasks whose inputs are unchanged (KFP's local
    cache under <runs dir>/.kfp-cache; every task after ingest is keyed by the data
    version's content id, so a changed byte in the data misses it).
    Raises RunFailed with the failing stage's reason.
    """
    from pipelines.training import training_pipeline

    run_dir, log_path, outputs = _run(training_pipeline, arguments, runs_dir, emit, verbose, runner, cache=cache)
    return LocalRun(
        run_dir=run_dir,
        log_path=log_path,
        model_version=int(outputs["model_version"]),
        promoted=bool(outputs["promoted"]),
        promotion=outputs["promotion"],
        report_path=outputs["report"].path,
    )


@dataclass
class MonitorRun:
    run_dir: Path
    decision: str
    action: str
    record: dict
    report_path: str


def run_monitor(
    arguments: dict, runs_dir: Path | None = None, emit=None, verbose: bool = False, runner: str = "subprocess"
) -> MonitorRun:
    """Run ``monitor_pipeline(**arguments)`` locally (retraining inside it, when allowed and decided)."""
    from pipelines.monitoring import monitor_pipeline

    run_dir, _, outputs = _run(monitor_pipeline, arguments, runs_dir, emit, verbose, runner, kind="monitor")
    record = json.loads(Path(outputs["record"].path).read_text(encoding="utf-8"))
    return MonitorRun(
        run_dir=run_dir,
        decision=outputs["decision"],
        action=outputs["action"],
        record=record,
        report_path=outputs["report"].path,
    )


def _run(pipeline, arguments: dict, runs_dir, emit, verbose: bool, runner: str, kind: str = "run", cache: bool = False):
    """Run ``pipeline(**arguments)`` with kfp.local; return the run directory, the log and the outputs."""
    from kfp import local

    if emit is None:
        emit = _terminal_writer(sys.stdout)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = "" if kind == "run" else f"-{kind}"
    runs_dir = Path(runs_dir or config.runs_dir())
    run_dir = runs_dir / f"{stamp}-{arguments['model_name']}{suffix}-{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    progress_file, error_file, log_path = run_dir / "progress.jsonl", run_dir / "error.json", run_dir / "run.log"
    previous_env = {key: os.environ.get(key) for key in (config.PROGRESS_FILE.name, config.ERROR_FILE.name)}
    os.environ.update({config.PROGRESS_FILE.name: str(progress_file), config.ERROR_FILE.name: str(error_file)})

    follower = _ProgressFollower(progress_file, emit)
    follower.start()
    try:
        with open(log_path, "w", encoding="utf-8") as log, warnings.catch_warnings():
            for message, category in LOCAL_RUNNER_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=category)
            redirect = contextlib.nullcontext() if verbose else _redirected(log)
            with redirect, _run_environment(runner), tfdv_sidecar(runner), task_server(runner):
                local.init(
                    runner=_runner(runner, run_dir, arguments),
                    pipeline_root=str(run_dir / "outputs"),
                    raise_on_error=True,
                    enable_caching=cache,
                    cache_root=str(runs_dir / ".kfp-cache"),
                )
                try:
                    outputs = pipeline(**arguments).outputs
                except Exception as error:
                    raise RunFailed(_failure_reason(error_file, error, log_path, progress_file)) from None
                # A container that failed fast can pass for a success (kfp.local's DockerRunner): the
                # stage's own error record is the truth.
                reason = failure_reason(error_file, progress_file)
                if reason:
                    raise RunFailed(reason)
    finally:
        follower.stop()
        for key, value in previous_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return run_dir, log_path, outputs


# The TFDV sidecar leaves this long after its last request (TensorFlow holds more than half a gigabyte
# that training can use); a later TFDV task of the run starts its own interpreter.
TFDV_SIDECAR_IDLE_EXIT_SECONDS = 3

# The warm processes this process runs now (by variable name): a run inside warm_processes shares them.
_RUNNING: set[str] = set()


@contextlib.contextmanager
def warm_processes(runner: str):
    """The TFDV sidecar and the task server, started now, so that they import while the caller does
    its own work (`mlops run`'s pre-flight); a run started inside shares them."""
    with tfdv_sidecar(runner), task_server(runner):
        yield


@contextlib.contextmanager
def _shared(name: str):
    """Mark ``name`` as running for the duration; True if it was already running (nothing to start)."""
    if name in _RUNNING:
        yield True
        return
    _RUNNING.add(name)
    try:
        yield False
    finally:
        _RUNNING.discard(name)


@contextlib.contextmanager
def tfdv_sidecar(runner: str):
    """A warm TFDV interpreter for the run's validate tasks (tools/tfdv_tool.py serve).

    It starts with the run (with `mlops run`, before its pre-flight) and imports
    TensorFlow and Beam (seconds) while ingest and split work, so validate pays
    only for the statistics. Only for the
    subprocess runner: a container has its own interpreter. MLOPS_TFDV_SIDECAR=off
    turns it off.
    """
    python = config.TFDV_PYTHON.get()
    if runner != "subprocess" or config.TFDV_SIDECAR.get() == "off" or not python.exists():
        yield
        return
    with _shared(config.TFDV_SOCKET.name) as running:
        if running:
            yield
        else:
            with _start_tfdv_sidecar(python):
                yield


@contextlib.contextmanager
def _start_tfdv_sidecar(python: Path):
    import subprocess
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="mlops-tfdv-"))  # short: a socket path has 108 bytes at most
    socket_path = directory / "tfdv.sock"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        [
            str(python),
            str(config.TFDV_TOOL.get()),
            "serve",
            "--socket",
            str(socket_path),
            "--parent",
            str(os.getpid()),
            "--idle-exit",
            str(TFDV_SIDECAR_IDLE_EXIT_SECONDS),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    previous = os.environ.get(config.TFDV_SOCKET.name)
    os.environ[config.TFDV_SOCKET.name] = str(socket_path)
    try:
        yield
    finally:
        _stop(process, config.TFDV_SOCKET.name, previous)
        socket_path.unlink(missing_ok=True)
        Path(f"{socket_path}.closed").unlink(missing_ok=True)  # left by a sidecar that idled out
        directory.rmdir()


@contextlib.contextmanager
def task_server(runner: str):
    """A warm fork server for the run's tasks (mlops/runners/task_server.py).

    It imports pandas, scikit-learn, SciPy and skops once, and each task then hands
    its executor invocation to a child forked from it instead of importing them
    again (1.5-2 s a task). Only for the subprocess runner; MLOPS_TASK_SERVER=off
    turns it off (each task imports for itself).
    """
    name = config.TASK_SERVER.name
    if runner != "subprocess" or os.environ.get(name) == "off":
        previous = os.environ.pop(name, None)  # "off" is for the runner; a task must not take it for a socket
        try:
            yield
        finally:
            if previous is not None:
                os.environ[name] = previous
        return
    with _shared(name) as running:
        if running:
            yield
        else:
            with _start_task_server():
                yield


@contextlib.contextmanager
def _start_task_server():
    import subprocess
    import tempfile

    from mlops.runners import task_server as server

    name = config.TASK_SERVER.name
    directory = Path(tempfile.mkdtemp(prefix="mlops-tasks-"))  # private (0700), short (a socket path's limit)
    socket_path = directory / "tasks.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", server.__name__, "--socket", str(socket_path), "--parent", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    previous = os.environ.get(name)
    os.environ[name] = str(socket_path)
    try:
        yield
    finally:
        _stop(process, name, previous)
        socket_path.unlink(missing_ok=True)
        directory.rmdir()


def _run_environment(name: str):
    if name == "docker":
        from mlops.runners.docker import group_writable

        return group_writable()
    return contextlib.nullcontext()


def _runner(name: str, run_dir: Path, arguments: dict):
    from kfp import local

    if name == "subprocess":
        return local.SubprocessRunner(use_venv=False)
    if name == "docker":
        from mlops.runners.docker import container_settings

        return container_settings(run_dir, arguments).runner()
    raise ValueError(f"runner must be one of {RUNNERS}, got {name!r}")


def _terminal_writer(terminal):
    """One line to ``terminal``, without builtins.print: kfp.local swaps print for an indenting one
    while a task runs, and its parallel loop threads can leave the swap in place after the loop."""

    def emit(line: str) -> None:
        terminal.write(line + "\n")
        terminal.flush()

    return emit


@contextlib.contextmanager
def _redirected(log):
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield


def _failure_reason(error_file: Path, error: Exception, log_path: Path, progress_file: Path | None = None) -> str:
    return failure_reason(error_file, progress_file) or f"{' '.join(str(error).split())} (details in {log_path})"


def _stop(process, variable: str, previous: str | None) -> None:
    """Stop a helper process this run started (killed after 10 s) and put back ``variable`` as it was."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    if previous is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = previous


def release_memory() -> None:
    """Hand freed memory back to the system: the TFDV tool's own function (one definition),
    loaded from its file, which imports nothing at the top, so loading it costs nothing."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mlops_tfdv_tool", config.TFDV_TOOL.get())
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.release_memory()
