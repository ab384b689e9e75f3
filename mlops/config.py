"""Every setting of the project, defined once: pipeline names and defaults, image
references, the names the cluster manifests share, and the ``MLOPS_*`` environment.

Only the standard library is imported, so the Makefile (through
scripts/images.py), the stages, the CLI and the tests all read the same values.
Environment settings are read when asked for, never at import time, and a value
that cannot be used is a one-line :class:`SettingError` naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlops.errors import SettingError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The pipeline definitions' files: the compiled specs and the default search space
# (package data of `pipelines`, so the same paths hold in site-packages of an image).
COMPILED_DIR = PROJECT_ROOT / "pipelines" / "compiled"
DEFAULT_PARAMS_FILE = PROJECT_ROOT / "pipelines" / "params" / "default.yaml"

# -- The pipelines -------------------------------------------------------------

PIPELINE_NAME = "training-pipeline"
MONITOR_PIPELINE_NAME = "monitor-pipeline"
DEFAULT_TASK = "auto"
DEFAULT_SEED = 42
DEFAULT_VALIDATION_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
# Every split needs this many rows, or the metrics on it mean nothing.
MIN_ROWS_PER_SPLIT = 5
# The split stage streams a data version: it reads this many rows at a time and buffers each split's rows
# until a Parquet row group is full, at pyarrow's default row group length (1,048,576 rows: files as
# pyarrow.parquet.write_table writes them) or at this many bytes of Arrow data, whichever comes first.
# The cap bounds the three buffers (for a 20-column table, about 800k rows a group; a 1M-row table's
# splits fit in one group each, as before streaming) and gives TFDV's Beam pipeline, which reads a row
# group at a time, groups of a bounded size.
SPLIT_BATCH_ROWS = 131_072
SPLIT_ROW_GROUP_ROWS = 1024 * 1024
SPLIT_ROW_GROUP_BYTES = 128 * 1024 * 1024
# The blessing gate: a model must close at least this share of the gap between a
# trivial predictor (most frequent class / the mean) and a perfect score on the
# test split (see mlops/stages/evaluate.py), and not be worse than the champion.
DEFAULT_MIN_SKILL = 0.1
# At most this many candidates train at once on a cluster (ParallelFor parallelism).
MAX_PARALLEL_CANDIDATES = 4
# The memory (MB of 2**20 bytes) a candidate's training may take, counted as
# mlops.stages.train.training_bytes_per_row says (the rows, their model matrix and its working copy;
# measured peaks stay within it): all rows within it, else a seed-keyed sample of as many as fit
# (recorded in the lineage), on which prepare fits the transform too. A candidate's process peaks at
# about this plus 0.3 GB; kfp.local runs two candidates at once, a cluster MAX_PARALLEL_CANDIDATES
# pods of a 2Gi limit each. 1,024 keeps a 1M-row x 20-column table whole (its 700k training rows
# count as about 540 MB); at 10M rows 1.33M are sampled.
DEFAULT_TRAIN_MEMORY_BUDGET_MB = 1024
# Local source files larger than this are ingested in record batches through an external sort on
# disk (mlops.data.content_stream): the same data version id, in bounded memory. Smaller ones are
# read whole, which is faster (a 1M-row x 20-column CSV is about 150 MB: read whole).
DEFAULT_INGEST_STREAM_OVER_MB = 256
# Rows past which a split's TFDV statistics come from TFDV's Beam pipeline over its Parquet file, on
# Beam's DirectRunner in the TFDV process unless a runner is named (docs/beam.md). In memory TFDV holds
# the whole split as pandas (measured peak PSS of the tool, 20 columns: 2.3-2.6 GB at 3M rows, 4.5 GB
# at 7M); the Beam pipeline reads it a Parquet row group at a time (1.3 GB at 3M, 1.35 GB at 7M).
DEFAULT_TFDV_BEAM_OVER_ROWS = 1_000_000
CHAMPION_ALIAS = "champion"

# -- Images (images/Dockerfile.*; `make images` tags them, the spec names them) --

IMAGE_VERSION = "0.1.0"
REGISTRY = "localhost:5001"
# Most stages: Python 3.11 + requirements/main.lock + this package.
BASE_IMAGE = f"{REGISTRY}/mlops-base:{IMAGE_VERSION}"
# The validate stage: BASE_IMAGE plus the pinned TFDV interpreter (requirements/tfdv.lock).
TFDV_IMAGE = f"{REGISTRY}/mlops-tfdv:{IMAGE_VERSION}"
# MinIO built from source (no community images are published since 2025-10).
MINIO_IMAGE = f"{REGISTRY}/mlops-minio:{IMAGE_VERSION}"
# The GitOps path's in-cluster Git server and the submit Job's commit finder.
GIT_IMAGE = f"{REGISTRY}/mlops-git:{IMAGE_VERSION}"

# -- Names shared with manifests/ (tests/cluster checks that they agree) ---------

# Namespace that KFP standalone runs pipelines in (upstream env/platform-agnostic).
KFP_NAMESPACE = "kubeflow"
# Our MinIO lives in its own namespace; its NetworkPolicy admits KFP_NAMESPACE only.
MINIO_NAMESPACE = "mlops-minio"
MINIO_SERVICE = "minio"
MINIO_ENDPOINT = f"http://{MINIO_SERVICE}.{MINIO_NAMESPACE}.svc.cluster.local:9000"
# The pipeline's own store (MLOPS_STORE); KFP's artifacts go to the bucket "mlpipeline".
STORE_BUCKET = "mlops"
CLUSTER_STORE_URI = f"s3://{STORE_BUCKET}/store"
# KFP's artifact Secret (upstream name and keys; the artifacts role), generated by the kind overlay.
MINIO_SECRET_NAME = "mlpipeline-minio-artifact"
MINIO_SECRET_KEY_TO_ENV = {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}
# The Secret of each store role a task can have (mlops/store/roles.py): a task
# mounts only its own. (The reader role has none in the cluster: only the host CLI reads.)
ROLE_SECRET_NAMES = {"pipeline": "mlops-role-pipeline", "registry": "mlops-role-registry"}
# The optional Secret with a data URI that carries a credential (key "uri"), read by ingest only.
DATA_SOURCE_SECRET_NAME = "mlops-data-source"
# The optional Secret with the notify settings (mlops/reporting/notify.py), read by the Workflow's exit handler only.
NOTIFY_SECRET_NAME = "mlops-notify"
NOTIFY_SECRET_KEY = "notify.yaml"
# Where pipeline steps find the store and which sources they may read; manifests/base/kfp/mlops-store-config.yaml.
STORE_CONFIG_MAP_NAME = "mlops-store"
STORE_CONFIG_MAP_KEYS = ("AWS_ENDPOINT_URL", "MLOPS_STORE", "MLOPS_INGEST_ALLOW")
# The non-root user of images/Dockerfile.base and Dockerfile.tfdv.
RUN_AS_USER = 10001
RUN_AS_GROUP = 10001
# Argo Workflows on kind (manifests/base/argo): the controller's namespace, the namespace
# where Workflows run (Pod Security "restricted"), and the ServiceAccount of their pods
# (it may only create and patch WorkflowTaskResults).
ARGO_CONTROLLER_NAMESPACE = "argo"
ARGO_NAMESPACE = "mlops-runs"
ARGO_WORKFLOW_SERVICE_ACCOUNT = "mlops-workflow"
# In-cluster address of the KFP API server and the projected token kfp reads.
KFP_IN_CLUSTER_HOST = f"http://ml-pipeline.{KFP_NAMESPACE}.svc.cluster.local:8888"
KFP_SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
KFP_EXPERIMENT = "mlops"


# -- The environment -------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One ``MLOPS_*`` (or related) environment variable: its type, default and meaning."""

    name: str
    kind: type
    default: object
    help: str
    minimum: float | None = None
    choices: tuple[str, ...] = ()

    def get(self):
        """The variable's value converted to ``kind``, or the default when unset or empty."""
        raw = os.environ.get(self.name, "").strip()
        if not raw:
            return self.default
        if self.kind is str:
            if self.choices and raw not in self.choices:
                raise SettingError(f"{self.name} must be one of {', '.join(self.choices)}, got {raw!r}")
            return raw
        if self.kind is Path:
            return Path(raw)
        try:
            value = self.kind(raw)
        except ValueError:
            article = "an integer" if self.kind is int else "a number"
            raise SettingError(f"{self.name} must be {article}, got {raw!r}") from None
        if self.minimum is not None and value < self.minimum:
            raise SettingError(f"{self.name} must be at least {self.minimum:g}, got {raw!r}")
        return value


