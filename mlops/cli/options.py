"""Options and helpers shared by several subcommands, and the one CLI error idiom.

Misuse of a command is click's usage error (exit 2). Everything the user can
act on (bad input, bad data, an unreachable store, a bad setting, a failed
run) is an MlopsError and becomes ``Error: <one line>`` with exit status 1,
no traceback (:func:`one_line_errors`).

Diagnostics go through :mod:`logging` (a module's ``logging.getLogger(__name__)``);
the commands' own output and progress lines stay plain ``click.echo``. Quiet by
default; ``--verbose`` (:data:`verbose_option`, on the root group and on every
command) shows this project's debug lines on stderr, scrubbed of credentials.
"""

import contextlib
import json
import logging
import re
import subprocess
import sys

import click

from mlops import config
from mlops.errors import MlopsError

store_option = click.option(
    "--store",
    "store_uri",
    envvar="MLOPS_STORE",
    default=None,
    metavar="URI",
    help="file:///abs/path or s3://BUCKET/PREFIX (env MLOPS_STORE; default ./.mlops).",
)


@contextlib.contextmanager
def one_line_errors(*extra_types):
    """Domain failures (every MlopsError, and ``extra_types``) become one CLI error line, no traceback."""
    try:
        yield
    except (MlopsError, *extra_types) as error:
        raise click.ClickException(" ".join(str(error).split())) from None


@contextlib.contextmanager
def usage_errors():
    """MlopsErrors about how a command was called (its parameters, its input files) are usage
    errors: click prints the usage line and exits with status 2."""
    try:
        yield
    except MlopsError as error:
        raise click.UsageError(" ".join(str(error).split())) from None


