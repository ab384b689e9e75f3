"""`mlops compile`: write the pipeline spec YAML files."""

from pathlib import Path

import click

from mlops.cli.options import one_line_errors
from pipelines.compile import COMPILED_DIR, compile_all


@click.command("compile")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=COMPILED_DIR,
    show_default=True,
    help="Where to write the compiled specs.",
)
def compile_command(output_dir: Path):
    """Compile the pipelines to KFP pipeline spec YAML, and each spec to an Argo WorkflowTemplate.

    An IR feature the Argo translation cannot carry fails here, with one line naming it.
    """
    with one_line_errors():
        written = compile_all(output_dir)
    for path in written:
        click.echo(str(path))