STORE = Setting("MLOPS_STORE", str, "", "store URI: file:///abs/path or s3://BUCKET/PREFIX (default ./.mlops)")
STORE_RETRIES = Setting("MLOPS_STORE_RETRIES", int, 5, "S3 retries with backoff before a store call fails", 0)
RUNS_DIR = Setting("MLOPS_RUNS_DIR", Path, None, "where `mlops run` writes run outputs and reports (default ./runs)")
SCHEMA_DIR = Setting("MLOPS_SCHEMA_DIR", Path, PROJECT_ROOT / "schemas", "curated TFDV schemas, <model>.pbtxt")
TFDV_PYTHON = Setting(
    "MLOPS_TFDV_PYTHON",
    Path,
    PROJECT_ROOT / ".venv-tfdv" / "bin" / "python",
    "the interpreter that has TFDV (its own pinned environment)",
)
TFDV_TOOL = Setting(
    "MLOPS_TFDV_TOOL",
    Path,
    PROJECT_ROOT / "tools" / "tfdv_tool.py",
    "the TFDV tool script (tools/tfdv_tool.py), run by the TFDV interpreter",
)
TFDV_TIMEOUT_SECONDS = Setting(
    "MLOPS_TFDV_TIMEOUT_SECONDS", float, 1800.0, "seconds TFDV may take before the validate stage gives up", 1
)
TFDV_SOCKET = Setting(
    "MLOPS_TFDV_SOCKET",
    Path,
    None,
    "(set by the local runner) the warm TFDV sidecar's socket; without it TFDV starts per task",
)
TASK_SERVER = Setting(
    "MLOPS_TASK_SERVER",
    str,
    "",
    "(set by the local runner) the warm task server's socket (mlops/runners/task_server.py); "
    "without it each task imports its libraries itself",
)
TFDV_BEAM_OVER = Setting(
    "MLOPS_TFDV_BEAM_OVER_ROWS",
    int,
    None,
    "splits with more rows get their statistics from TFDV's Beam pipeline over the Parquet file (default "
    f"{DEFAULT_TFDV_BEAM_OVER_ROWS:,}, on Beam's DirectRunner; with a Beam runner or options given: 0, every split)",
    0,
)
BEAM_OPTIONS = Setting(
    "MLOPS_BEAM_OPTIONS",
    str,
    "",
    "Beam pipeline options for those statistics, e.g. '--runner=DirectRunner "
    "--direct_num_workers=2' (a distributed runner can take over)",
)
INGEST_STREAM_OVER_MB = Setting(
    "MLOPS_INGEST_STREAM_OVER_MB",
    float,
    DEFAULT_INGEST_STREAM_OVER_MB,
    "local source files larger than this many MB are ingested in record batches (bounded memory, "
    "about twice the table's size of temporary disk in TMPDIR); smaller ones are read whole",
    0,
)
TRAIN_MEMORY_BUDGET_MB = Setting(
    "MLOPS_TRAIN_MEMORY_BUDGET_MB",
    int,
    DEFAULT_TRAIN_MEMORY_BUDGET_MB,
    "MB a candidate's training may take: its rows, their model matrix and its working copy (`mlops run` "
    "passes it as the pipeline parameter train_memory_budget_mb); past it, prepare and training use a "
    "deterministic sample of the training split",
    1,
)
# The Beam runner of those statistics (`mlops run --beam-runner`, docs/beam.md): each name stands for the
# pipeline options below, which the user's own (MLOPS_BEAM_OPTIONS, --beam-option) follow and may override.
BEAM_RUNNERS = ("direct", "spark", "flink")
BEAM_RUNNER = Setting(
    "MLOPS_BEAM_RUNNER",
    str,
    "",
    "direct, spark (the local cluster of `make beam-cluster-up`, or the job server below) or flink (your own job "
    "server: --beam-option job_endpoint=HOST:PORT); with no MLOPS_TFDV_BEAM_OVER_ROWS every split goes through it",
    choices=BEAM_RUNNERS,
)
BEAM_JOB_ENDPOINT = Setting(
    "MLOPS_BEAM_JOB_ENDPOINT", str, "localhost:8099", "the Beam job server `--beam-runner spark` submits to"
)
BEAM_WORKER_POOL = Setting(
    "MLOPS_BEAM_WORKER_POOL",
    str,
    "localhost:50000",
    "the Python SDK worker pool (TFDV's interpreter) the Spark executors start their workers from",
)
SPARK_MASTER_PORT = Setting(
    "MLOPS_SPARK_MASTER_PORT", int, 7077, "port of the Spark master of `make beam-cluster-up`", 1
)
BEAM_STATE_DIR = Setting(
    "MLOPS_BEAM_STATE_DIR", Path, PROJECT_ROOT / ".beam", "pid files, logs and env file of `make beam-cluster-up`"
)
BEAM_CACHE_DIR = Setting(
    "MLOPS_BEAM_CACHE_DIR",
    Path,
    None,
    "where `make beam-runtime` keeps Spark and the job server's jars, keyed by their inputs "
    "(default ~/.cache/kfp-mlops/beam)",
)
BEAM_START_TIMEOUT_SECONDS = Setting(
    "MLOPS_BEAM_START_TIMEOUT_SECONDS",
    float,
    120.0,
    "seconds each process of `make beam-cluster-up` may take to answer before it gives up",
    1,
)
LOCK_DIR = Setting("MLOPS_LOCK_DIR", Path, PROJECT_ROOT / "requirements", "the lock files recorded in lineage")
CODE_VERSION = Setting("MLOPS_CODE_VERSION", str, "unknown", "the git commit an image was built from")
PROGRESS_FILE = Setting("MLOPS_PROGRESS_FILE", Path, None, "(set by the local runner) stages append progress here")
ERROR_FILE = Setting("MLOPS_ERROR_FILE", Path, None, "(set by the local runner) a failing stage writes its reason here")
HTTP_TIMEOUT_SECONDS = Setting(
    "MLOPS_HTTP_TIMEOUT_SECONDS", float, 60.0, "overall deadline of an http(s) download by ingest", 1
)
MAX_DOWNLOAD_BYTES = Setting(
    "MLOPS_MAX_DOWNLOAD_BYTES",
    int,
    256 * 1024**2,
    "largest source ingest downloads (well under a task's 2Gi memory limit)",
    1,
)
MAX_CANDIDATES = Setting(
    "MLOPS_MAX_CANDIDATES",
    int,
    64,
    "most candidates a search space may expand to (counted before any is built; each is a training task)",
    1,
)
INGEST_ALLOW = Setting(
    "MLOPS_INGEST_ALLOW",
    str,
    "",
    "sources ingest may read (mlops/data/source_policy.py); empty: anything (local default)",
)
MINIO_BIN = Setting("MLOPS_MINIO_BIN", Path, PROJECT_ROOT / "bin" / "minio", "the MinIO server binary")
MINIO_PORT = Setting("MLOPS_MINIO_PORT", int, 9000, "port of `make minio-up`", 1)
MINIO_STATE_DIR = Setting(
    "MLOPS_MINIO_STATE_DIR", Path, PROJECT_ROOT / ".minio", "credentials, data and pid of `make minio-up`"
)
TFDV_SIDECAR = Setting(
    "MLOPS_TFDV_SIDECAR",
    str,
    "",
    "off: no warm TFDV interpreter beside a local run (each validate task starts its own)",
)
DATA_URI = Setting(
    "MLOPS_DATA_URI",
    str,
    "",
    "(set by the CLI; on a cluster from the Secret mlops-data-source) the full data URI whose "
    "credential the pipeline parameter must not carry (mlops/data/uris.py)",
)
S3_ENDPOINT = Setting("MLOPS_S3_ENDPOINT", str, "", "the S3 endpoint when AWS_ENDPOINT_URL is unset")
GIT_COMMIT = Setting("MLOPS_GIT_COMMIT", str, None, "the git commit `mlops submit` keys a run on (one run per commit)")
ACTOR = Setting(
    "MLOPS_ACTOR", str, "", "who moves a model alias, recorded in the alias's history (default: the OS user)"
)
NOTIFY_FILE = Setting(
    "MLOPS_NOTIFY_FILE",
    Path,
    None,
    "the notify settings (a YAML file with a `notify:` section, mlops/reporting/notify.py) of `mlops run` and "
    "`mlops monitor` when --notify is not given",
)
NOTIFY = Setting(
    "MLOPS_NOTIFY",
    str,
    "",
    f"(on a cluster from the Secret {NOTIFY_SECRET_NAME}, key {NOTIFY_SECRET_KEY}) the notify settings' text, "
    "read by the Workflow's exit handler",
)
NOTIFY_TIMEOUT_SECONDS = Setting(
    "MLOPS_NOTIFY_TIMEOUT_SECONDS", float, 5.0, "seconds a webhook has to answer one notification attempt", 0.1
)
NOTIFY_RETRIES = Setting(
    "MLOPS_NOTIFY_RETRIES", int, 2, "retries of a notification (connection error, timeout, 429, 5xx) before it warns", 0
)
NOTIFY_BACKOFF_SECONDS = Setting(
    "MLOPS_NOTIFY_BACKOFF_SECONDS", float, 1.0, "wait before the first notification retry; doubled for each next", 0
)

