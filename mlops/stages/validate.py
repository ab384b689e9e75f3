"""Validate: TFDV statistics, schema and anomalies for each split; stop on anomalies.

TFDV runs in its own interpreter (see tfdv_tool.py); this module decides which
schema applies and what the result means for the run:

1. a schema file the run names (``--schema FILE`` / the ``schema_uri`` parameter);
2. else the curated schema in git, ``schemas/<model_name>.pbtxt``;
3. else the model's baseline schema: the one TFDV inferred for its first
   registered version (which carries it as baseline/schema.pbtxt);
4. else TFDV infers one now; it becomes that baseline only when this run registers
   a version. A run that fails at any stage changes nothing later runs are held to.

Any anomaly in any split stops the run before training. Train-vs-validation
skew is measured and reported, not enforced: the split is by content hash, so
the distances only measure sampling noise (mlops.stages.drift says when a
sample is large enough to tell anything).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlops import config
from mlops.errors import SettingError, StageError
from mlops.store import ObjectStore

TOOL_VERSION = "1"


def curated_schema_path(model_name: str) -> Path | None:
    from mlops.store.registry import validate_name

    validate_name("model", model_name)  # the name becomes a path: no separators, no '..'
    path = config.SCHEMA_DIR.get() / f"{model_name}.pbtxt"
    return path if path.is_file() else None


def stored_baseline(model_name: str, store: ObjectStore) -> tuple[str, str] | None:
    """The model's baseline schema as (where it is, its text), or None before its first registration.

    It is the schema its first registered version was validated against when that schema was
    inferred (or was this baseline): only a run that got as far as registering can set it.
    """
    from mlops.store.registry import ModelRegistry

    # Only the registry's (models/, which the pipeline role cannot write): never a file another
    # writer could plant, as the schemas/ key of earlier releases was.
    registry = ModelRegistry(store)
    for version in registry.versions(model_name):  # oldest first
        source = version.lineage.get("validation", {}).get("schema_source")
        if source in ("inferred", "baseline") and "baseline/schema.pbtxt" in version.files:
            text = registry.read_file(version, "baseline/schema.pbtxt").decode("utf-8")
            return f"{version.ref}/baseline/schema.pbtxt", text
    return None


@dataclass
class SchemaChoice:
    """Which schema a run validates against, and where it came from."""

    source: str  # file | curated | baseline | inferred
    origin: str  # the path, URI or store key; "" when inferred
    text: str | None  # the schema (text proto); None when TFDV infers it

    def describe(self) -> str:
        where = f" {self.origin}" if self.origin else ""
        return {
            "file": f"the schema file{where}",
            "curated": f"the curated schema{where}",
            "baseline": f"the stored baseline schema{where}",
            "inferred": "a schema TFDV inferred from this data (the model's baseline once this run registers)",
        }[self.source]


def read_schema_uri(schema_uri: str, store: ObjectStore) -> str:
    """The text of a schema named by a path, file:// or s3:// URI."""
    parsed = urlparse(schema_uri)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else schema_uri)
        if not path.is_file():
            raise StageError(f"schema file not found: {path}")
        return path.read_text(encoding="utf-8")
    if parsed.scheme == "s3":
        from mlops.store.s3 import read_s3_uri

        return read_s3_uri(schema_uri).decode("utf-8")
    raise StageError(f"unsupported schema URI {schema_uri!r}: use a path, file:// or s3://")


def choose_schema(model_name: str, store: ObjectStore, schema_uri: str = "") -> SchemaChoice:
    """The schema this run is held to (see the module docstring for the order)."""
    if schema_uri:
        return SchemaChoice("file", schema_uri, read_schema_uri(schema_uri, store))
    curated = curated_schema_path(model_name)
    if curated:
        # As in git (schemas/<model>.pbtxt), wherever the directory sits (an image has it under /opt/mlops).
        return SchemaChoice("curated", f"{curated.parent.name}/{curated.name}", curated.read_text(encoding="utf-8"))
    baseline = stored_baseline(model_name, store)
    if baseline:
        return SchemaChoice("baseline", *baseline)
    return SchemaChoice("inferred", "", None)


