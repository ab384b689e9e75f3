"""The `mlops` command line: one entry point, one module per subcommand."""

import click

from pipelines.commands.compile import compile_command
from pipelines.commands.data import data
from pipelines.commands.models import models
from pipelines.commands.monitor import monitor
from pipelines.commands.run import run
from pipelines.commands.schema import schema
from pipelines.commands.schedules import schedules
from pipelines.commands.submit import submit


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Kubeflow-native MLOps: train, validate, evaluate and register models."""


main.add_command(run)
main.add_command(data)
main.add_command(schema)
main.add_command(models)
main.add_command(monitor)
main.add_command(compile_command)
main.add_command(submit)
main.add_command(schedules)

if __name__ == "__main__":
    main()