SETTINGS = (
    STORE,
    STORE_RETRIES,
    RUNS_DIR,
    SCHEMA_DIR,
    TFDV_PYTHON,
    TFDV_TOOL,
    TFDV_TIMEOUT_SECONDS,
    TFDV_SOCKET,
    TASK_SERVER,
    TFDV_BEAM_OVER,
    BEAM_OPTIONS,
    INGEST_STREAM_OVER_MB,
    TRAIN_MEMORY_BUDGET_MB,
    LOCK_DIR,
    CODE_VERSION,
    PROGRESS_FILE,
    ERROR_FILE,
    HTTP_TIMEOUT_SECONDS,
    MAX_DOWNLOAD_BYTES,
    MAX_CANDIDATES,
    INGEST_ALLOW,
    MINIO_BIN,
    MINIO_PORT,
    MINIO_STATE_DIR,
    TFDV_SIDECAR,
    DATA_URI,
    S3_ENDPOINT,
    GIT_COMMIT,
    ACTOR,
    NOTIFY_FILE,
    NOTIFY,
    NOTIFY_TIMEOUT_SECONDS,
    NOTIFY_RETRIES,
    NOTIFY_BACKOFF_SECONDS,
)


def role_credential_names(role: str) -> tuple[str, str]:
    """The variables that hold a store role's credential: ``MLOPS_<ROLE>_ACCESS_KEY_ID`` and its secret key."""
    return f"MLOPS_{role.upper()}_ACCESS_KEY_ID", f"MLOPS_{role.upper()}_SECRET_ACCESS_KEY"


