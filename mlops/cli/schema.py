"""`mlops schema`: bring a model's baseline schema into git for curation."""

from pathlib import Path

import click

from mlops.cli.options import resolve_store, store_option
from mlops.errors import MlopsError
from mlops.stages.validate import curated_schema_path, stored_baseline

SCHEMA_DIR = Path("schemas")


@click.group()
def schema():
    """Curated TFDV schemas (schemas/<name>.pbtxt)."""


@schema.command()
@click.argument("name")
@store_option
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write it (default: schemas/NAME.pbtxt)."
)
def pull(name, store_uri, output):
    """Write the schema TFDV inferred on NAME's first run to schemas/NAME.pbtxt.

    Edit it (domains, value ranges, presence) and commit it: from then on it is
    the curated schema every run of NAME is validated against.
    """
    try:
        baseline = stored_baseline(name, resolve_store(store_uri))
    except MlopsError as error:
        raise click.ClickException(str(error)) from None
    if baseline is None:
        raise click.ClickException(f"no baseline schema for {name!r} yet: run the pipeline once first")
    text = baseline[1]
    output = output or SCHEMA_DIR / f"{name}.pbtxt"
    if output.exists():
        raise click.ClickException(f"{output} exists; remove it first to replace the curated schema")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        f"# TFDV schema for {name!r}: curated in git, validated against by every run.\n"
        f"# Started from the baseline TFDV inferred on its first run (`mlops schema pull`).\n" + text,
        encoding="utf-8",
    )
    active = curated_schema_path(name)
    click.echo(
        f"wrote {output}"
        + (
            ""
            if active and active.resolve() == output.resolve()
            else " (note: runs read curated schemas from MLOPS_SCHEMA_DIR or <repo>/schemas)"
        )
    )
