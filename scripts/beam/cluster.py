"""A local Spark cluster for TFDV's Beam pipeline, through Beam's portable runner (docs/beam.md).

    python scripts/beam/cluster.py fetch    # at setup (make beam-runtime): Spark and the job server's jars
    python scripts/beam/cluster.py up       # make beam-cluster-up
    python scripts/beam/cluster.py down     # make beam-cluster-down
    python scripts/beam/cluster.py status

``fetch`` brings Spark from PyPI's pyspark sdist (its jars and launch scripts, scripts/beam/spark.lock)
and the classpath of Beam's Spark job server from Maven Central (scripts/beam/pom.xml) into a cache
directory keyed by those two files (MLOPS_BEAM_CACHE_DIR, default ~/.cache/kfp-mlops/beam/<key>).
``up`` never downloads: it starts, each as its own process group with a pid file and a log under
MLOPS_BEAM_STATE_DIR (default .beam/), a Spark master, two Spark workers (one core each), Beam's
SparkJobServerDriver (the Spark driver of every job it runs) and a Python SDK worker pool in TFDV's
interpreter, and waits for each (MLOPS_BEAM_START_TIMEOUT_SECONDS). It writes .beam/env, the
settings `mlops run --beam-runner spark` reads to find them. Any failure is one line on stderr and
exit status 1, after stopping whatever this call started.

Run by the main environment's Python: the ports and directories are settings in mlops/config.py.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from mlops import config
from mlops.errors import MlopsError

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
SPARK_LOCK = HERE / "spark.lock"
WORKER_POOL = HERE / "worker_pool.py"
LOG_CONFIG = HERE / "log4j2.properties"
# Changes when the cache's layout does (what fetch writes where), so an older cache is not taken for this one.
LAYOUT = "1"
WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "1g"
EXECUTOR_MEMORY = "768m"
JOB_SERVER_MEMORY = "1g"
# Spark on Java 17 needs these opened (Spark's launcher adds them to the executors it starts; the job
# server is started here, so it gets them here): Spark's own list, org.apache.spark.launcher.JavaModuleOptions.
JAVA_MODULE_OPTIONS = ["-XX:+IgnoreUnrecognizedVMOptions", "-Djdk.reflect.useDirectMethodHandle=false"] + [
    f"--add-opens=java.base/{package}=ALL-UNNAMED"
    for package in (
        "java.lang",
        "java.lang.invoke",
        "java.lang.reflect",
        "java.io",
        "java.net",
        "java.nio",
        "java.util",
        "java.util.concurrent",
        "java.util.concurrent.atomic",
        "jdk.internal.ref",
        "sun.nio.ch",
        "sun.nio.cs",
        "sun.security.action",
        "sun.util.calendar",
    )
]
# The processes, in start order (down stops them in reverse).
PROCESSES = ["master", *(f"worker-{n}" for n in range(1, WORKERS + 1)), "job-server", "worker-pool"]


class ClusterError(Exception):
    """A one-line reason `fetch`, `up` or `down` could not do its work."""


# -- fetch -------------------------------------------------------------------------------


def cache_key() -> str:
    """The digest of everything fetch's result depends on: the pom, the Spark lock and the layout."""
    digest = hashlib.sha256(LAYOUT.encode())
    for path in (POM, SPARK_LOCK):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def runtime_dir() -> Path:
    return config.beam_cache_dir() / cache_key()


def _run(command: list[str], what: str, **kwargs) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if completed.returncode != 0:
        lines = [line for line in (completed.stderr + completed.stdout).splitlines() if line.strip()]
        raise ClusterError(f"{what} failed: {lines[-1] if lines else f'exit status {completed.returncode}'}")


