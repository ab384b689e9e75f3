"""`mlops submit`: run a compiled pipeline on a cluster: Kubeflow Pipelines, or Argo Workflows."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlops import config
from mlops.cli.options import (
    beam_option_option,
    beam_runner_option,
    one_line_errors,
    usage_errors,
    use_beam_options,
)


def parse_param_options(items) -> dict:
    """NAME=VALUE strings → dict; a malformed item is a usage error."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--param")
        out[name] = value
    return out


def read_params_file(path) -> dict:
    """The parameters in a YAML mapping, or a usage error naming the file and the problem."""
    import yaml

    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise click.BadParameter(
            f"{path} is not readable YAML: {' '.join(str(error).split())}", param_hint="--params-file"
        ) from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold a mapping of parameter names to values", param_hint="--params-file")
    return data


@click.command("submit")
@click.option(
    "--engine",
    type=click.Choice(["kfp", "argo"]),
    default="kfp",
    show_default=True,
    help="kfp: a Kubeflow Pipelines API server; argo: Argo Workflows through the Kubernetes API "
    "(the WorkflowTemplate that `mlops compile` made from the same spec).",
)
@click.option("--context", default=None, help="(argo) kubeconfig context, e.g. kind-mlops. Default: the current one.")
@click.option("--namespace", default=None, help="(argo) namespace of the runs. Default: mlops-runs.")
@click.option(
    "--store",
    "store_uri",
    default=None,
    help="(argo, --wait) the store to read the registered model from for the summary, "
    "e.g. s3://mlops/store (reader role credentials from the environment).",
)
@click.option(
    "--host",
    envvar="KFP_HOST",
    default=None,
    show_envvar=True,
    help="KFP API URL, e.g. http://127.0.0.1:8888. Default: the in-cluster "
    "API server (with the pod's projected token).",
)
@click.option(
    "--package",
    "package_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Compiled pipeline YAML. Default: the packaged training pipeline.",
)
@click.option(
    "--params-file", type=click.Path(exists=True, dir_okay=False), help="YAML mapping of pipeline parameters."
)
@click.option(
    "--param",
    "param_items",
    multiple=True,
    metavar="NAME=VALUE",
    help="A pipeline parameter; repeatable; overrides --params-file.",
)
@click.option(
    "--commit", envvar=config.GIT_COMMIT.name, default=None, help="Git commit to key the run on (one run per commit)."
)
@click.option("--key", default=None, help="Idempotency key; default: hash of spec + parameters (+ commit).")
@click.option("--experiment", default="mlops", show_default=True)
@click.option("--pipeline-name", default="training-pipeline", show_default=True)
@click.option("--ui-host", default=None, help="Base URL for the printed run link.")
@beam_runner_option
@beam_option_option
@click.option(
    "--wait/--no-wait", default=False, show_default=True, help="Wait for the run to finish; exit 1 unless it succeeded."
)
@click.option(
    "--timeout", type=click.IntRange(min=1), default=3600, show_default=True, help="Seconds to wait with --wait."
)
def submit(
    engine,
    context,
    namespace,
    store_uri,
    host,
    package_path,
    params_file,
    param_items,
    commit,
    key,
    experiment,
    pipeline_name,
    ui_host,
    beam_runner,
    beam_option_values,
    wait,
    timeout,
):
    """Start one run of a compiled pipeline on a cluster, idempotently.

    KFP: upload the pipeline version if new, then start the run. Argo: apply the
    WorkflowTemplate if it changed, then create the Workflow. The run is keyed on
    the compiled spec, the parameters (data_uri is the data pointer) and --commit,
    or on --key: submitting the same key again prints the existing run and creates
    nothing.
    """
    from mlops.cluster import kfp_client
    from mlops.data.pointer import POINTER_SUFFIX, resolve_data_argument
    from mlops.stages.validate import secret_free

    package_path = package_path or kfp_client.packaged_spec()
    if not Path(package_path).is_file():
        raise click.UsageError(f"no compiled pipeline at {package_path}; pass --package or compile the pipeline first.")
    raw = {**read_params_file(params_file), **parse_param_options(param_items)}
    with usage_errors():
        if str(raw.get("data_uri", "")).endswith(POINTER_SUFFIX):
            # A pointer file in git pins the data: the run gets NAME@VERSION, and the
            # idempotency key changes exactly when the pointer does.
            raw["data_uri"] = resolve_data_argument(str(raw["data_uri"]))
        if commit and "code_version" not in raw and "code_version" in kfp_client.pipeline_parameters(package_path):
            raw["code_version"] = commit  # the lineage records the commit the run was keyed on
        raw.update(beam_parameters(package_path, beam_runner, beam_option_values))
        secret_free(str(raw.get("beam_options", "")).split())  # also when given as --param beam_options=...
        params = kfp_client.coerce_params(package_path, raw)
    if engine == "argo":
        submit_argo(
            package_path,
            params,
            context=context,
            namespace=namespace,
            key=key,
            commit=commit,
            wait=wait,
            timeout=timeout,
            store_uri=store_uri,
        )
        return
    with one_line_errors():
        try:
            client = kfp_client.make_client(host)
            result = kfp_client.submit(
                client,
                package_path,
                params,
                pipeline_name=pipeline_name,
                experiment=experiment,
                key=key,
                commit=commit,
                ui_host=ui_host,
                wait=wait,
                timeout=timeout,
            )
        except Exception as error:  # noqa: BLE001 - network, API or timeout errors: one line, no traceback
            raise kfp_client.ClusterError(f"submit failed: {kfp_client.describe_error(error)}") from None
    verb = "created" if result.created else "exists (same key, not created again)"
    click.echo(f"run {result.display_name} {verb}: {result.url}")
    if wait:
        click.echo(f"state: {result.state}")
        if str(result.state).upper() != "SUCCEEDED":
            sys.exit(1)


