"""The `mlops` registry and data commands (no pipeline run: the registry is filled directly)."""

import json

import pytest
from click.testing import CliRunner

from mlops.cli.main import main
from mlops.store.registry import ModelRegistry


@pytest.fixture
def mlops(file_store):
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [*args, "--store", file_store.uri])


@pytest.fixture
def registry(file_store):
    registry = ModelRegistry(file_store)
    for score in (0.8, 0.9):
        registry.register(
            "wine",
            {"model.joblib": b"m"},
            metrics={"test_f1_macro": score},
            lineage={"params": {"metric": "f1_macro"}, "data": {"ref": "wine@abc", "content_hash": "h"}},
        )
    registry.set_alias("wine", "champion", 1)
    return registry


def test_models_list_table_and_json(mlops, registry):
    table = mlops("models", "list")
    assert table.exit_code == 0
    assert [line.split()[:3] for line in table.output.splitlines()[1:]] == [
        ["wine", "1", "champion"],
        ["wine", "2", "-"],
    ]
    rows = json.loads(mlops("models", "list", "--json").output)
    assert {"name", "version", "aliases", "metrics", "data_hash", "created_at"} <= set(rows[0])
    assert "lineage" not in rows[0] and rows[0]["data_version"] == "wine@abc"


def test_models_show_promote_and_tag(mlops, registry):
    shown = json.loads(mlops("models", "show", "wine@champion").output)
    assert shown["version"] == 1 and shown["lineage"]["data"]["ref"] == "wine@abc"
    promoted = mlops("models", "promote", "wine@2")
    assert promoted.exit_code == 0 and promoted.output.strip() == "wine@champion: v1 -> v2"
    assert registry.resolve("wine@champion").version == 2
    assert mlops("models", "promote", "wine@1", "--alias", "challenger").exit_code == 0
    assert registry.get("wine", 1).aliases == ["challenger"]
    tagged = mlops("models", "tag", "wine@2", "owner=ml-team", "stage=prod")
    assert json.loads(tagged.output) == {"owner": "ml-team", "stage": "prod"}
    assert json.loads(mlops("models", "tag", "wine@2", "stage=").output) == {"owner": "ml-team"}


@pytest.mark.parametrize(
    "args, message",
    [
        (("models", "show", "wine@7"), "model wine@7 not found"),
        (("models", "promote", "wine@champion-typo"), "no alias 'champion-typo'"),
        (("models", "promote", "wine@1", "--alias", "bad/alias"), "invalid alias name 'bad/alias'"),
        (("models", "reproduce", "wine@1"), "the lineage of wine@1 lacks data.target, task, split.validation_fraction"),
    ],
)
def test_registry_errors_are_one_line(mlops, registry, args, message):
    result = mlops(*args)
    assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1, result.output


def test_tag_usage_error(mlops, registry):
    result = mlops("models", "tag", "wine@1", "novalue")
    assert result.exit_code == 2 and "tags are KEY=VALUE" in result.output


def test_data_push_list_show(mlops, demo_data, tmp_path):
    pushed = mlops(
        "data", "push", str(demo_data["wine"]), "--name", "wine", "--pointer", str(tmp_path / "wine.data.yaml")
    )
    assert pushed.exit_code == 0 and "new version" in pushed.output
    again = mlops("data", "push", str(demo_data["wine"]), "--name", "wine")
    assert "unchanged: same content as the existing version" in again.output
    listed = json.loads(mlops("data", "list", "--json").output)
    assert len(listed) == 1 and listed[0]["rows"] == 178
    shown = mlops("data", "show", "wine@latest")
    assert shown.exit_code == 0 and "od280_od315_of_diluted_wines" in shown.output
    missing = mlops("data", "show", "beer@latest")
    assert missing.exit_code == 1 and "no data set 'beer'" in missing.output


def test_schema_pull_refuses_without_a_baseline(mlops, tmp_path):
    result = mlops("schema", "pull", "wine", "--output", str(tmp_path / "wine.pbtxt"))
    assert result.exit_code == 1 and "no baseline schema for 'wine' yet" in result.output


# --verbose: debug logging to stderr, quiet by default, no credential. --------------------------


def _all_commands(command, path=("mlops",)):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _all_commands(sub, (*path, name))


def test_every_command_takes_verbose():
    missing = [
        " ".join(path)
        for path, command in _all_commands(main)
        if not any("--verbose" in getattr(param, "opts", ()) for param in command.params)
    ]
    assert missing == []


def _cli(*args, cwd, env=None):
    import subprocess
    import sys
    from pathlib import Path

    command = [str(Path(sys.executable).with_name("mlops")), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_verbose_on_the_root_or_the_command_logs_debug_lines_and_without_it_stderr_is_quiet(tmp_path, demo_data):
    store = (tmp_path / "store").as_uri()
    quiet = _cli("data", "push", str(demo_data["wine"]), "--name", "wine", "--store", store, cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    for args in (("-v", "data", "list"), ("data", "list", "--verbose"), ("--verbose", "models", "list")):
        result = _cli(*args, "--store", store, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"debug: mlops.store: store {store}, as role reader" in result.stderr.splitlines(), result.stderr
        assert "debug:" not in result.stdout  # the command's output is unchanged
    pushed = _cli("data", "push", str(demo_data["wine"]), "--name", "wine", "--store", store, "-v", cwd=tmp_path)
    assert f"debug: mlops.stages.ingest: reading {demo_data['wine']}" in pushed.stderr
    assert "debug: mlops.stages.ingest: demo-wine.csv: 178 rows x 14 columns" in pushed.stderr


def test_verbose_logs_no_credential(tmp_path):
    import os

    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "hunter2-secret", "MLOPS_HTTP_TIMEOUT_SECONDS": "5"}
    uri = "https://alice:s3cret-pass@127.0.0.1:9/x.csv?X-Amz-Signature=hunter2-secret"
    result = _cli("-v", "data", "push", uri, "--name", "x", "--store", (tmp_path / "s").as_uri(), cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert "debug: mlops.stages.ingest: reading https://REDACTED@127.0.0.1:9/x.csv?REDACTED" in result.stderr
    assert "s3cret-pass" not in result.stderr + result.stdout and "hunter2" not in result.stderr + result.stdout


def test_the_log_handler_scrubs_what_a_careless_line_would_print(monkeypatch, capsys):
    """Even a debug line that formats a raw URI or a secret's value prints neither."""
    import logging

    from mlops.cli.options import configure_logging

    monkeypatch.setenv("MLOPS_PIPELINE_SECRET_ACCESS_KEY", "minio-secret-key-1")
    monkeypatch.setenv("MLOPS_DATA_URI", "s3://bucket/data.csv?token=abc123")
    configure_logging(True)
    try:
        logging.getLogger("mlops.test").debug(
            "key %s from %s and %s", "minio-secret-key-1", "https://bob:pw@host/x", "s3://bucket/data.csv?token=abc123"
        )
    finally:
        configure_logging(False)
    logged = capsys.readouterr().err
    assert logged == "debug: mlops.test: key *** from https://REDACTED@host/x and s3://bucket/data.csv?REDACTED\n"
    logging.getLogger("mlops.test").debug("not shown")
    assert capsys.readouterr().err == ""
