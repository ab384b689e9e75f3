"""The cluster side of the pipeline: Kubernetes task settings, Kubernetes-native
compilation, and the kfp.Client logic behind `mlops submit` and `mlops schedules sync`.

Nothing here talks to a cluster at import time. The client functions take a
`kfp.Client` (or anything with the same methods), so the contract tests can point
them at a local fake of the KFP v2beta1 REST API.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Names shared with manifests/ (tests/cluster checks they agree)
# ---------------------------------------------------------------------------

# Namespace that KFP standalone runs pipelines in (upstream env/platform-agnostic).
KFP_NAMESPACE = "kubeflow"
# Our MinIO lives in its own namespace; its NetworkPolicy admits KFP_NAMESPACE only.
MINIO_NAMESPACE = "mlops-minio"
MINIO_SERVICE = "minio"
MINIO_ENDPOINT = f"http://{MINIO_SERVICE}.{MINIO_NAMESPACE}.svc.cluster.local:9000"
# Bucket for the pipeline's own store (MLOPS_STORE); KFP's artifacts go to "mlpipeline".
STORE_BUCKET = "mlops"
DEFAULT_STORE_URI = f"s3://{STORE_BUCKET}/store"

# The Secret must exist in KFP_NAMESPACE before a run starts: the kind overlay
# generates it (manifests/overlays/kind, secretGenerator) from the git-ignored
# minio.env. KFP's own API server, UI, launcher and Argo read the same Secret
# (upstream name and keys), so the pipeline and KFP share one credential.
MINIO_SECRET_NAME = "mlpipeline-minio-artifact"
MINIO_SECRET_KEY_TO_ENV = {
    "accesskey": "AWS_ACCESS_KEY_ID",
    "secretkey": "AWS_SECRET_ACCESS_KEY",
}

# The non-root user baked into components/Dockerfile.base and Dockerfile.tfdv.
# Where the pipeline's store lives in the cluster (AWS_ENDPOINT_URL, MLOPS_STORE).
# The ConfigMap must exist first in the run namespace:
# manifests/base/kfp/mlops-store-config.yaml creates it.
STORE_CONFIG_MAP_NAME = "mlops-store"
STORE_CONFIG_MAP_KEYS = ("AWS_ENDPOINT_URL", "MLOPS_STORE")

RUN_AS_USER = 10001
RUN_AS_GROUP = 10001

# In-cluster address of the KFP API server (Service ml-pipeline, port 8888).
IN_CLUSTER_HOST = f"http://ml-pipeline.{KFP_NAMESPACE}.svc.cluster.local:8888"
# Projected service-account token with audience pipelines.kubeflow.org; the path
# kfp's ServiceAccountTokenVolumeCredentials reads by default.
SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"

DEFAULT_EXPERIMENT = "mlops"
DEFAULT_PIPELINE_NAME = "training-pipeline"
# Recurring runs we manage carry this marker in their description.
SCHEDULE_MARKER = "mlops-schedule"

_QUANTITY_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_QUANTITY_MEM = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")


# ---------------------------------------------------------------------------
# Task settings (kfp-kubernetes)
# ---------------------------------------------------------------------------


def apply_task_settings(
    task,
    *,
    cpu_request: str = "250m",
    cpu_limit: str = "1",
    memory_request: str = "512Mi",
    memory_limit: str = "2Gi",
):
    """Give one pipeline task what it needs to run on our cluster.

    Adds the MinIO credentials as env vars from the Secret MINIO_SECRET_NAME
    (a reference only: no credential value enters the compiled spec), the MinIO
    endpoint, CPU and memory requests and limits, and a non-root security context.

    Parameters
    ----------
    task : kfp.dsl.PipelineTask
        The task returned by calling a component inside the pipeline function.
    cpu_request, cpu_limit : str
        Kubernetes CPU quantities, e.g. "250m" or "1".
    memory_request, memory_limit : str
        Kubernetes memory quantities, e.g. "512Mi" or "2Gi".

    Returns
    -------
    kfp.dsl.PipelineTask
        The same task, for chaining.

    Examples
    --------
    >>> train = train_op(...)                            # doctest: +SKIP
    >>> apply_task_settings(train, memory_limit="4Gi")   # doctest: +SKIP
    """
    from kfp import kubernetes

    for name, value, pattern in (
        ("cpu_request", cpu_request, _QUANTITY_CPU),
        ("cpu_limit", cpu_limit, _QUANTITY_CPU),
        ("memory_request", memory_request, _QUANTITY_MEM),
        ("memory_limit", memory_limit, _QUANTITY_MEM),
    ):
        if not isinstance(value, str) or not pattern.match(value):
            raise ValueError(
                f"The '{name}' parameter of apply_task_settings must be a Kubernetes "
                f"quantity string such as {'250m' if 'cpu' in name else '512Mi'!r}. "
                f"Got {value!r} instead."
            )
    task.set_cpu_request(cpu_request)
    task.set_cpu_limit(cpu_limit)
    task.set_memory_request(memory_request)
    task.set_memory_limit(memory_limit)
    kubernetes.use_secret_as_env(
        task,
        secret_name=MINIO_SECRET_NAME,
        secret_key_to_env=dict(MINIO_SECRET_KEY_TO_ENV),
    )
    # From a ConfigMap, not task.set_env_variable: kfp.local applies container env
    # to local subprocesses too, and a cluster-internal endpoint would break
    # `mlops run --store s3://...` against a local MinIO.
    kubernetes.use_config_map_as_env(
        task,
        config_map_name=STORE_CONFIG_MAP_NAME,
        config_map_key_to_env={key: key for key in STORE_CONFIG_MAP_KEYS},
    )
    kubernetes.set_security_context(
        task, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_GROUP, run_as_non_root=True
    )
    return task


# ---------------------------------------------------------------------------
# Kubernetes-native compile (Pipeline + PipelineVersion custom resources)
# ---------------------------------------------------------------------------


def compile_kubernetes_native(
    pipeline_func,
    out_dir,
    *,
    pipeline_name: str = DEFAULT_PIPELINE_NAME,
    version_name: str | None = None,
    namespace: str = KFP_NAMESPACE,
) -> Path:
    """Compile `pipeline_func` to Pipeline + PipelineVersion manifests.

    For KFP API servers in Kubernetes-native mode (--pipelines-store=kubernetes),
    where `kubectl apply -f` of these resources publishes the pipeline.

    Returns
    -------
    pathlib.Path
        The written file, ``<out_dir>/<pipeline_name>.k8s.yaml``.
    """
    from kfp import compiler
    from kfp.compiler.compiler_utils import KubernetesManifestOptions

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{pipeline_name}.k8s.yaml"
    options = KubernetesManifestOptions(
        pipeline_name=pipeline_name,
        pipeline_version_name=version_name or pipeline_name,
        namespace=namespace,
        include_pipeline_manifest=True,
    )
    compiler.Compiler().compile(
        pipeline_func,
        str(path),
        kubernetes_manifest_format=True,
        kubernetes_manifest_options=options,
    )
    return path


# ---------------------------------------------------------------------------
# Keys and hashes
# ---------------------------------------------------------------------------


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def spec_digest(package_path) -> str:
    """sha256 of a compiled pipeline file (its bytes, as uploaded)."""
    return hashlib.sha256(Path(package_path).read_bytes()).hexdigest()


def run_key(spec_sha: str, params: Mapping[str, Any], commit: str | None = None) -> str:
    """The idempotency key of one run: spec + parameters (data pointer included,
    it is the `data_uri` parameter) and, when given, the git commit.

    Two submissions with the same key are the same run; the second creates nothing.
    """
    payload = {"spec": spec_sha, "params": dict(params)}
    if commit:
        payload["commit"] = commit
    return hashlib.sha256(_canonical(payload)).hexdigest()[:16]


def version_name_for(spec_sha: str) -> str:
    """Pipeline version name for a spec: the same spec is uploaded once."""
    return f"spec-{spec_sha[:12]}"


# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------

_PARAM_TYPES = {
    "STRING": str, "NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "BOOLEAN": bool,
    "LIST": list, "STRUCT": dict,
}


def packaged_spec() -> Path:
    """The compiled training pipeline shipped with the package (and the image)."""
    return Path(__file__).resolve().parent / "compiled" / "training_pipeline.yaml"


def pipeline_parameters(package_path) -> dict[str, dict]:
    """The root parameters of a compiled spec: name -> {type, optional}."""
    # The first document is the pipeline spec; a second one, if any, the platform spec.
    spec = next(yaml.safe_load_all(Path(package_path).read_text()))
    params = (spec.get("root", {}).get("inputDefinitions", {}) or {}).get("parameters", {}) or {}
    return {name: {"type": p.get("parameterType", "STRING"),
                   "optional": bool(p.get("isOptional")) or "defaultValue" in p}
            for name, p in params.items()}


def _coerce(name: str, value: Any, kind: str) -> Any:
    want = _PARAM_TYPES.get(kind, str)
    if want is str:
        return value if isinstance(value, str) else json.dumps(value) if isinstance(
            value, (dict, list)) else str(value)
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ValueError(f"parameter {name!r}: cannot read {value!r}: {err}") from None
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise ValueError(f"The parameter {name!r} must be {kind.lower()}. Got {value!r} instead.")
    return value


def coerce_params(package_path, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check `raw` against the spec's parameters and convert each to its declared type.

    Unknown names and missing required parameters raise ValueError naming them.
    """
    declared = pipeline_parameters(package_path)
    unknown = sorted(set(raw) - set(declared))
    if unknown:
        raise ValueError(f"unknown pipeline parameter(s) {unknown}; the pipeline takes "
                         f"{sorted(declared)}.")
    missing = sorted(n for n, p in declared.items() if not p["optional"] and n not in raw)
    if missing:
        raise ValueError(f"missing required pipeline parameter(s) {missing}.")
    return {n: _coerce(n, v, declared[n]["type"]) for n, v in raw.items()}


