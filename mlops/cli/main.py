"""The `mlops` command line: one entry point, one module per subcommand."""

import os
import sys

import click

from mlops.cli.compile import compile_command
from mlops.cli.data import data
from mlops.cli.gitops import gitops
from mlops.cli.models import models
from mlops.cli.monitor import monitor
from mlops.cli.options import verbose_option, with_verbose
from mlops.cli.run import run
from mlops.cli.runs import runs
from mlops.cli.schedules import schedules
from mlops.cli.schema import schema
from mlops.cli.submit import submit
from mlops.cli.ui import ui
from mlops.errors import MESSAGE_LIMIT, printable


class _Group(click.Group):
    """The root group: click's own usage errors quote what was typed ("Got unexpected extra argument
    (...)", "'...' is not one of ..."); they pass through mlops.errors.printable like our messages."""

    @staticmethod
    def _printable(error: click.ClickException) -> click.ClickException:
        # click declares message Final; rewriting it in place keeps the exception's context and usage line.
        error.message = printable(error.message, MESSAGE_LIMIT)  # type: ignore[misc]
        return error

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as error:
            raise self._printable(error) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            raise self._printable(error) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@verbose_option
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
main.add_command(ui)
main.add_command(runs)
main.add_command(gitops)
with_verbose(main)  # every command, at any depth, takes --verbose too


def entry() -> None:
    """The `mlops` executable: the click group, then a prompt, clean exit.

    Arrow's native thread pools can abort the process while the interpreter tears
    down ("terminate called without an active exception"), turning a one-line
    error's exit status 1 into a crash. Every file and temporary directory is
    closed by the commands themselves, so the process leaves with os._exit once
    click is done and the output is flushed.
    """
    try:
        main()
        code = 0
    except SystemExit as leaving:
        if isinstance(leaving.code, str):
            print(leaving.code, file=sys.stderr)
        code = leaving.code if isinstance(leaving.code, int) else (0 if leaving.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