def _tree_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def fetch() -> Path:
    """Spark and the job server's classpath in the cache (a no-op when they are there)."""
    target = runtime_dir()
    if (target / "manifest.json").is_file():
        print(f"beam-runtime: cached at {target}")
        return target
    for tool in ("java", "mvn"):
        if not shutil.which(tool):
            raise ClusterError(f"{tool} is not on PATH: the Beam runtime needs a JDK (17) and Maven")
    started = time.monotonic()
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "download").mkdir(parents=True)
    # pip checks the sdist's hash (--require-hashes); only its deps/ folder is used, nothing is installed.
    _run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
        + ["--require-hashes", "-r", str(SPARK_LOCK), "-d", str(partial / "download")],
        "pip download of pyspark (scripts/beam/spark.lock)",
    )
    (sdist,) = (partial / "download").glob("pyspark-*.tar.gz")
    download_bytes = sdist.stat().st_size
    spark = partial / "spark"
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts
            if len(parts) > 3 and parts[1] == "deps" and parts[2] in ("jars", "bin", "sbin"):
                member.name = str(Path(*parts[2:]))
                archive.extract(member, spark, filter="data")
    sdist.unlink()
    jars = partial / "beam-jars"
    # Maven's own repository for these, beside the runtimes: what it downloads is measured, and kept
    # for the next key (a pom edit re-resolves without downloading again what it already has).
    repository = config.beam_cache_dir() / "maven-repository"
    before = _tree_bytes(repository) if repository.is_dir() else 0
    _run(
        ["mvn", "-B", "-q", "-f", str(POM), f"-Dmaven.repo.local={repository}", "dependency:copy-dependencies"]
        + ["-DincludeScope=runtime", f"-DoutputDirectory={jars}"],
        "Maven's resolution of the job server's classpath (scripts/beam/pom.xml)",
    )
    download_bytes += max(_tree_bytes(repository) - before, 0)
    shutil.rmtree(partial / "download")
    manifest = {
        "key": cache_key(),
        "spark": re.search(r"pyspark==(\S+)", SPARK_LOCK.read_text()).group(1),
        "spark_jars": len(list((spark / "jars").glob("*.jar"))),
        "beam_jars": len(list(jars.glob("*.jar"))),
        "download_bytes": download_bytes,
        "size_bytes": _tree_bytes(partial),
        "fetch_seconds": round(time.monotonic() - started, 1),
    }
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    print(
        f"beam-runtime: Spark {manifest['spark']} and {manifest['beam_jars']} job server jars at {target} "
        f"({download_bytes / 1e6:.0f} MB downloaded, {manifest['fetch_seconds']:g} s)"
    )
    return target


def _artifact(jar: Path) -> str:
    """A jar's artifact name without its version: guava-33.3.1-android.jar -> guava."""
    match = re.match(r"(.+?)-\d[^/]*\.jar$", jar.name)
    return match.group(1) if match else jar.stem


def job_server_classpath(runtime: Path) -> tuple[list[Path], list[Path]]:
    """(before Spark's jars, after them): Beam's jars for the job server and the executors.

    Where Beam's resolution and Spark's distribution hold the same library, Spark's copy stays (Spark
    is tested with it) and Beam's is left out, except Guava: Beam's GCP options, which its job server
    reads at start, need a Guava newer than Spark's 14 (which Spark itself only uses shaded), so
    Beam's goes first.
    """
    spark_artifacts = {_artifact(jar) for jar in (runtime / "spark" / "jars").glob("*.jar")}
    first, after = [], []
    for jar in sorted((runtime / "beam-jars").glob("*.jar")):
        if _artifact(jar) in ("guava", "failureaccess"):
            first.append(jar)
        elif _artifact(jar) not in spark_artifacts:
            after.append(jar)
    return first, after


# -- up, down, status ----------------------------------------------------------------------


def _endpoint_port(setting) -> int:
    """The port of a host:port setting whose host is this machine's loopback (the cluster listens there)."""
    host, _, port = setting.get().rpartition(":")
    if host not in ("localhost", "127.0.0.1") or not port.isdigit():
        raise ClusterError(
            f"{setting.name} must be localhost:PORT for the local cluster, got {setting.get()!r} "
            "(a remote endpoint needs no `make beam-cluster-up`)"
        )
    return int(port)


def _check_free(port: int, setting_name: str) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise ClusterError(
                f"port {port} on 127.0.0.1 is in use: stop what holds it or set {setting_name}"
            ) from None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(state: Path, name: str) -> int | None:
    """The pid of ``name`` when its pid file names a process that is still the one started."""
    try:
        pid, started = (state / f"{name}.pid").read_text().split()
    except (OSError, ValueError):
        return None
    return int(pid) if _start_time(int(pid)) == started else None