# ---------------------------------------------------------------------------
# Client helpers
# ---------------------------------------------------------------------------


def make_client(host: str | None = None, *, token_path: str | None = None):
    """A kfp.Client for `host`, or for the in-cluster API server when host is None.

    Inside a pod with a projected token (SA_TOKEN_PATH, audience
    pipelines.kubeflow.org) the token is sent as a bearer credential; standalone
    KFP ignores it and multi-user KFP requires it.
    """
    import kfp
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    token_path = token_path or os.environ.get("KF_PIPELINES_SA_TOKEN_PATH", SA_TOKEN_PATH)
    credentials = None
    if Path(token_path).is_file():
        credentials = ServiceAccountTokenVolumeCredentials(path=token_path)
    return kfp.Client(host=host or IN_CLUSTER_HOST, credentials=credentials)


def _eq_filter(key: str, value: str) -> str:
    return json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": key, "string_value": value}]}
    )


def _paged(list_call: Callable[..., Any], attr: str, **kwargs) -> Iterable[Any]:
    token = ""
    while True:
        resp = list_call(page_token=token, page_size=100, **kwargs)
        yield from getattr(resp, attr, None) or []
        token = getattr(resp, "next_page_token", None) or ""
        if not token:
            return


def ensure_experiment(client, name: str = DEFAULT_EXPERIMENT) -> str:
    """Experiment id for `name`, created when missing."""
    return client.create_experiment(name=name).experiment_id


