"""Options and helpers shared by several subcommands."""

import click

from components.storage import StoreError, default_store_uri, open_store

store_option = click.option(
    "--store", "store_uri", envvar="MLOPS_STORE", default=None, metavar="URI",
    help="file:///abs/path or s3://BUCKET/PREFIX (env MLOPS_STORE; default ./.mlops).")


def resolve_store(store_uri: str | None):
    """Open the store, turning its errors into a one-line CLI error."""
    try:
        return open_store(store_uri or default_store_uri())
    except StoreError as error:
        raise click.ClickException(str(error)) from None
