"""`mlops runs`: the runs of the training pipeline, local (`mlops run`, from the run records in the
store) or on a cluster (Argo Workflows)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlops.cli.options import one_line_errors, resolve_store, store_option, usage_errors


def _clients(context, namespace):
    from mlops.cluster import argo_client

    with one_line_errors():
        try:
            return argo_client.connect(context, namespace)
        except argo_client.ClusterError:
            raise
        except Exception as error:  # noqa: BLE001 - no cluster: one line
            raise argo_client.ClusterError(f"cannot reach the cluster: {argo_client.describe_error(error)}") from None


def _call(function, *args, **kwargs):
    from mlops.cluster import argo_client

    with one_line_errors():
        try:
            return function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - API errors: one line
            raise argo_client.ClusterError(argo_client.describe_error(error)) from None


def cluster_options(command):
    command = store_option(command)
    command = click.option("--namespace", default=None, help="(argo) Namespace of the runs. Default: mlops-runs.")(
        command
    )
    command = click.option("--context", default=None, help="(argo) kubeconfig context, e.g. kind-mlops.")(command)
    return click.option(
        "--engine",
        type=click.Choice(["local", "argo"]),
        default=None,
        help="local: the runs of `mlops run` (their records in --store); argo: the runs on a cluster "
        "(KFP's runs are in its UI). Default: argo when --context or --namespace is given, else local.",
    )(command)


def _engine(engine, context, namespace) -> str:
    return engine or ("argo" if context or namespace else "local")


@click.group("runs")
def runs():
    """List, inspect, compare and read the logs of pipeline runs, local or on a cluster."""


@runs.command("list")
@cluster_options
@click.option("--commit", default=None, help="Only the runs started for this git commit.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--model", "model_name", default=None, help="(local) Only the runs of this model.")
def list_command(engine, context, namespace, store_uri, commit, as_json, model_name):
    """The runs, newest first: name, pipeline (local: model), state, start, commit."""
    if _engine(engine, context, namespace) == "local":
        _list_local(store_uri, model_name, commit, as_json)
        return
    from mlops.cluster import argo, argo_client

    clients = _clients(context, namespace)
    items = _call(argo_client.list_runs, clients, commit=commit)
    rows = [
        {
            "name": w["metadata"]["name"],
            "pipeline": w["metadata"]["labels"].get(argo.LABEL_PIPELINE, ""),
            "state": w.get("status", {}).get("phase") or "Pending",
            "started": w.get("status", {}).get("startedAt") or "",
            "commit": w["metadata"].get("annotations", {}).get(argo_client.ANNOTATION_COMMIT, ""),
            "message": argo_client.message(w),
        }
        for w in items
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no runs")
        return
    for row in rows:
        line = f"{row['name']:<44} {row['pipeline']:<18} {row['state']:<10} {row['started']:<21} {row['commit'][:12]}"
        click.echo(line.rstrip() + (f"  {row['message']}" if row["message"] else ""))


@runs.command("show")
@cluster_options
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="(local) Print the run's record as JSON.")
def show_command(engine, context, namespace, store_uri, run, as_json):
    """One run: its parameters, each task's state and progress (local: its data, code, model and
    metrics), and its outcome."""
    if _engine(engine, context, namespace) == "local":
        _show_local(store_uri, run, as_json)
        return
    from mlops.cluster import argo_client

    clients = _clients(context, namespace)
    workflow = _call(argo_client.get, clients, run)
    status = workflow.get("status", {})
    click.echo(f"run:      {run}")
    click.echo(f"state:    {status.get('phase') or 'Pending'}")
    if argo_client.message(workflow):
        click.echo(f"reason:   {argo_client.message(workflow)}")
    click.echo(f"started:  {status.get('startedAt') or ''}   finished: {status.get('finishedAt') or ''}")
    for parameter in workflow["spec"].get("arguments", {}).get("parameters", []):
        value = str(parameter.get("value", ""))
        click.echo(f"param:    {parameter['name']}={value if len(value) <= 80 else value[:79] + '…'}")
    for node in argo_client.pod_nodes(workflow):
        click.echo(
            f"task:     {argo_client.task_name(node):<18} {node.get('phase', ''):<10} "
            f"{node.get('startedAt') or '':<21} {node.get('finishedAt') or ''}"
        )
        for line in argo_client.progress_lines(node):
            click.echo(f"          {line}")


@runs.command("logs")
@cluster_options
@click.argument("run")
@click.option("--task", default=None, help="Only this task (its name in the pipeline, e.g. train).")
def logs_command(engine, context, namespace, store_uri, run, task):
    """The log of each task's container, in the order the tasks finished (local: the run's log file,
    on the machine that ran it)."""
    if _engine(engine, context, namespace) == "local":
        from mlops.store.runs import get_run

        with one_line_errors():
            record = get_run(resolve_store(store_uri), run)
        log = Path(record.get("details", {}).get("log") or "")
        if not log.name or not log.is_file():
            raise click.ClickException(f"the log of {record['id']} is not on this machine (it was {log})")
        click.echo(log.read_text(encoding="utf-8", errors="replace").rstrip("\n"))
        return
    from mlops.cluster import argo_client

    clients = _clients(context, namespace)
    workflow = _call(argo_client.get, clients, run)
    for name, text in _call(lambda: list(argo_client.logs(clients, workflow, task))):
        click.echo(f"==> {name} <==")
        click.echo(text.rstrip("\n"))


@runs.command("compare")
@store_option
@click.argument("run_ids", metavar="RUN RUN...", nargs=-1, required=True)
@click.option("--differences", is_flag=True, help="Only the rows whose values differ.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compare_command(store_uri, run_ids, differences, as_json):
    """Local runs side by side: parameters, data versions, code versions and metrics; a row whose
    values differ is marked with *."""
    from mlops.store.runs import compare_runs, format_value, get_run

    if len(run_ids) < 2:
        raise click.UsageError("compare needs at least two runs")
    store = resolve_store(store_uri)
    with one_line_errors():
        comparison = compare_runs([get_run(store, run_id) for run_id in run_ids])
    rows = [row for row in comparison["rows"] if row["differs"] or not differences]
    if as_json:
        click.echo(json.dumps({**comparison, "rows": rows}, indent=2, sort_keys=True, default=str))
        return
    table = [["", "run", *[r["id"] for r in comparison["runs"]]]]
    table.append(["", "state", *[r["state"] for r in comparison["runs"]]])
    table.append(["", "model version", *[r["model_version"] or "-" for r in comparison["runs"]]])
    for row in rows:
        table.append(
            ["*" if row["differs"] else "", f"{row['section']}: {row['name']}", *map(format_value, row["values"])]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    changed = sum(row["differs"] for row in comparison["rows"])
    click.echo(f"{changed} of {len(comparison['rows'])} rows differ (marked *)")


def _list_local(store_uri, model_name, commit, as_json) -> None:
    from mlops.store.runs import list_runs

    store = resolve_store(store_uri)
    with usage_errors():
        if model_name:
            from mlops.store.registry import validate_name

            validate_name("model", model_name)
    with one_line_errors():
        records = list_runs(store, model_name)
    if commit:
        records = [r for r in records if str(r.get("code", {}).get("version", "")).startswith(commit)]
    if as_json:
        click.echo(json.dumps(records, indent=2, sort_keys=True))
        return
    if not records:
        click.echo(f"no local runs in {store.uri}")
        return
    for r in records:
        registered = (r.get("model_version") or {}).get("ref") or "-"
        line = (
            f"{r['id']:<44} {r['model']:<18} {r['state']:<10} {r['started_at']:<26} "
            f"{str(r.get('code', {}).get('version', ''))[:12]:<13} {registered}"
        )
        click.echo(line.rstrip() + (f"  {r['reason']}" if r.get("reason") else ""))


def _show_local(store_uri, run, as_json) -> None:
    from mlops.store.runs import flatten, format_value, get_run

    with one_line_errors():
        record = get_run(resolve_store(store_uri), run)
    if as_json:
        click.echo(json.dumps(record, indent=2, sort_keys=True))
        return
    registered = record.get("model_version") or {}
    click.echo(f"run:      {record['id']}")
    click.echo(f"state:    {record['state']}")
    if record.get("reason"):
        click.echo(f"reason:   {record['reason']}")
    click.echo(f"started:  {record['started_at']}   finished: {record['finished_at']}")
    click.echo(f"data:     {record['data'].get('version') or '-'} (from {record['data'].get('source') or '-'})")
    click.echo(f"code:     {record['code'].get('version') or '-'}")
    if registered:
        promoted = "now the champion" if registered.get("promoted") else registered.get("promotion", "")
        click.echo(f"model:    {registered['ref']} ({record.get('candidate') or '-'}): {promoted}")
    for name, value in flatten(record.get("parameters", {})).items():
        click.echo(f"param:    {name}={format_value(value, 80)}")
    for name, value in flatten(record.get("metrics", {})).items():
        click.echo(f"metric:   {name}={format_value(value)}")
    click.echo(f"folder:   {record.get('details', {}).get('run_dir', '-')}")