def ensure_pipeline_version(
    client, package_path, pipeline_name: str = DEFAULT_PIPELINE_NAME
) -> tuple[str, str]:
    """(pipeline_id, version_id) for this compiled spec, uploading only what is missing.

    The version name is derived from the spec's sha256, so re-running this with the
    same file never uploads a second copy.
    """
    package_path = str(package_path)
    version_name = version_name_for(spec_digest(package_path))
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(
            package_path, pipeline_name=pipeline_name,
            description="Uploaded by mlops submit / mlops schedules sync.",
        )
        pipeline_id = pipeline.pipeline_id
    for version in _paged(
        client.list_pipeline_versions, "pipeline_versions",
        pipeline_id=pipeline_id, filter=_eq_filter("display_name", version_name),
    ):
        if version.display_name == version_name:
            return pipeline_id, version.pipeline_version_id
    version = client.upload_pipeline_version(
        package_path, pipeline_version_name=version_name, pipeline_id=pipeline_id
    )
    return pipeline_id, version.pipeline_version_id


# ---------------------------------------------------------------------------
# Submit
# ---------------------------------------------------------------------------


def describe_error(err: BaseException) -> str:
    """One line for a failed call: the API's own message when it sent one."""
    body = getattr(err, "body", None)
    if body:
        try:
            body = json.loads(body).get("error") or json.loads(body).get("message") or body
        except (ValueError, AttributeError):
            pass
        return f"{type(err).__name__} {getattr(err, 'status', '')}: {str(body).splitlines()[0]}"
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}"


