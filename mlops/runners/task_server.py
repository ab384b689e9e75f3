"""A warm start for local tasks: a fork server that has already imported the stages' libraries.

Under kfp.local's SubprocessRunner every task is a fresh ``python -m
kfp.dsl.executor_main`` process, and most of a small task's time is importing
pandas, scikit-learn, SciPy and skops (1.5-2 s each, on every one of a run's
dozen tasks) and tearing them down again. The local runner (mlops/runners/local.py)
therefore starts this server beside a run, like the TFDV sidecar. It imports
those libraries once and then waits; it never runs task code itself.

A task that finds the server's socket (``MLOPS_TASK_SERVER``, set only by the
local runner) hands its whole executor invocation over as its first act
(:func:`hand_over`, called from components.adapter.warm_start): its
command-line arguments, environment, working directory and standard output and
error (the file descriptors themselves). The server forks a child that takes
them on and runs kfp's own ``executor_main`` exactly as the task process would
have: same inputs, same executor, the same function from the task's own
component file, writing the same executor output; the task process waits and
exits with the child's status. Each task is still a process of its own, forked
from a state where nothing but imports has happened, so nothing leaks from one
task to the next; kfp.local still orders, caches and connects the tasks.

Without the socket (a cluster, a container, ``MLOPS_TASK_SERVER=off`` for the
runner, or a server that cannot be reached) the task simply runs in its own
process, as before.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

from mlops import config

# Libraries the stages import, loaded once by the server (not by the tasks it forks).
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.csv",
    "pyarrow.parquet",
    "scipy.stats",
    "sklearn.base",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.neighbors",
    "sklearn.metrics",
    "sklearn.dummy",
    "sklearn.calibration",
    "sklearn.inspection",
    "skops.io",
    "yaml",
    "components.adapter",
    "components.artifact_types",
    "mlops.stages.ingest",
    "mlops.stages.split",
    "mlops.stages.prepare",
    "mlops.stages.train",
    "mlops.stages.evaluate",
    "mlops.stages.register",
    "mlops.reporting.report",
    "mlops.stages.drift",
    "mlops.stages.diagnostics",
    "mlops.store.model_io",
    "mlops.stages.validate",
    "mlops.stages.monitor",
    "mlops.reporting.monitor_report",
    "mlops.store",
    "mlops.store.datasets",
    "mlops.store.registry",
)
_HELLO = b"H"
# How long a task waits for the server to take its request before running in its own process.
HELLO_TIMEOUT_SECONDS = 120.0
# Set in a forked child, so the task function it runs does not hand itself over again.
_IN_CHILD = False


class Unavailable(Exception):
    """The server cannot take the task (not listening, gone, too slow to answer)."""


def in_child() -> bool:
    """Whether this process is a task the server forked (which must not hand itself over again)."""
    return _IN_CHILD


def _send_message(connection: socket.socket, payload: dict, fds: list[int] | None = None) -> None:
    body = json.dumps(payload).encode("utf-8")
    header = struct.pack(">Q", len(body))
    if fds:
        socket.send_fds(connection, [header], fds)
    else:
        connection.sendall(header)
    connection.sendall(body)


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = connection.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _receive_message(connection: socket.socket, max_fds: int = 0) -> tuple[dict, list[int]]:
    fds: list[int] = []
    if max_fds:
        header, fds, _, _ = socket.recv_fds(connection, 8, max_fds)
        if len(header) < 8:  # a header split over two reads
            header += _receive_exactly(connection, 8 - len(header))
    else:
        header = _receive_exactly(connection, 8)
    if len(header) != 8:
        raise ConnectionError("the peer closed the connection")
    (size,) = struct.unpack(">Q", header)
    return json.loads(_receive_exactly(connection, size)), fds


# The task's side -----------------------------------------------------------------------------


def hand_over(socket_path: str) -> int:
    """Run this task process's executor invocation in a child of the server; return its exit status.

    Raises Unavailable (before anything was handed over) when the server cannot
    take it; the caller then runs the task itself.
    """
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            connection.connect(socket_path)
            connection.settimeout(HELLO_TIMEOUT_SECONDS)  # the server may still be importing
            if connection.recv(1) != _HELLO:
                raise Unavailable("the task server closed the connection")
        except (OSError, socket.timeout) as error:
            raise Unavailable(str(error)) from None
        connection.settimeout(None)  # a task runs as long as it needs
        sys.stdout.flush()
        sys.stderr.flush()
        _send_message(
            connection,
            {"argv": sys.argv, "cwd": os.getcwd(), "environ": dict(os.environ)},
            fds=[sys.stdout.fileno(), sys.stderr.fileno()],
        )
        try:
            answer, _ = _receive_message(connection)
        except (OSError, ConnectionError, ValueError):
            print("[task server] the forked task ended without an exit status (killed?)", file=sys.stderr, flush=True)
            return 1
        return int(answer["status"])
    finally:
        connection.close()


# The server's side ---------------------------------------------------------------------------


def _run_child(connection: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: become the task process and run kfp's executor; never returns."""
    global _IN_CHILD
    status = 1
    try:
        _IN_CHILD = True
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["environ"])
        os.environ.pop(config.TASK_SERVER.name, None)  # this process IS the task: it must not hand itself over again
        os.chdir(request["cwd"])
        sys.argv = list(request["argv"])
        from kfp.dsl import executor_main

        try:
            executor_main.executor_main()
            status = 0
        except SystemExit as leaving:
            status = leaving.code if isinstance(leaving.code, int) else (0 if leaving.code is None else 1)
            if isinstance(leaving.code, str):
                print(leaving.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - as the interpreter would: the traceback, then status 1
            import traceback

            traceback.print_exc()
            status = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            _send_message(connection, {"status": status})
        finally:
            os._exit(status)  # no interpreter teardown: the parent process owns everything shared


def peer_is_own_user(connection: socket.socket) -> bool:
    """Whether the process at the other end runs as this server's user (SO_PEERCRED, checked by
    the kernel): the server runs whatever argv and environment a client sends, so no other user
    may be a client, whatever the socket file's mode. Without SO_PEERCRED (not Linux): refused."""
    if not hasattr(socket, "SO_PEERCRED"):
        return False
    try:
        credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    _, uid, _ = struct.unpack("3i", credentials)
    return uid == os.getuid()


def serve(socket_path: str, parent: int | None = None) -> None:
    """Listen first (tasks that come early wait in the backlog), import, then fork one child per task."""
    import importlib

    os.environ["_KFP_RUNTIME"] = "true"  # kfp's light import, as in a task process
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    server.listen(64)
    for module in PRELOAD:
        importlib.import_module(module)
    import matplotlib

    matplotlib.use("Agg")
    importlib.import_module("matplotlib.pyplot")
    server.settimeout(1.0)  # no threads here (they would not survive a fork): poll the parent instead
    while True:
        while True:  # reap finished children
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if parent and not os.path.exists(f"/proc/{parent}"):
            os._exit(0)
        try:
            connection, _ = server.accept()
        except socket.timeout:
            continue
        if not peer_is_own_user(connection):
            connection.close()  # the socket's folder is private, but a task must also prove who runs it
            continue
        connection.settimeout(10.0)
        try:
            connection.sendall(_HELLO)
            request, fds = _receive_message(connection, max_fds=2)
        except (OSError, ConnectionError, ValueError):
            connection.close()  # the task gave up waiting and runs itself
            continue
        connection.settimeout(None)
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            connection.close()
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            server.close()
            _run_child(connection, request, fds)
        for fd in fds:
            os.close(fd)
        connection.close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="The warm fork server for local pipeline tasks.")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--parent", type=int, help="exit when this process is gone")
    args = parser.parse_args(argv)
    serve(args.socket, args.parent)
    return 0


if __name__ == "__main__":
    # Serve from the module under its own name (not __main__), so a forked child's
    # in_child() is the one components.adapter sees.
    from mlops.runners.task_server import main as serve_main

    sys.exit(serve_main())
