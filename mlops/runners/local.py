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
    from mlops.store.registry import utc_now
    from pipelines.training import training_pipeline

    runs_dir = Path(runs_dir or config.runs_dir())
    run_dir, started = new_run_dir(runs_dir, arguments["model_name"]), utc_now()
    try:
        _, log_path, outputs = _run(
            training_pipeline, arguments, runs_dir, emit, verbose, runner, cache=cache, run_dir=run_dir
        )
    except BaseException as error:
        reason = str(error) if isinstance(error, MlopsError) else _unexpected(error)
        record_run(arguments, run_dir, started, reason, runner=runner, cache=cache, emit=emit)
        raise
    result = LocalRun(
        run_dir=run_dir,
        log_path=log_path,
        model_version=int(outputs["model_version"]),
        promoted=bool(outputs["promoted"]),
        promotion=outputs["promotion"],
        report_path=outputs["report"].path,
    )
    record_run(arguments, run_dir, started, "", runner=runner, cache=cache, emit=emit, result=result)
    return result


def _unexpected(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


# The run parameters a run record keeps apart from its parameters (as the model, data and code).
_NOT_PARAMETERS = ("model_name", "data_name", "data_uri", "store_uri", "code_version")


def record_run(
    arguments: dict, run_dir: Path, started: str, reason: str, *, runner: str, cache: bool, emit=None, result=None
) -> None:
    """Write the run's record to the store (mlops.store.runs), succeeded (``result``) or failed (``reason``).

    The record is a convenience for `mlops runs`: when it cannot be written (the store is down),
    the run's own outcome stands, and one warning line says so after a run that succeeded (after
    one that failed, its own one-line error is what the person reads, and most likely the cause).
    """
    from mlops.store import StoreError, open_store
    from mlops.store.registry import ModelRegistry, utc_now
    from mlops.store.runs import run_record, write_run

    emit = emit or _terminal_writer(sys.stderr)
    parameters = {k: v for k, v in arguments.items() if k not in _NOT_PARAMETERS}
    try:
        parameters["search_space"] = json.loads(parameters["search_space"])
    except (KeyError, TypeError, ValueError):
        pass  # kept as it was passed
    with _quiet_http():
        try:
            store = open_store(arguments["store_uri"], role="pipeline")
            lineage, registered = None, None
            if result is not None:
                version = ModelRegistry(store).get(arguments["model_name"], result.model_version)
                lineage = version.lineage
                registered = {"ref": version.ref, "promoted": result.promoted, "promotion": result.promotion}
            record = run_record(
                run_id=run_dir.name,
                model=arguments["model_name"],
                state="failed" if result is None else "succeeded",
                reason=reason,
                started_at=started,
                finished_at=utc_now(),
                parameters=parameters,
                data_version=_ingested_version(run_dir),
                data_source=arguments.get("data_uri", ""),
                code_version=arguments.get("code_version", ""),
                lineage=lineage,
                registered=registered,
                environment=None if lineage else _environment(runner),
                details={"run_dir": str(run_dir), "log": str(run_dir / "run.log"), "runner": runner, "cache": cache},
            )
            write_run(store, record)
        except (StoreError, OSError, ValueError, KeyError) as error:
            if result is not None:
                emit(f"warning: the run's record was not written to the store: {' '.join(str(error).split())}")


def _environment(runner: str) -> dict:
    """The run's environment as its lineage would have recorded it (mlops.stages.register), for a run
    that registered nothing: the lock hashes, and the package versions when the tasks ran here."""
    import importlib.metadata
    import platform

    from mlops.stages.register import lock_hashes

    packages = {}
    if runner == "subprocess":
        packages["python"] = platform.python_version()
        for name in ("scikit-learn", "pandas", "numpy", "skops"):
            try:
                packages[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
    return {"locks": lock_hashes(), "packages": packages}


def _ingested_version(run_dir: Path) -> str | None:
    """The data version the run's ingest task published (its output in kfp.local's run folder), if it ran."""
    for output in sorted(run_dir.glob("outputs/*/ingest/executor_output.json")):
        try:
            return json.loads(output.read_text(encoding="utf-8"))["parameterValues"]["data_version"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


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


def new_run_dir(runs_dir: Path, model_name: str, kind: str = "run") -> Path:
    """A new folder for one run's outputs, named ``<local time>-<model>[-<kind>]-<pid>`` (the run's id)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = "" if kind == "run" else f"-{kind}"
    run_dir = runs_dir / f"{stamp}-{model_name}{suffix}-{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _run(
    pipeline,
    arguments: dict,
    runs_dir,
    emit,
    verbose: bool,
    runner: str,
    kind: str = "run",
    cache: bool = False,
    run_dir: Path | None = None,
):
    """Run ``pipeline(**arguments)`` with kfp.local; return the run directory, the log and the outputs."""
    from kfp import local

    from mlops.runners import cache_record

    if emit is None:
        emit = _terminal_writer(sys.stdout)
    runs_dir = Path(runs_dir or config.runs_dir())
    run_dir = run_dir or new_run_dir(runs_dir, arguments["model_name"], kind)
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
            # A training run records its tasks' cache keys: why each came from the cache, or not.
            recorded = cache_record.recorded if kind == "run" else _not_recorded
            with (
                redirect,
                _run_environment(runner),
                tfdv_sidecar(runner),
                task_server(runner),
                recorded(pipeline, arguments, run_dir, cache, emit) as recording,
            ):
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
            if recording is not None:
                recording.explain_in_report(outputs)  # the record is published by now
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


@contextlib.contextmanager
def _not_recorded(*_):
    """For a run whose cache keys are not recorded (the monitor's): nothing to do."""
    yield None


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
    """stdout and stderr into the run's log. A handler some library adds to the root logger meanwhile
    (kfp.local does) writes to that log, which is closed after the run: it goes with the redirect."""
    import logging

    root = logging.getLogger()
    before = list(root.handlers)
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)


@contextlib.contextmanager
def _quiet_http():
    """urllib3's retry warnings off (the store retries on its own and says in one line when it gives up)."""
    import logging

    logger = logging.getLogger("urllib3")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


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