def _spawn(state: Path, name: str, command: list[str], env: dict) -> subprocess.Popen:
    log = open(state / f"{name}.log", "w")  # noqa: SIM115 - the child holds it; closed here after the fork
    try:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=state,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()
    (state / f"{name}.pid").write_text(f"{process.pid} {_start_time(process.pid)}\n")
    return process


def _wait_for(state: Path, name: str, process: subprocess.Popen, pattern: str, timeout: float) -> re.Match:
    """The first match of ``pattern`` in the process's log, or a one-line error once it exits or times out."""
    log = state / f"{name}.log"
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace")
        match = re.search(pattern, text)
        if match:
            return match
        if process.poll() is not None or time.monotonic() > deadline:
            lines = [line for line in text.splitlines() if line.strip() and not line.startswith(("\t", " "))]
            why = "exited" if process.poll() is not None else f"did not start within {timeout:g} s"
            last = f": {lines[-1][:300]}" if lines else ""
            raise ClusterError(f"{name} {why} (log {log}){last}")
        time.sleep(0.2)


def _spark_env(runtime: Path, state: Path) -> dict:
    return {
        **os.environ,
        "SPARK_HOME": str(runtime / "spark"),
        "SPARK_SCALA_VERSION": "2.12",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(state),
        "SPARK_CONF_DIR": str(state / "conf"),
    }