# Words in a variable's name that say its value is a credential (AWS_SECRET_ACCESS_KEY,
# MLOPS_PIPELINE_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, a password).
_SECRET_NAME_WORDS = ("SECRET", "TOKEN", "PASSWORD", "ACCESS_KEY")


def secret_values() -> list[str]:
    """The values of the variables that carry a credential: any whose name says so, the full data URI
    (MLOPS_DATA_URI) and the notify settings' text (MLOPS_NOTIFY, webhook URLs). A diagnostic that
    prints text from elsewhere is scrubbed of each (mlops.cli.options.scrub)."""
    named = [value for name, value in os.environ.items() if any(word in name.upper() for word in _SECRET_NAME_WORDS)]
    values = named + [DATA_URI.get() or "", NOTIFY.get() or ""]
    return sorted({value for value in values if len(value) >= 4}, key=len, reverse=True)


def default_store_uri() -> str:
    """MLOPS_STORE, else ./.mlops under the current directory, as a URI."""
    return STORE.get() or (Path.cwd() / ".mlops").resolve().as_uri()


def actor() -> str:
    """MLOPS_ACTOR, else the OS user (the name a registry records beside each alias move)."""
    import getpass

    if ACTOR.get():
        return ACTOR.get()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (an arbitrary uid in a container)
        return f"uid {os.getuid()}"


def beam_cache_dir() -> Path:
    """MLOPS_BEAM_CACHE_DIR, else kfp-mlops/beam under XDG_CACHE_HOME or ~/.cache."""
    return (
        BEAM_CACHE_DIR.get() or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kfp-mlops" / "beam"
    )


def runs_dir() -> Path:
    """MLOPS_RUNS_DIR, else ./runs under the current directory."""
    return (RUNS_DIR.get() or Path.cwd() / "runs").resolve()