def in_forked_child(function, *args):
    """``function(*args)`` run in a forked child; its result, or its exception, comes back pickled.

    For work that imports large libraries or reads data in a process that must stay
    small afterwards (the CLI of a run waits through the whole run). Without fork
    (or if the child dies without an answer) the call runs here.
    """
    import os
    import pickle

    if not hasattr(os, "fork"):
        return function(*args)
    readable, writable = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - reported through the pipe
        os.close(readable)
        try:
            try:
                answer = pickle.dumps((True, function(*args)))
            except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
                try:
                    answer = pickle.dumps((False, error))
                except Exception:  # noqa: BLE001 - an exception that does not pickle
                    answer = pickle.dumps((False, RuntimeError(f"{type(error).__name__}: {error}")))
            with os.fdopen(writable, "wb") as pipe:
                pipe.write(answer)
        finally:
            os._exit(0)
    os.close(writable)
    with os.fdopen(readable, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    try:
        succeeded, value = pickle.loads(answer)
    except Exception:  # noqa: BLE001 - no answer (the child was killed) or one that does not unpickle
        return function(*args)
    if not succeeded:
        raise value
    return value


def keep_secret_out_of_parameters(data_uri: str) -> str:
    """The data URI a run's parameters may record: without credentials.

    When ``data_uri`` carries a secret (user-info, a presigned query), the full URI
    goes to the run's tasks through the environment (mlops.data.uris.SECRET_URI_ENV)
    and the parameter, which KFP records, logs and shows, gets the redacted form.
    """
    import os

    from mlops.data.uris import SECRET_URI_ENV, carries_secret, redact

    if not carries_secret(data_uri):
        return data_uri
    os.environ[SECRET_URI_ENV] = data_uri
    return redact(data_uri)


def resolve_store(store_uri: str | None, role: str = "reader"):
    """Open the store as ``role`` (mlops.store.roles), turning its errors into a one-line CLI error."""
    from mlops.config import default_store_uri
    from mlops.store import open_store

    with one_line_errors():
        return open_store(store_uri or default_store_uri(), role=role)


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


def code_version() -> str:
    """The git commit of this code, with ``-dirty`` when the work tree has changes."""
    root = str(config.PROJECT_ROOT)
    try:
        commit = subprocess.run(
            ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


# -- Logging ------------------------------------------------------------------------------

# The packages whose debug lines --verbose shows. Other libraries stay at Python's default (warnings
# only): botocore's and urllib3's debug lines carry request headers, which may hold a signature.
LOGGED_PACKAGES = ("mlops", "components", "pipelines")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def scrub(text: str) -> str:
    """``text`` without credentials: every URI redacted (user-info and query string,
    mlops.data.uris.redact), and the value of every variable that holds one replaced
    (mlops.config.secret_values)."""
    from mlops.data.uris import redact

    text = _URI.sub(lambda match: redact(match.group(0)), text)
    for value in config.secret_values():
        text = text.replace(value, "***")
    return text


class _Scrubbed(logging.Filter):
    """Every record that reaches the handler, its message formatted and scrubbed (:func:`scrub`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        return True


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (click's test runner swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


_HANDLER = _Stderr()
_HANDLER.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
_HANDLER.addFilter(_Scrubbed())


def configure_logging(verbose: bool) -> None:
    """Verbose: this project's loggers at DEBUG, on stderr, scrubbed. Not verbose: as Python leaves
    them (warnings only). One handler, however often it is called."""
    for name in LOGGED_PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG if verbose else logging.NOTSET)
        if verbose and _HANDLER not in logger.handlers:
            logger.addHandler(_HANDLER)
        elif not verbose and _HANDLER in logger.handlers:
            logger.removeHandler(_HANDLER)
        logger.propagate = not verbose  # one line each, not one more through the root's handlers


def verbose_callback(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """A --verbose option's callback: debug logging on when the flag is given."""
    if value:
        configure_logging(True)
    return value


VERBOSE_HELP = "Debug logging to stderr (credentials scrubbed)."
# The one --verbose: on the root group (`mlops --verbose data list`) and, through with_verbose, on
# every command (`mlops data list --verbose`). It sets up logging as it is parsed.
verbose_option = click.option(
    "--verbose", "-v", is_flag=True, expose_value=False, is_eager=True, callback=verbose_callback, help=VERBOSE_HELP
)


def with_verbose(command: click.Command) -> click.Command:
    """``command`` and every subcommand under it with :data:`verbose_option` (a command with its own
    ``--verbose``, `mlops run`'s, keeps it: it calls :func:`configure_logging` too)."""
    if not any("--verbose" in getattr(param, "opts", ()) for param in command.params):
        verbose_option(command)
    for sub in getattr(command, "commands", {}).values():
        with_verbose(sub)
    return command


# -- Beam (TFDV's statistics on a Beam runner, docs/beam.md) ---------------------------------

beam_runner_option = click.option(
    "--beam-runner",
    type=click.Choice(config.BEAM_RUNNERS),
    envvar=config.BEAM_RUNNER.name,
    default=None,
    help="Compute TFDV's statistics with Beam on this runner: spark (the local cluster of `make beam-cluster-up`, "
    "or another job server with --beam-option job_endpoint=HOST:PORT), flink (your job server: "
    "--beam-option job_endpoint=HOST:PORT) or direct (env MLOPS_BEAM_RUNNER; default: in memory).",
)
beam_option_option = click.option(
    "--beam-option",
    "beam_option_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="A Beam pipeline option, after the runner's own (repeatable; added to MLOPS_BEAM_OPTIONS), e.g. "
    "job_endpoint=HOST:PORT, or a whole other runner: runner=DataflowRunner project=P region=R.",
)


def use_beam_options(runner: str | None, values: tuple[str, ...]) -> dict[str, str]:
    """The run's Beam runner and options as the pipeline parameters ``beam_runner`` and ``beam_options``
    (with MLOPS_BEAM_RUNNER and MLOPS_BEAM_OPTIONS), checked now: a usage error before any work, for a
    malformed option, an unknown runner or an option that looks like a credential (parameters are
    recorded and logged)."""
    from mlops.stages.validate import beam_options, secret_free

    with usage_errors():
        for value in values:
            if not value.strip() or len(value.split()) != 1:
                raise MlopsError(f"--beam-option takes one KEY=VALUE without spaces, got {value!r}")
        options = [*config.BEAM_OPTIONS.get().split(), *values]
        runner = runner or config.BEAM_RUNNER.get()
        beam_options(runner, secret_free(options))
    return {"beam_runner": runner, "beam_options": " ".join(options)}
