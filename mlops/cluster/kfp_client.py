"""Talking to a Kubeflow Pipelines API server: the logic behind `mlops submit`.

Nothing here talks to a cluster at import time. The functions take a
`kfp.Client` (or anything with the same methods), so the contract tests can
point them at a local fake of the KFP v2beta1 REST API.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from mlops import config
from mlops.errors import MlopsError

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = config.KFP_EXPERIMENT
DEFAULT_PIPELINE_NAME = config.PIPELINE_NAME


# -- Keys and hashes -------------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """``obj`` as JSON with sorted keys and no spaces: equal values give equal bytes (for hashing)."""
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
    return hashlib.sha256(canonical_json(payload)).hexdigest()[:16]


def version_name_for(spec_sha: str) -> str:
    """Pipeline version name for a spec: the same spec is uploaded once."""
    return f"spec-{spec_sha[:12]}"


# -- Parameters ------------------------------------------------------------------

# KFP's own input types (kfp.dsl.structures.InputSpec.type) -> Python types.
_PARAM_TYPES = {"String": str, "Integer": int, "Float": float, "Boolean": bool, "List": list, "Dict": dict}


class ClusterError(MlopsError):
    """The KFP API could not do what was asked (unreachable, refused, timed out)."""


class ParameterError(MlopsError):
    """A pipeline parameter that the compiled pipeline does not take, or of the wrong type."""


def packaged_spec(file_name: str = "training_pipeline.yaml") -> Path:
    """A compiled pipeline shipped with the package (and the image)."""
    return config.COMPILED_DIR / file_name


def pipeline_parameters(package_path) -> dict[str, dict]:
    """The root parameters of a compiled spec, read by kfp itself: name -> {type, optional}."""
    from kfp import components

    try:
        spec = components.load_component_from_file(str(package_path)).component_spec
    except Exception as error:  # noqa: BLE001 - kfp raises several types for a bad file
        raise ParameterError(f"{package_path} is not a compiled pipeline kfp can read: {error}") from None
    return {
        name: {"type": str(spec.type), "optional": bool(spec.optional) or spec.default is not None}
        for name, spec in (spec.inputs or {}).items()
    }


def _coerce(name: str, value: Any, kind: str) -> Any:
    want = _PARAM_TYPES.get(kind, str)
    if want is str:
        return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ParameterError(f"parameter {name!r}: cannot read {value!r}: {err}") from None
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise ParameterError(f"The parameter {name!r} must be {kind.lower()}. Got {value!r} instead.")
    return value


def coerce_params(package_path, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check `raw` against the spec's parameters and convert each to its declared type.

    Unknown names, missing required parameters and an invalid model name each
    raise a one-line ParameterError naming them.
    """
    from mlops.data.uris import carries_secret, redact
    from mlops.store.registry import validate_name

    declared = pipeline_parameters(package_path)
    unknown = sorted(set(raw) - set(declared))
    if unknown:
        raise ParameterError(f"unknown pipeline parameter(s) {unknown}; the pipeline takes {sorted(declared)}.")
    missing = sorted(n for n, p in declared.items() if not p["optional"] and n not in raw)
    if missing:
        raise ParameterError(f"missing required pipeline parameter(s) {missing}.")
    params = {n: _coerce(n, v, declared[n]["type"]) for n, v in raw.items()}
    for name, value in params.items():
        # KFP and Argo record, log and show every parameter: a URI's credential must not be one.
        if name.endswith("_uri") and isinstance(value, str) and carries_secret(value):
            raise ParameterError(
                f"{name} carries a credential, and a run's parameters are recorded and shown: put the full URI "
                f"in the Secret {config.DATA_SOURCE_SECRET_NAME} (key uri) and pass {name}={redact(value)}"
            )
    if "model_name" in params:
        try:
            validate_name("model", params["model_name"])
        except MlopsError as error:
            raise ParameterError(str(error)) from None
    return params


# -- Client helpers --------------------------------------------------------------


def make_client(host: str | None = None, *, token_path: str | None = None):
    """A kfp.Client for `host`, or for the in-cluster API server when host is None.

    Inside a pod with a projected token (SA_TOKEN_PATH, audience
    pipelines.kubeflow.org) the token is sent as a bearer credential; standalone
    KFP ignores it and multi-user KFP requires it.
    """
    import kfp
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    token_path = token_path or os.environ.get("KF_PIPELINES_SA_TOKEN_PATH", config.KFP_SA_TOKEN_PATH)
    credentials = None
    if Path(token_path).is_file():
        credentials = ServiceAccountTokenVolumeCredentials(path=token_path)
    return kfp.Client(host=host or config.KFP_IN_CLUSTER_HOST, credentials=credentials)


def eq_filter(key: str, value: str) -> str:
    """A KFP API list filter: ``key`` equals ``value``."""
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "string_value": value}]})


def paged(list_call: Callable[..., Any], attr: str, **kwargs) -> Iterable[Any]:
    """Every item of a KFP API list call (the response's ``attr``), page after page."""
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


def ensure_pipeline_version(client, package_path, pipeline_name: str = DEFAULT_PIPELINE_NAME) -> tuple[str, str]:
    """(pipeline_id, version_id) for this compiled spec, uploading only what is missing.

    The version name is derived from the spec's sha256, so re-running this with the
    same file never uploads a second copy.
    """
    package_path = str(package_path)
    version_name = version_name_for(spec_digest(package_path))
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(
            package_path,
            pipeline_name=pipeline_name,
            description="Uploaded by mlops submit / mlops schedules sync.",
        )
        pipeline_id = pipeline.pipeline_id
    for version in paged(
        client.list_pipeline_versions,
        "pipeline_versions",
        pipeline_id=pipeline_id,
        filter=eq_filter("display_name", version_name),
    ):
        if version.display_name == version_name:
            return pipeline_id, version.pipeline_version_id
    version = client.upload_pipeline_version(package_path, pipeline_version_name=version_name, pipeline_id=pipeline_id)
    return pipeline_id, version.pipeline_version_id


# -- Submit ----------------------------------------------------------------------


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
    for run in paged(
        client.list_runs,
        "runs",
        experiment_id=experiment_id,
        filter=eq_filter("display_name", display_name),
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
            experiment_id=experiment_id,
            job_name=name,
            params=dict(params),
            pipeline_id=pipeline_id,
            version_id=version_id,
            service_account=service_account,
        )
        run_id, created = run.run_id, True
    state = None
    if wait:
        state = client.wait_for_run_completion(run_id, timeout=timeout).state
    base = (ui_host or client._get_url_prefix() or "").rstrip("/")
    return SubmitResult(run_id, name, created, f"{base}/#/runs/details/{run_id}", state)
