"""`mlops models`: the model registry."""

import json

import click

from components.storage import StoreError
from components.storage.registry import ModelRegistry
from pipelines.commands.options import resolve_store, store_option


@click.group()
def models():
    """List and inspect registered models."""


@models.command("list")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of versions.")
def list_models(store_uri, as_json):
    """Every version of every model, with aliases and test metrics."""
    registry = ModelRegistry(resolve_store(store_uri))
    try:
        versions = [version for name in registry.names() for version in registry.versions(name)]
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        rows = []
        for version in versions:
            row = version.to_json()
            row.pop("lineage")
            rows.append(row)
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not versions:
        click.echo(f"no models in {registry.store.uri}")
        return
    click.echo(f"{'MODEL':<24} {'VERSION':>7}  {'ALIASES':<20} {'CREATED':<25} METRICS")
    for version in versions:
        metric = version.lineage.get("params", {}).get("metric")
        shown = {k: v for k, v in version.metrics.items() if k == f"test_{metric}"} or version.metrics
        text = ", ".join(f"{k}={v:.4f}" for k, v in sorted(shown.items()))
        click.echo(f"{version.name:<24} {version.version:>7}  {','.join(version.aliases) or '-':<20} "
                   f"{version.created_at:<25} {text}")