@dataclasses.dataclass
class SubmitResult:
    run_id: str
    display_name: str
    created: bool
    url: str
    state: str | None = None


def run_display_name(pipeline_name: str, key: str) -> str:
    return f"{pipeline_name}-{key}"


def find_run(client, experiment_id: str, display_name: str):
    """The existing run with exactly this display name in the experiment, or None."""
    for run in _paged(
        client.list_runs, "runs",
        experiment_id=experiment_id, filter=_eq_filter("display_name", display_name),
    ):
        if run.display_name == display_name:
            return run
    return None


def submit(
    client,
    package_path,
    params: Mapping[str, Any],
    *,
    pipeline_name: str = DEFAULT_PIPELINE_NAME,
    experiment: str = DEFAULT_EXPERIMENT,
    key: str | None = None,
    commit: str | None = None,
    ui_host: str | None = None,
    wait: bool = False,
    timeout: int = 3600,
    service_account: str | None = None,
) -> SubmitResult:
    """Create one run of the compiled pipeline, idempotently.

    The run's display name carries the idempotency key (`run_key`, or `key` when
    given); if a run with that name already exists in the experiment, it is
    returned and nothing is created, so a GitOps re-sync or a retried Job never
    starts a duplicate.
    """
    key = key or run_key(spec_digest(package_path), params, commit)
    name = run_display_name(pipeline_name, key)
    experiment_id = ensure_experiment(client, experiment)
    existing = find_run(client, experiment_id, name)
    if existing is not None:
        run_id, created = existing.run_id, False
        log.info("run %s already exists for key %s: not creating another", run_id, key)
    else:
        pipeline_id, version_id = ensure_pipeline_version(client, package_path, pipeline_name)
        run = client.run_pipeline(
            experiment_id=experiment_id, job_name=name, params=dict(params),
            pipeline_id=pipeline_id, version_id=version_id,
            service_account=service_account,
        )
        run_id, created = run.run_id, True
    state = None
    if wait:
        state = client.wait_for_run_completion(run_id, timeout=timeout).state
    base = (ui_host or client._get_url_prefix() or "").rstrip("/")
    return SubmitResult(run_id, name, created, f"{base}/#/runs/details/{run_id}", state)


# ---------------------------------------------------------------------------
# Schedules declared in git → KFP recurring runs
# ---------------------------------------------------------------------------

