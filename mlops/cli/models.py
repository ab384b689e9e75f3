"""`mlops models`: the model registry."""

import json

import click

from mlops.cli.options import one_line_errors, print_listing, resolve_store, store_option


def _registry(store_uri, role: str = "reader"):
    from mlops.store.registry import ModelRegistry

    return ModelRegistry(resolve_store(store_uri, role))


@click.group()
def models():
    """List and inspect registered models."""


@models.command("list")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of versions.")
def list_models(store_uri, as_json):
    """Every version of every model, with aliases and test metrics."""
    registry = _registry(store_uri)
    with one_line_errors():
        versions = [version for name in registry.names() for version in registry.versions(name)]

    def row(version):
        metric = version.lineage.get("params", {}).get("metric")
        shown = {k: v for k, v in version.metrics.items() if k == f"test_{metric}"} or version.metrics
        text = ", ".join(f"{k}={v:.4f}" for k, v in sorted(shown.items()))
        return (
            f"{version.name:<24} {version.version:>7}  {','.join(version.aliases) or '-':<20} "
            f"{version.created_at:<25} {text}"
        )

    if as_json:  # the listing leaves out the (long) lineage record; `models show` has it
        versions = [{k: v for k, v in version.to_json().items() if k != "lineage"} for version in versions]
    print_listing(
        versions,
        as_json,
        empty=f"no models in {registry.store.uri}",
        header=f"{'MODEL':<24} {'VERSION':>7}  {'ALIASES':<20} {'CREATED':<25} METRICS",
        row=row,
    )


@models.command()
@click.argument("ref", metavar="NAME@VERSION|NAME@ALIAS")
@store_option
def show(ref, store_uri):
    """One model version: metrics, aliases, tags and the full lineage record (JSON)."""
    registry = _registry(store_uri)
    with one_line_errors():
        version = registry.resolve(ref)
    click.echo(json.dumps(version.to_json(), indent=2, sort_keys=True))


@models.command()
@click.argument("ref", metavar="NAME@VERSION")
@click.option("--alias", default="champion", show_default=True, help="The alias to move to this version.")
@store_option
def promote(ref, alias, store_uri):
    """Point an alias (default: champion) at a version, atomically."""
    registry = _registry(store_uri, role="registry")
    with one_line_errors():
        version = registry.resolve(ref)
        previous = registry.set_alias(version.name, alias, version.version, reason="mlops models promote")
    before = f"v{previous}" if previous else "nothing"
    click.echo(f"{version.name}@{alias}: {before} -> v{version.version}")


@models.command()
@click.argument("name")
@click.option("--to", "to", type=click.IntRange(min=1), metavar="VERSION", help="Roll back to this version.")
@click.option("--reason", required=True, help="Why (kept in the alias history with who and when).")
@click.option("--alias", default="champion", show_default=True, help="The alias to move back.")
@store_option
def rollback(name, to, reason, alias, store_uri):
    """Move the champion back to the previous champion (or --to VERSION), by compare-and-swap.

    "Previous" is the version the champion pointed at before its current version arrived, so a second
    rollback goes further back. The move is refused, and nothing changes, when the champion moved while
    the rollback was decided, when there is no previous champion, or when VERSION is unknown. Who
    (MLOPS_ACTOR, else the OS user), when and why are kept in `mlops models history NAME`.
    """
    if not reason.strip():
        raise click.UsageError("--reason must say why")
    registry = _registry(store_uri, role="registry")
    with one_line_errors():
        left, now = registry.rollback(name, alias, to=to, reason=reason.strip())
    click.echo(f"{name}@{alias}: v{left} -> v{now} (rollback)")


@models.command()
@click.argument("name")
@click.option("--alias", default="champion", show_default=True, help="The alias whose moves to list.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@store_option
def history(name, alias, as_json, store_uri):
    """Every move of a model's alias (default: champion), oldest first: when, who, from, to, why."""
    from mlops.store.registry import validate_name

    registry = _registry(store_uri)
    with one_line_errors():
        validate_name("model", name)
        moves = registry.alias_history(name, alias)

    def row(move):
        before = f"v{move['previous']}" if move.get("previous") else "-"
        kind = move.get("kind", "move")
        return (
            f"{move.get('at') or '?':<26} {move.get('by') or '?':<16} {kind:<9} {before:>6} -> "
            f"v{move['version']:<5} {move.get('reason', '')}"
        )

    print_listing(
        moves,
        as_json,
        empty=f"{name}@{alias} has never been set in {registry.store.uri}",
        header=f"{'TIME':<26} {'BY':<16} {'KIND':<9} {'FROM':>6}    {'TO':<6} REASON",
        row=row,
    )


@models.command()
@click.argument("ref", metavar="NAME@VERSION")
@click.argument("changes", nargs=-1, required=True, metavar="KEY=VALUE|KEY=")
@store_option
def tag(ref, changes, store_uri):
    """Set tags on a version (KEY= removes a tag)."""
    updates = {}
    for change in changes:
        key, sep, value = change.partition("=")
        if not sep or not key:
            raise click.UsageError(f"tags are KEY=VALUE (or KEY= to remove), got {change!r}")
        updates[key] = value or None
    registry = _registry(store_uri, role="registry")
    with one_line_errors():
        version = registry.resolve(ref)
        tags = registry.set_tags(version.name, version.version, updates)
    click.echo(json.dumps(tags, sort_keys=True))


@models.command()
@click.argument("ref", metavar="NAME@VERSION")
@store_option
def reproduce(ref, store_uri):
    """Re-run the pipeline from the version's lineage; exit 0 only if the model and metrics match."""
    from mlops.cli.options import code_version
    from mlops.runners.reproduce import reproduce as reproduce_version

    store = resolve_store(store_uri)
    with one_line_errors():
        result = reproduce_version(store, ref, code_version())
    original = result.original
    click.echo(f"original: {original.ref} model sha256 {original.lineage['model']['sha256']}")
    click.echo(f"re-run:   model sha256 {result.model_sha256}")
    click.echo(f"model:    {'bit-identical' if result.identical_model else 'DIFFERENT'}")
    click.echo(f"metrics:  {'equal' if result.equal_metrics else 'DIFFERENT: ' + '; '.join(result.differences)}")
    if result.code_changed:
        click.echo(f"note: code differs from the original run ({original.lineage['code']['version']})")
    if not result.reproduced:
        raise SystemExit(1)
    click.echo(f"reproduced {original.ref}")
