"""Options and helpers shared by several subcommands, and the one CLI error idiom.

Misuse of a command is click's usage error (exit 2). Everything the user can
act on (bad input, bad data, an unreachable store, a bad setting, a failed
run) is an MlopsError and becomes ``Error: <one line>`` with exit status 1,
no traceback (:func:`one_line_errors`).
"""

import contextlib
import json

import click

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
