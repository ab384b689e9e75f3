"""`mlops data`: content-addressed data versions in the store."""

import json

import click

from mlops.cli.options import one_line_errors, print_listing, resolve_store, store_option
from mlops.errors import printable

# The widest a cell or a column name is shown by `data show` (the rest is cut, never wrapped).
CELL_WIDTH = 40


@click.group()
def data():
    """Push, list and inspect data versions."""


@data.command()
@click.argument("source", metavar="PATH|URI")
@click.option("--name", required=True, help="Data set name (letters, digits, '.', '_', '-').")
@click.option(
    "--pointer", type=click.Path(dir_okay=False), help="Also write a pointer file (NAME.data.yaml) to commit to git."
)
@store_option
def push(source, name, pointer, store_uri):
    """Store a CSV/Parquet table as an immutable, content-addressed version."""
    from mlops.data.pointer import write_pointer
    from mlops.stages.ingest import ingest_source
    from mlops.store.registry import validate_name

    store = resolve_store(store_uri, role="pipeline")
    with one_line_errors():
        validate_name("data set", name)
        result = ingest_source(source, store, name)
        version, new = result.version, result.new
        if pointer:
            write_pointer(pointer, version, store.uri)
    state = "new version" if new else "unchanged: same content as the existing version"
    click.echo(f"{version.name}@{version.id} ({version.rows} rows, {len(version.columns)} columns; {state})")
    if pointer:
        click.echo(f"pointer: {pointer}")


@data.command("list")
@click.argument("name", required=False)
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def list_versions(name, store_uri, as_json):
    """Every version of every data set (or of NAME), oldest first."""
    from mlops.store.datasets import DataVersions

    versions_store = DataVersions(resolve_store(store_uri))
    with one_line_errors():
        names = [name] if name else versions_store.names()
        versions = [version for each in names for version in versions_store.versions(each)]
    print_listing(
        [version.to_json() for version in versions],
        as_json,
        empty=f"no data versions in {versions_store.store.uri}",
        header=f"{'DATA VERSION':<34} {'ROWS':>8} {'COLUMNS':>7}  {'CREATED':<32} SOURCE",
        row=lambda v: (
            f"{v['ref']:<34} {v['rows']:>8} {len(v['columns']):>7}  {v['created_at']:<32} {printable(v['source'])}"
        ),
    )


@data.command()
@click.argument("ref", metavar="NAME@VERSION")
@store_option
def show(ref, store_uri):
    """One data version's manifest and a preview of its rows."""
    from mlops.store.datasets import DataVersions

    versions = DataVersions(resolve_store(store_uri))
    with one_line_errors():
        version = versions.resolve(ref)
        frame = versions.read_frame(version)
    click.echo(json.dumps(version.to_json(), indent=2))
    # Cells and column names are user data: no control character reaches the terminal, no cell is unbounded.
    preview = frame.head(5).rename(columns=lambda name: printable(name, CELL_WIDTH))
    preview = preview.map(lambda cell: printable(cell, CELL_WIDTH) if isinstance(cell, str) else cell)
    click.echo(preview.to_string())
