"""`mlops schedules`: cron schedules declared in git, reconciled into KFP."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from mlops.cli.options import one_line_errors, usage_errors


@click.group("schedules")
def schedules():
    """Cron schedules declared in schedules/*.yaml and KFP recurring runs."""


@schedules.command("sync")
@click.option(
    "--engine",
    type=click.Choice(["kfp", "argo"]),
    default="kfp",
    show_default=True,
    help="kfp: KFP recurring runs; argo: Argo CronWorkflows (through the Kubernetes API).",
)
@click.option("--context", default=None, help="(argo) kubeconfig context, e.g. kind-mlops.")
@click.option("--namespace", default=None, help="(argo) namespace of the runs. Default: mlops-runs.")
@click.option(
    "--host", envvar="KFP_HOST", default=None, show_envvar=True, help="KFP API URL. Default: the in-cluster API server."
)
@click.option(
    "--dir",
    "directory",
    default="schedules",
    show_default=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory of schedule YAML files.",
)
@click.option(
    "--package",
    "package_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Compiled pipeline YAML for schedules without pipeline_version. Default: the packaged training pipeline.",
)
@click.option("--experiment", default="mlops", show_default=True)
@click.option("--pipeline-name", default="training-pipeline", show_default=True)
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
def sync(engine, context, namespace, host, directory, package_path, experiment, pipeline_name, dry_run):
    """Create missing, replace changed, disable removed recurring runs.

    KFP cannot edit a recurring run: a changed schedule gets a new one and the
    old one is disabled and deleted. Schedules removed from git are disabled.
    Running it again with nothing changed changes nothing. On Argo, a changed
    schedule is updated in place, a disabled one suspended and a removed one
    deleted; CronWorkflows that are not ours are left alone.
    """
    from mlops.cluster import kfp_client
    from mlops.cluster import schedules as schedule_sync

    packages = {kind: kfp_client.packaged_spec(file_name) for kind, (file_name, _) in schedule_sync.PIPELINES.items()}
    if package_path:
        packages["training"] = package_path
    with usage_errors():
        wanted = [
            dataclasses.replace(s, params=kfp_client.coerce_params(packages[s.pipeline], s.params))
            for s in schedule_sync.load_schedules(directory)
        ]
    if engine == "argo":
        sync_argo(wanted, packages, context=context, namespace=namespace, dry_run=dry_run)
        return
    with one_line_errors():
        try:
            client = kfp_client.make_client(host)
            report = schedule_sync.sync_schedules(
                client,
                wanted,
                packages,
                pipeline_names={"training": pipeline_name},
                experiment=experiment,
                dry_run=dry_run,
            )
        except Exception as error:  # noqa: BLE001 - network, API or timeout errors: one line, no traceback
            raise kfp_client.ClusterError(f"schedules sync failed: {kfp_client.describe_error(error)}") from None
    print_report(report, ("created", "replaced", "enabled", "disabled", "unchanged"), dry_run)


def sync_argo(wanted, packages, *, context, namespace, dry_run) -> None:
    """Reconcile the schedules into Argo CronWorkflows and print what changed."""
    from mlops.cluster import argo_client, argo_schedules

    with one_line_errors():
        try:
            clients = argo_client.connect(context, namespace)
            templates = {kind: argo_client.template_for(path) for kind, path in packages.items()}
            report = argo_schedules.sync(clients, wanted, templates, dry_run=dry_run)
        except argo_client.ClusterError:
            raise
        except argo_schedules.ScheduleError:
            raise
        except Exception as error:  # noqa: BLE001 - API errors: one line, no traceback
            raise argo_client.ClusterError(f"schedules sync failed: {argo_client.describe_error(error)}") from None
    print_report(report, ("created", "replaced", "suspended", "deleted", "unchanged"), dry_run)


def print_report(report, labels, dry_run: bool) -> None:
    """One line per kind of change that has names, then "no changes" when nothing changed."""
    prefix = "would " if dry_run else ""
    for label in labels:
        names = getattr(report, label)
        if names:
            click.echo(f"{prefix if label != 'unchanged' else ''}{label}: {', '.join(names)}")
    if not report.changed:
        click.echo("no changes")