_SCHEDULE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SCHEDULE_FIELDS = {"name", "cron", "params", "pipeline_version", "max_concurrency",
                    "enabled", "experiment", "no_catchup"}


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One cron schedule as declared in schedules/*.yaml."""

    name: str
    cron: str
    params: Mapping[str, Any]
    pipeline_version: str | None = None  # a version name; None = the packaged spec
    max_concurrency: int = 1
    enabled: bool = True
    no_catchup: bool = True

    def fingerprint(self, version_id: str) -> str:
        """Everything a recurring run cannot change in place, hashed."""
        return hashlib.sha256(_canonical({
            "cron": self.cron, "params": dict(self.params), "version_id": version_id,
            "max_concurrency": self.max_concurrency, "no_catchup": self.no_catchup,
        })).hexdigest()[:12]


def parse_schedule(doc: Mapping[str, Any], source: str = "<schedule>") -> Schedule:
    """Validate one schedule document; errors name the file, the field and the rule."""
    if not isinstance(doc, Mapping):
        raise ValueError(f"{source}: a schedule must be a mapping. Got {type(doc).__name__}.")
    unknown = set(doc) - _SCHEDULE_FIELDS
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {sorted(unknown)}; "
                         f"allowed: {sorted(_SCHEDULE_FIELDS)}.")
    name = doc.get("name")
    if not isinstance(name, str) or not _SCHEDULE_NAME.match(name):
        raise ValueError(f"{source}: 'name' must be a DNS label (lowercase letters, digits, "
                         f"'-'). Got {name!r} instead.")
    cron = doc.get("cron")
    if not isinstance(cron, str) or len(cron.split()) != 6:
        raise ValueError(
            f"{source}: 'cron' must have 6 fields, seconds first (KFP uses robfig/cron), "
            f"e.g. '0 0 3 * * *'. Got {cron!r} instead.")
    params = doc.get("params") or {}
    if not isinstance(params, Mapping):
        raise ValueError(f"{source}: 'params' must be a mapping. Got {params!r} instead.")
    max_c = doc.get("max_concurrency", 1)
    if not isinstance(max_c, int) or isinstance(max_c, bool) or not 1 <= max_c <= 10:
        raise ValueError(f"{source}: 'max_concurrency' must be an integer in [1, 10]. "
                         f"Got {max_c!r} instead.")
    for flag in ("enabled", "no_catchup"):
        if not isinstance(doc.get(flag, True), bool):
            raise ValueError(f"{source}: '{flag}' must be true or false. Got {doc[flag]!r}.")
    version = doc.get("pipeline_version")
    if version is not None and not isinstance(version, str):
        raise ValueError(f"{source}: 'pipeline_version' must be a version name. Got {version!r}.")
    return Schedule(name=name, cron=cron, params=dict(params), pipeline_version=version,
                    max_concurrency=max_c, enabled=doc.get("enabled", True),
                    no_catchup=doc.get("no_catchup", True))


def load_schedules(directory) -> list[Schedule]:
    """All schedules in `directory`/*.yaml (one document per file); names must be unique.

    kustomization.yaml (which packs the files into a ConfigMap) is not a schedule.
    """
    schedules: list[Schedule] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        schedules.append(parse_schedule(yaml.safe_load(path.read_text()), str(path)))
    names = [s.name for s in schedules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{directory}: schedule names must be unique; repeated: {dupes}.")
    return schedules


def _description(name: str, fp: str) -> str:
    return f"{SCHEDULE_MARKER}={name};fingerprint={fp}"


def _parse_description(text: str | None) -> tuple[str, str] | None:
    m = re.fullmatch(rf"{SCHEDULE_MARKER}=([-a-z0-9]+);fingerprint=([0-9a-f]+)", text or "")
    return (m.group(1), m.group(2)) if m else None


def _is_enabled(rr) -> bool:
    return str(getattr(rr, "mode", "") or "").upper() == "ENABLE"


@dataclasses.dataclass
class SyncReport:
    created: list[str] = dataclasses.field(default_factory=list)
    replaced: list[str] = dataclasses.field(default_factory=list)
    enabled: list[str] = dataclasses.field(default_factory=list)
    disabled: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.replaced or self.enabled or self.disabled)


def _resolve_version(client, schedule: Schedule, pipeline_id: str, default_version: str) -> str:
    if schedule.pipeline_version is None:
        return default_version
    for version in _paged(
        client.list_pipeline_versions, "pipeline_versions", pipeline_id=pipeline_id,
        filter=_eq_filter("display_name", schedule.pipeline_version),
    ):
        if version.display_name == schedule.pipeline_version:
            return version.pipeline_version_id
    raise ValueError(f"schedule {schedule.name!r}: pipeline version "
                     f"{schedule.pipeline_version!r} does not exist in KFP.")


def sync_schedules(
    client,
    schedules: list[Schedule],
    package_path,
    *,
    pipeline_name: str = DEFAULT_PIPELINE_NAME,
    experiment: str = DEFAULT_EXPERIMENT,
    dry_run: bool = False,
) -> SyncReport:
    """Reconcile KFP recurring runs with the schedules declared in git.

    Recurring runs we manage carry `mlops-schedule=<name>;fingerprint=<hash>` in
    their description. KFP cannot edit a recurring run in place, so a changed
    schedule (cron, params, pipeline version, concurrency) is replaced: the new
    one is created first, then the old one is disabled and deleted. A schedule
    removed from git is disabled (kept for its history), never deleted.
    Unmanaged recurring runs are left alone. Running it twice changes nothing.
    """
    report = SyncReport()
    experiment_id = ensure_experiment(client, experiment)
    pipeline_id, default_version = ensure_pipeline_version(client, package_path, pipeline_name)

    existing: dict[str, list[tuple[str, Any]]] = {}
    for rr in _paged(client.list_recurring_runs, "recurring_runs", experiment_id=experiment_id):
        parsed = _parse_description(rr.description)
        if parsed:
            existing.setdefault(parsed[0], []).append((parsed[1], rr))

    def act(action: Callable[[], Any]) -> None:
        if not dry_run:
            action()

    for sched in schedules:
        version_id = _resolve_version(client, sched, pipeline_id, default_version)
        fp = sched.fingerprint(version_id)
        current = existing.pop(sched.name, [])
        same = [rr for f, rr in current if f == fp]
        stale = [rr for f, rr in current if f != fp]
        keep = same[0] if same else None
        # duplicates of the same fingerprint (e.g. two concurrent syncs): keep one
        stale += same[1:]
        if keep is None:
            act(lambda s=sched, v=version_id, f=fp: client.create_recurring_run(
                experiment_id=experiment_id, job_name=s.name,
                description=_description(s.name, f), cron_expression=s.cron,
                max_concurrency=s.max_concurrency, no_catchup=s.no_catchup,
                params=dict(s.params), pipeline_id=pipeline_id, version_id=v,
                enabled=s.enabled))
            (report.replaced if current else report.created).append(sched.name)
        elif _is_enabled(keep) != sched.enabled:
            if sched.enabled:
                act(lambda r=keep: client.enable_recurring_run(r.recurring_run_id))
                report.enabled.append(sched.name)
            else:
                act(lambda r=keep: client.disable_recurring_run(r.recurring_run_id))
                report.disabled.append(sched.name)
        else:
            report.unchanged.append(sched.name)
        for rr in stale:
            act(lambda r=rr: client.disable_recurring_run(r.recurring_run_id))
            act(lambda r=rr: client.delete_recurring_run(r.recurring_run_id))

    # declared nowhere any more: disable, keep for history
    for name, items in sorted(existing.items()):
        live = [rr for _, rr in items if _is_enabled(rr)]
        for rr in live:
            act(lambda r=rr: client.disable_recurring_run(r.recurring_run_id))
        if live:
            report.disabled.append(name)
    return report
