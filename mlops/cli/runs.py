"""`mlops runs`: the runs of the pipelines on a cluster (Argo Workflows)."""

from __future__ import annotations

import json

import click

from mlops.cli.options import one_line_errors


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
    command = click.option("--namespace", default=None, help="Namespace of the runs. Default: mlops-runs.")(command)
    command = click.option("--context", default=None, help="kubeconfig context, e.g. kind-mlops.")(command)
    return click.option(
        "--engine",
        type=click.Choice(["argo"]),
        default="argo",
        show_default=True,
        help="The engine the runs are on (KFP's runs are in its UI).",
    )(command)


@click.group("runs")
def runs():
    """List, inspect and read the logs of pipeline runs on a cluster."""


@runs.command("list")
@cluster_options
@click.option("--commit", default=None, help="Only the runs started for this git commit.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(engine, context, namespace, commit, as_json):
    """The runs, newest first: name, pipeline, state, start, commit."""
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
def show_command(engine, context, namespace, run):
    """One run: its parameters, each task's state and progress, and its outcome."""
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
def logs_command(engine, context, namespace, run, task):
    """The log of each task's container, in the order the tasks finished."""
    from mlops.cluster import argo_client

    clients = _clients(context, namespace)
    workflow = _call(argo_client.get, clients, run)
    for name, text in _call(lambda: list(argo_client.logs(clients, workflow, task))):
        click.echo(f"==> {name} <==")
        click.echo(text.rstrip("\n"))