def _ask_sidecar(socket_path: Path, argv: list[str], timeout: float) -> tuple[int, str]:
    """Run the tool in the warm sidecar (tfdv_tool.py serve): (exit status, stderr)."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(str(socket_path))
        connection.sendall(json.dumps({"argv": argv}).encode("utf-8"))
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    answer = json.loads(b"".join(chunks))
    return answer["status"], answer["stderr"]


def _ready(socket_path: Path | None, wait_seconds: float = 60.0) -> Path | None:
    """The sidecar's socket once it is listening (it may still be importing TFDV), or None."""
    import time

    if socket_path is None:
        return None
    deadline = time.monotonic() + wait_seconds
    closed = Path(f"{socket_path}.closed")  # tfdv_tool.closed_marker: it left after its idle time
    while not socket_path.exists():
        if time.monotonic() > deadline or not socket_path.parent.exists() or closed.exists():
            return None
        time.sleep(0.05)
    return socket_path


def _run_tool(arguments: list[str], out_dir: str) -> dict:
    """Run tfdv_tool.py (in the warm sidecar when the local runner started one, else under the TFDV
    interpreter) and return the result.json it wrote."""
    timeout = config.TFDV_TIMEOUT_SECONDS.get()
    argv = [*arguments, "--out", out_dir]
    sidecar = _ready(config.TFDV_SOCKET.get())
    try:
        if sidecar:
            try:
                status, stderr = _ask_sidecar(sidecar, argv, timeout)
            except (ConnectionError, FileNotFoundError, json.JSONDecodeError):
                sidecar = None  # it left (idle) as this task came: TFDV starts here instead
        if not sidecar:
            python = config.TFDV_PYTHON.get()
            if not python.exists():
                raise StageError(f"TFDV interpreter not found at {python}: run `make setup` or set MLOPS_TFDV_PYTHON")
            # TensorFlow's C++ logging is noise here; the tool reports through result.json.
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
            completed = subprocess.run(
                [str(python), str(config.TFDV_TOOL.get()), *argv],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
            )
            status, stderr = completed.returncode, completed.stderr
    except (subprocess.TimeoutExpired, TimeoutError):
        raise StageError(
            f"TFDV did not finish within {timeout:g} s; raise MLOPS_TFDV_TIMEOUT_SECONDS or validate less data"
        ) from None
    if status != 0:
        lines = [line for line in stderr.splitlines() if line.strip()]
        raise StageError(f"TFDV failed: {lines[-1] if lines else f'exit status {status}'}")
    result = json.loads(Path(out_dir, "result.json").read_text(encoding="utf-8"))
    if result.get("tool_version") != TOOL_VERSION:
        raise StageError(f"tfdv_tool version {result.get('tool_version')!r} does not match {TOOL_VERSION!r}")
    return result


# How long a Spark executor keeps an idle SDK worker within a job (Beam's default, 0, starts one per stage).
SDK_WORKER_CACHE_MILLIS = 60_000


def beam_option(text: str) -> str:
    """A Beam pipeline option as Beam parses it: ``KEY=VALUE`` or ``--KEY=VALUE`` -> ``--KEY=VALUE``."""
    option = text.strip()
    if not option.lstrip("-") or option.startswith("-") and not option.startswith("--"):
        raise SettingError(
            f"a Beam option must be KEY=VALUE or --KEY=VALUE (e.g. job_endpoint=HOST:PORT), got {text!r}"
        )
    return option if option.startswith("--") else f"--{option}"