def up() -> None:
    state = config.BEAM_STATE_DIR.get().resolve()
    runtime = runtime_dir()
    if not (runtime / "manifest.json").is_file():
        raise ClusterError(f"the Beam runtime is not fetched (no {runtime}): run `make beam-runtime` first")
    running = [name for name in PROCESSES if _alive(state, name)]
    if running == PROCESSES:
        print(f"beam-cluster: already up (state {state}; `make beam-cluster-down` stops it)")
        return
    if running:
        down(quiet=True)  # half a cluster (one process died): start it again whole
    job_port = _endpoint_port(config.BEAM_JOB_ENDPOINT)
    pool_port = _endpoint_port(config.BEAM_WORKER_POOL)
    master_port = config.SPARK_MASTER_PORT.get()
    for port, setting in (
        (master_port, config.SPARK_MASTER_PORT),
        (job_port, config.BEAM_JOB_ENDPOINT),
        (pool_port, config.BEAM_WORKER_POOL),
    ):
        _check_free(port, setting.name)
    tfdv_python = config.TFDV_PYTHON.get()
    if not tfdv_python.exists():
        raise ClusterError(f"TFDV interpreter not found at {tfdv_python}: run `make setup` or set MLOPS_TFDV_PYTHON")
    timeout = config.BEAM_START_TIMEOUT_SECONDS.get()
    shutil.rmtree(state, ignore_errors=True)
    (state / "conf").mkdir(parents=True)
    shutil.copyfile(LOG_CONFIG, state / "conf" / "log4j2.properties")
    started = time.monotonic()
    master_url = f"spark://127.0.0.1:{master_port}"
    spark_class = str(runtime / "spark" / "bin" / "spark-class")
    try:
        env = {**_spark_env(runtime, state), "SPARK_DAEMON_MEMORY": "512m"}
        master = _spawn(
            state,
            "master",
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(master_port)]
            + ["--webui-port", "0"],
            env,
        )
        _wait_for(state, "master", master, r"I have been elected leader", timeout)
        workers = []
        for name in PROCESSES[1 : 1 + WORKERS]:
            env = {**_spark_env(runtime, state), "SPARK_DAEMON_MEMORY": "256m"}
            command = [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--webui-port", "0"]
            command += ["--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY, "--work-dir", str(state / name)]
            workers.append((name, _spawn(state, name, [*command, master_url], env)))
        for name, worker in workers:
            _wait_for(state, name, worker, r"Successfully registered with master", timeout)
        first, after = job_server_classpath(runtime)
        spark_jars = str(runtime / "spark" / "jars" / "*")
        executor_classpath = ":".join(str(jar) for jar in first + after)
        properties = {
            # One Spark application for the job server's life, not one per Beam job: its executors (and the
            # jars Beam's runner ships them from the job server's classpath, 0.4 GB) stay for the next job.
            "beam.spark.test.reuseSparkContext": "true",
            "log4j2.configurationFile": str(state / "conf" / "log4j2.properties"),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": "false",
            "spark.executor.memory": EXECUTOR_MEMORY,
            "spark.executor.cores": str(WORKER_CORES),
            "spark.executor.extraClassPath": executor_classpath,
            "spark.executor.extraJavaOptions": f"-Dlog4j2.configurationFile={state / 'conf' / 'log4j2.properties'}",
        }
        command = ["java", f"-Xmx{JOB_SERVER_MEMORY}", *JAVA_MODULE_OPTIONS]
        command += [f"-D{key}={value}" for key, value in properties.items()]
        command += ["-cp", ":".join([*(str(jar) for jar in first), spark_jars, *(str(jar) for jar in after)])]
        command += ["org.apache.beam.runners.spark.SparkJobServerDriver", "--spark-master-url", master_url]
        command += ["--job-host", "127.0.0.1", "--job-port", str(job_port), "--artifact-port", "0"]
        command += ["--expansion-port", "-1", "--artifacts-dir", str(state / "artifacts")]
        job_server = _spawn(state, "job-server", command, _spark_env(runtime, state))
        _wait_for(state, "job-server", job_server, r"JobService started on", timeout)
        # The pool starts each SDK worker as `python`: TFDV's interpreter first on PATH.
        env = {
            **os.environ,
            "PATH": f"{tfdv_python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONWARNINGS": "ignore",
        }
        pool = _spawn(state, "worker-pool", [str(tfdv_python), str(WORKER_POOL), "--port", str(pool_port)], env)
        _wait_for(state, "worker-pool", pool, r"worker pool listening", timeout)
    except BaseException:
        down(quiet=True)
        raise
    (state / "env").write_text(
        f"export {config.BEAM_JOB_ENDPOINT.name}={config.BEAM_JOB_ENDPOINT.get()}\n"
        f"export {config.BEAM_WORKER_POOL.name}={config.BEAM_WORKER_POOL.get()}\n"
    )
    print(
        f"beam-cluster: up in {time.monotonic() - started:.1f} s: Spark master {master_url} with {WORKERS} workers, "
        f"job server {config.BEAM_JOB_ENDPOINT.get()}, Python worker pool {config.BEAM_WORKER_POOL.get()} "
        f"(logs in {state}; `mlops run --beam-runner spark`; `make beam-cluster-down` stops it)"
    )


def down(quiet: bool = False) -> None:
    """Stop each process group this cluster started (TERM, then KILL after 10 s), newest first."""
    state = config.BEAM_STATE_DIR.get().resolve()
    stopped = []
    for name in reversed(PROCESSES):
        pid = _alive(state, name)
        if pid is not None:
            _stop_group(pid)
            stopped.append(name)
        (state / f"{name}.pid").unlink(missing_ok=True)
    if not quiet:
        print(f"beam-cluster: stopped {', '.join(stopped)}" if stopped else "beam-cluster: nothing was running")


def _stop_group(pid: int) -> None:
    """Stop the process group ``pid`` leads (each process here was started in its own session)."""
    started = _start_time(pid)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while _start_time(pid) == started and time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # reaps it when this process started it (a test's fixture)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)  # the group's stragglers too (an executor, an SDK worker)
    except ProcessLookupError:
        pass


def status() -> int:
    state = config.BEAM_STATE_DIR.get().resolve()
    alive = {name: _alive(state, name) for name in PROCESSES}
    for name, pid in alive.items():
        print(f"{name:12} {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 0 if all(alive.values()) else 1


def main(argv: list[str]) -> int:
    commands = {"fetch": fetch, "up": up, "down": down, "status": status}
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: cluster.py {{{'|'.join(commands)}}}", file=sys.stderr)
        return 2
    try:
        result = commands[argv[0]]()
    except (ClusterError, MlopsError) as error:
        print(f"beam-cluster {argv[0]}: {error}", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
