"""`mlops gitops status`: each recent commit of the GitOps repository, the run it started and its state."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlops.cli.options import one_line_errors


@click.group("gitops")
def gitops():
    """The GitOps path on a cluster (Flux on kind: make gitops-up, make gitops-push)."""


@gitops.command("status")
@click.option("--context", default=None, help="kubeconfig context, e.g. kind-mlops. Default: the current one.")
@click.option("--namespace", default=None, help="Namespace of the runs. Default: mlops-runs.")
@click.option(
    "--repo",
    "clone",
    default=".gitops/repo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A clone of the GitOps repository (make gitops-push keeps this one up to date).",
)
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 200), help="How many commits.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(context, namespace, clone, limit, as_json):
    """What Flux applied last, the submit Job's state, and for each recent commit the run keyed on it.

    A commit with no run changed nothing a run depends on (or its run was refused:
    then the Job's line says why).
    """
    from kubernetes import client

    from mlops.cluster import argo_client
    from mlops.cluster import gitops as flux

    with one_line_errors():
        commits = flux.recent_commits(clone, limit)
        try:
            clients = argo_client.connect(context, namespace)
            state = flux.sync_state(clients.custom, client.BatchV1Api(), clients.core, clients.namespace)
            rows = flux.join(commits, argo_client.list_runs(clients))
        except argo_client.ClusterError:
            raise
        except Exception as error:  # noqa: BLE001 - API errors: one line
            raise argo_client.ClusterError(f"gitops status: {argo_client.describe_error(error)}") from None
    if as_json:
        click.echo(json.dumps({"sync": vars(state), "commits": [vars(r) for r in rows]}, indent=2))
        return
    applied = state.revision.rpartition(":")[2][:12] or "nothing yet"
    click.echo(f"flux: applied {applied}; ready {state.ready}: {state.message}")
    click.echo(f"submit job: {state.job}" + (f": {state.job_message}" if state.job_message else ""))
    click.echo(f"{'COMMIT':<12}  {'RUN':<40}  {'STATE':<10}  SUBJECT")
    for row in rows:
        click.echo(f"{row.commit[:12]:<12}  {row.run or '-':<40}  {row.state or '-':<10}  {row.subject[:60]}")