def beam_options(runner: str, options: list[str]) -> list[str]:
    """The pipeline options of a named runner (config.BEAM_RUNNERS; "" for none), then ``options``.

    Beam takes the last value of an option given twice, so the user's options override the
    runner's: ``spark`` with ``--beam-option job_endpoint=HOST:PORT`` is someone else's Spark
    job server, and any runner's options (Dataflow's, say) pass through unchanged.
    """
    options = [beam_option(option) for option in options]
    if runner == "direct":
        return ["--runner=DirectRunner", *options]
    if runner == "spark":
        return [
            "--runner=PortableRunner",
            f"--job_endpoint={config.BEAM_JOB_ENDPOINT.get()}",
            "--environment_type=EXTERNAL",
            f"--environment_config={config.BEAM_WORKER_POOL.get()}",
            # Keep an executor's SDK worker for the job's next stage (each one imports TFDV, seconds of CPU).
            f"--environment_cache_millis={SDK_WORKER_CACHE_MILLIS}",
            *options,
        ]
    if runner == "flink":
        if not any(option.startswith("--job_endpoint=") for option in options):
            raise SettingError(
                "--beam-runner flink needs your Flink job server: add --beam-option job_endpoint=HOST:PORT (no local "
                "Flink cluster here: Maven Central serves no Beam Flink runner or job-server jar, docs/beam.md)"
            )
        return ["--runner=PortableRunner", *options]
    if runner:
        raise SettingError(f"the Beam runner must be one of {', '.join(config.BEAM_RUNNERS)}, got {runner!r}")
    return options


def secret_free(options: list[str]) -> list[str]:
    """``options`` unchanged, or a SettingError naming the first that looks like a credential.

    Beam options travel as pipeline parameters, which KFP and Argo record in the run, show in their
    UIs and print in task logs: a credential there leaks. Credentials reach the runner's workers by
    their own environment (a Kubernetes Secret, a service account), never as an option.
    """
    for option in options:
        key = option.lstrip("-").split("=", 1)[0].lower()
        if any(word in key for word in SECRET_OPTION_WORDS):
            raise SettingError(
                f"the Beam option {key!r} looks like a credential, and Beam options are recorded as the run's "
                "parameters and shown in its logs: give it to the runner's workers through their environment "
                "(a Secret, a service account) instead"
            )
    return options


# Parts of a Beam option's name that mark a credential (e.g. --s3_secret_access_key, --s3_session_token).
SECRET_OPTION_WORDS = ("secret", "password", "passwd", "token", "credential", "access_key", "private_key", "api_key")


def beam_choice(runner: str | None = None, options: str | None = None) -> tuple[str, list[str]]:
    """The Beam runner name and the user's options: the arguments given, else MLOPS_BEAM_RUNNER and
    MLOPS_BEAM_OPTIONS (a blank argument counts as not given: a pipeline parameter's default)."""
    runner = runner or config.BEAM_RUNNER.get()
    if runner and runner not in config.BEAM_RUNNERS:
        raise SettingError(f"the Beam runner must be one of {', '.join(config.BEAM_RUNNERS)}, got {runner!r}")
    return runner, (options or config.BEAM_OPTIONS.get()).split()


def run_tfdv_tool(
    splits: dict[str, str],
    out_dir: str,
    schema_path: str | None = None,
    beam_runner: str | None = None,
    beam_options_text: str | None = None,
) -> dict:
    """Statistics, schema, anomalies and skew of the splits (tfdv_tool.py validate).

    A split past MLOPS_TFDV_BEAM_OVER_ROWS rows (default config.DEFAULT_TFDV_BEAM_OVER_ROWS) gets its
    statistics from TFDV's Beam pipeline over its Parquet file, on Beam's DirectRunner in the tool's
    process unless a runner or options are given (``beam_runner``, ``beam_options_text``: space-separated
    KEY=VALUE, else MLOPS_BEAM_RUNNER, MLOPS_BEAM_OPTIONS); those, with no threshold set, take every split.
    """
    arguments = ["validate"]
    for name, path in splits.items():
        arguments += ["--split", f"{name}={path}"]
    if schema_path:
        arguments += ["--schema", str(schema_path)]
    runner, given = beam_choice(beam_runner, beam_options_text)
    options = beam_options(runner, secret_free(given))
    beam_over = config.TFDV_BEAM_OVER.get()
    if beam_over is None:
        beam_over = 0 if runner or given else config.DEFAULT_TFDV_BEAM_OVER_ROWS
    arguments += ["--beam-over", str(beam_over)]
    arguments += [f"--beam-option={option}" for option in options or ["--runner=DirectRunner"]]
    if runner:
        arguments += ["--beam-runner-label", runner]
    return _run_tool(arguments, out_dir)


