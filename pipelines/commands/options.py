"""Options and helpers shared by several subcommands."""

import contextlib
import json

import click

from components.runtime import StageError
from components.storage import StoreError, default_store_uri, open_store

store_option = click.option(
    "--store", "store_uri", envvar="MLOPS_STORE", default=None, metavar="URI",
    help="file:///abs/path or s3://BUCKET/PREFIX (env MLOPS_STORE; default ./.mlops).")


@contextlib.contextmanager
def one_line_errors(*extra_types):
    """Domain failures (store, stage and ``extra_types``) become one CLI error line, no traceback."""
    try:
        yield
    except (StoreError, StageError, *extra_types) as error:
        raise click.ClickException(str(error)) from None


def resolve_store(store_uri: str | None):
    """Open the store, turning its errors into a one-line CLI error."""
    with one_line_errors():
        return open_store(store_uri or default_store_uri())


def print_listing(records: list, as_json: bool, *, empty: str, header: str, row) -> None:
    """``records`` as a JSON list (each ``to_json()``-able dict) or as a table of ``row(record)`` lines."""
    if as_json:
        click.echo(json.dumps(records, indent=2, sort_keys=True))
    elif not records:
        click.echo(empty)
    else:
        click.echo(header)
        for record in records:
            click.echo(row(record))