def beam_parameters(package_path, runner: str | None, values: tuple[str, ...]) -> dict:
    """--beam-runner and --beam-option as the pipeline parameters the validate task reads (none when neither
    is given). On a cluster the runner is the user's: spark and flink need its job server named, as no
    local one is there, and what the workers need beyond the options (credentials) comes from their
    own environment, never from the parameters (mlops.stages.validate.secret_free)."""
    from mlops.cluster import kfp_client
    from mlops.errors import MlopsError

    if not runner and not values:
        return {}
    if "beam_runner" not in kfp_client.pipeline_parameters(package_path):
        raise MlopsError(f"the pipeline in {package_path} takes no Beam options (no beam_runner parameter)")
    beam = use_beam_options(runner, values)
    if beam["beam_runner"] in ("spark", "flink") and "job_endpoint=" not in beam["beam_options"]:
        raise MlopsError(
            f"--beam-runner {beam['beam_runner']} on a cluster needs its job server: add --beam-option "
            "job_endpoint=HOST:PORT (and the SDK environment its workers start, e.g. environment_type=DOCKER)"
        )
    return beam


def submit_argo(package_path, params, *, context, namespace, key, commit, wait, timeout, store_uri) -> None:
    """Create the run as a Workflow (idempotent by key); with ``wait``, follow it and print the outcome."""
    from mlops.cluster import argo_client

    with one_line_errors():
        try:
            clients = argo_client.connect(context, namespace)
            result = argo_client.submit(clients, package_path, params, key=key, commit=commit)
        except argo_client.ClusterError:
            raise
        except Exception as error:  # noqa: BLE001 - API errors: one line, no traceback
            raise argo_client.ClusterError(f"submit failed: {argo_client.describe_error(error)}") from None
    verb = "created" if result.created else "exists (same key, not created again)"
    click.echo(f"run {result.name} {verb} in namespace {clients.namespace} (WorkflowTemplate {result.template})")
    if not wait:
        return
    with one_line_errors():
        try:
            workflow = argo_client.wait(clients, result.name, click.echo, timeout)
        except argo_client.ClusterError:
            raise
        except Exception as error:  # noqa: BLE001 - API errors while waiting: one line
            raise argo_client.ClusterError(
                f"waiting for {result.name} failed: {argo_client.describe_error(error)}"
            ) from None
    phase = workflow["status"].get("phase")
    if phase != "Succeeded":
        click.echo(f"state: {phase}", err=True)
        raise click.ClickException(argo_client.message(workflow) or f"run {result.name} ended {phase}")
    click.echo(f"state: {phase}")
    print_argo_summary(workflow, params, store_uri)


def print_argo_summary(workflow: dict, params: dict, store_uri: str | None) -> None:
    """The summary `mlops run` prints, read from the registry when the store is given, else the run's outputs."""
    from mlops.cluster import argo_client

    registered = argo_client.task_outputs(workflow, "register")
    decided = argo_client.task_outputs(workflow, "decide")
    if decided:  # the monitor: its decision, and the retrained version when it retrained
        click.echo(f"decision: {decided.get('decision', '')} (action: {decided.get('action', '')})")
        if registered:
            click.echo(
                f"retrain: {params.get('model_name')}@{registered['model_version']}; "
                f"promoted: {registered.get('promoted') == 'true'} ({registered.get('promotion', '')})"
            )
        return
    if not registered:
        return
    version_number = int(registered["model_version"])
    promoted = registered.get("promoted") == "true"
    if not store_uri:
        click.echo(
            f"model:   {params.get('model_name')}@{version_number}; promoted: {promoted} "
            f"({registered.get('promotion', '')})"
        )
        return
    from mlops.cli.options import resolve_store
    from mlops.cli.summary import print_summary
    from mlops.reporting.report import report_key
    from mlops.store.registry import ModelRegistry

    store = resolve_store(store_uri, role="reader")
    with one_line_errors():
        version = ModelRegistry(store).get(params["model_name"], version_number)
    print_summary(
        version,
        promoted,
        registered.get("promotion", ""),
        f"{store.uri.rstrip('/')}/{report_key(params['model_name'], version_number)}",
    )
