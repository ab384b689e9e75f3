"""The warm task server (mlops/runners/task_server.py): tasks run in children forked from it, with their
own outputs and exit status; without it they run as before."""

import json
import os
from pathlib import Path

import pytest
from kfp import dsl, local

from mlops import config
from mlops.runners.local import task_server


@dsl.component(base_image="python:3.11")
def parent_command(marker: str) -> str:
    """The command line of the process this task's body ran under, and an env var it saw."""
    from components import adapter as kfp_adapter

    kfp_adapter.warm_start()
    import json
    import os

    with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
        command = handle.read().replace(b"\0", b" ").decode()
    return json.dumps([command, os.environ.get(marker, "")])


@dsl.component(base_image="python:3.11")
def fails(status: int) -> str:
    from components import adapter as kfp_adapter

    kfp_adapter.warm_start()
    raise SystemExit(status)


@pytest.fixture
def local_runner(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), raise_on_error=True)


def test_a_task_runs_in_a_child_forked_from_the_server(local_runner, monkeypatch):
    monkeypatch.setenv("MLOPS_TEST_MARKER", "seen")
    with task_server("subprocess"):
        socket_path = Path(config.TASK_SERVER.get())
        assert socket_path.parent.stat().st_mode & 0o077 == 0  # a private directory
        command, seen = json.loads(parent_command(marker="MLOPS_TEST_MARKER").output)
    assert "mlops.runners.task_server" in command and seen == "seen"
    assert config.TASK_SERVER.get() == "" and not socket_path.exists()  # gone with the run


def test_a_failing_task_fails_with_its_status(local_runner):
    with task_server("subprocess"), pytest.raises(RuntimeError, match="FAILURE"):
        fails(status=3)


def test_without_a_reachable_server_a_task_runs_itself(local_runner, monkeypatch, tmp_path):
    monkeypatch.setenv(config.TASK_SERVER.name, str(tmp_path / "no-such.sock"))
    command, _ = json.loads(parent_command(marker="X").output)
    assert "mlops.runners.task_server" not in command


def test_off_turns_the_server_off_and_tasks_do_not_see_it(local_runner, monkeypatch):
    monkeypatch.setenv(config.TASK_SERVER.name, "off")
    with task_server("subprocess"):
        assert config.TASK_SERVER.name not in os.environ
        command, _ = json.loads(parent_command(marker="X").output)
    assert "mlops.runners.task_server" not in command and os.environ[config.TASK_SERVER.name] == "off"
