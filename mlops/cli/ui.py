"""`mlops ui`: a local, read-only browser of the registry."""

import tempfile
import time
from pathlib import Path

import click

from mlops.cli.options import one_line_errors, resolve_store, store_option


@click.command("ui")
@store_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write a snapshot of every page here (with --build-only: only that; default: a temporary directory).",
)
@click.option("--build-only", is_flag=True, help="Write the pages and exit; do not serve them.")
def ui(store_uri, port, output, build_only):
    """Browse models, versions, aliases, data versions, monitor decisions, local runs (compared side
    by side) and their reports.

    Each page is made from the store (file or MinIO) when it is requested, so a reload shows what
    changed since; served on 127.0.0.1 only, read-only, and loads nothing from the internet.
    Ctrl-C stops it.
    """
    from mlops.reporting.registry_site import SiteBuilder, serve

    store = resolve_store(store_uri)
    if build_only or output:
        directory = output or Path(tempfile.mkdtemp(prefix="mlops-ui-"))
        with one_line_errors():
            index = SiteBuilder(store, directory).build()
        if build_only:
            click.echo(str(index))
            return
    with one_line_errors():
        SiteBuilder(store).render("index.html")  # an unreadable store fails now, with one line
    server, _ = serve(SiteBuilder(store), port)
    click.echo(
        f"registry of {store.uri} at http://127.0.0.1:{server.server_address[1]}/ (read-only; Ctrl-C stops)", nl=True
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
