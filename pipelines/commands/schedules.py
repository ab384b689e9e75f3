"""`mlops schedules`: cron schedules declared in git, reconciled into KFP."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import click

log = logging.getLogger("mlops.schedules")


@click.group("schedules")
def schedules():
    """Cron schedules declared in schedules/*.yaml and KFP recurring runs."""


@schedules.command("sync")
@click.option("--host", envvar="KFP_HOST", default=None, show_envvar=True,
              help="KFP API URL. Default: the in-cluster API server.")
@click.option("--dir", "directory", default="schedules", show_default=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory of schedule YAML files.")
@click.option("--package", "package_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Compiled pipeline YAML for schedules without pipeline_version. "
                   "Default: the packaged training pipeline.")
@click.option("--experiment", default="mlops", show_default=True)
@click.option("--pipeline-name", default="training-pipeline", show_default=True)
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
def sync(host, directory, package_path, experiment, pipeline_name, dry_run):
    """Create missing, replace changed, disable removed recurring runs.

    KFP cannot edit a recurring run: a changed schedule gets a new one and the
    old one is disabled and deleted. Schedules removed from git are disabled.
    Running it again with nothing changed changes nothing.
    """
    from pipelines import cluster

    package_path = package_path or cluster.packaged_spec()
    try:
        wanted = [dataclasses.replace(s, params=cluster.coerce_params(package_path, s.params))
                  for s in cluster.load_schedules(directory)]
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    try:
        client = cluster.make_client(host)
        report = cluster.sync_schedules(client, wanted, package_path,
                                        pipeline_name=pipeline_name,
                                        experiment=experiment, dry_run=dry_run)
    except Exception as err:  # one line, no traceback
        log.error("schedules sync failed: %s", cluster.describe_error(err))
        sys.exit(1)
    prefix = "would " if dry_run else ""
    for label in ("created", "replaced", "enabled", "disabled", "unchanged"):
        names = getattr(report, label)
        if names:
            click.echo(f"{prefix if label != 'unchanged' else ''}{label}: {', '.join(names)}")
    if not report.changed:
        click.echo("no changes")