def validate_batch(batch_path: str, schema_text: str, label: str, baseline_statistics: bytes, out_dir: str) -> dict:
    """A live batch against a model's schema in the SERVING environment (the label may be absent),
    with TFDV's drift comparators against the model's training statistics (tfdv_tool.py serving).

    Returns the tool's result; anomalies are reported, not raised: the monitor decides what they mean.
    """
    with tempfile.TemporaryDirectory() as scratch:
        schema_path, baseline_path = Path(scratch, "schema.pbtxt"), Path(scratch, "train.pb")
        schema_path.write_text(schema_text, encoding="utf-8")
        baseline_path.write_bytes(baseline_statistics)
        return _run_tool(
            [
                "serving",
                "--batch",
                batch_path,
                "--schema",
                str(schema_path),
                "--label",
                label,
                "--baseline",
                str(baseline_path),
            ],
            out_dir,
        )


def describe_anomalies(anomalies: list[dict], limit: int = 5) -> str:
    """One line listing the anomalies (the rest are in the anomalies artifact)."""
    parts = [f"{row['split']}/{row['feature']}: {row['kind']} ({row['detail']})" for row in anomalies[:limit]]
    more = f"; and {len(anomalies) - limit} more" if len(anomalies) > limit else ""
    return "; ".join(parts) + more


@dataclass
class Validation:
    """The tool's result and the schema it was held to; raise_for_anomalies() stops the run."""

    result: dict
    schema: SchemaChoice
    schema_sha256: str = ""  # of the schema.pbtxt the tool wrote (the one the splits were held to)
    # That schema's kind tags (feature -> kind): what prepare needs of it. Handed on as values, they
    # and the digest keep prepare cacheable although validate, which reads the registry, never is.
    schema_kinds: dict[str, str] = field(default_factory=dict)

    @property
    def anomalies(self) -> list[dict]:
        return self.result["anomalies"]

    def raise_for_anomalies(self) -> None:
        if self.anomalies:
            raise StageError(
                f"data validation against {self.schema.describe()} found {len(self.anomalies)} anomalies: "
                + describe_anomalies(self.anomalies)
                + " (fix the data, or validate against another schema with --schema FILE)"
            )


def validate_splits(
    splits: dict[str, str],
    model_name: str,
    store: ObjectStore,
    out_dir: str,
    schema_uri: str = "",
    beam_runner: str | None = None,
    beam_options_text: str | None = None,
) -> Validation:
    """Validate the splits against the schema that applies.

    Writes statistics/<split>.pb, schema.pbtxt, statistics.html and result.json
    to ``out_dir``. Nothing is written to the store. ``beam_runner`` and
    ``beam_options_text``: see :func:`run_tfdv_tool`.
    """
    choice = choose_schema(model_name, store, schema_uri)
    with tempfile.TemporaryDirectory() as scratch:
        schema_path = None
        if choice.text is not None:
            schema_path = Path(scratch, "schema.pbtxt")
            schema_path.write_text(choice.text, encoding="utf-8")
        result = run_tfdv_tool(
            splits, out_dir, str(schema_path) if schema_path else None, beam_runner, beam_options_text
        )
    from mlops.stages.features import kind_tags

    written = Path(out_dir, "schema.pbtxt")
    data = written.read_bytes() if written.is_file() else b""
    digest = hashlib.sha256(data).hexdigest() if written.is_file() else ""
    validation = Validation(result=result, schema=choice, schema_sha256=digest)
    validation.raise_for_anomalies()
    validation.schema_kinds = kind_tags(data.decode("utf-8"))  # a bad kind tag: one line, before any training
    # Nothing is stored here: an inferred schema becomes the baseline through the version the
    # run registers (baseline/schema.pbtxt), so a run that fails later leaves no trace.
    return validation
