"""TFDV's statistics through Beam's portable runner on a real local Spark cluster (scripts/beam/cluster.py:
a master, two workers, Beam's Spark job server and a Python worker pool, each its own process) equal the
in-process ones; and how `--beam-runner` and `--beam-option` become Beam's pipeline options."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mlops import config
from mlops.cli.main import main as cli
from mlops.errors import SettingError
from mlops.runners.minio_local import free_port
from mlops.stages import validate

CLUSTER = config.PROJECT_ROOT / "scripts" / "beam" / "cluster.py"


@pytest.mark.parametrize(
    ("runner", "options", "expected"),
    [
        # A named runner's options come first, the user's after (Beam keeps the last of an option given twice).
        ("direct", [], ["--runner=DirectRunner"]),
        (
            "spark",
            ["job_endpoint=spark-js:8099"],
            [
                "--runner=PortableRunner",
                "--job_endpoint=localhost:8099",
                "--environment_type=EXTERNAL",
                "--environment_config=localhost:50000",
                f"--environment_cache_millis={validate.SDK_WORKER_CACHE_MILLIS}",
                "--job_endpoint=spark-js:8099",
            ],
        ),
        ("flink", ["--job_endpoint=flink:8099"], ["--runner=PortableRunner", "--job_endpoint=flink:8099"]),
        # No runner named: the options pass through unchanged (Dataflow, say).
        ("", ["runner=DataflowRunner", "--project=p"], ["--runner=DataflowRunner", "--project=p"]),
    ],
)
def test_a_runner_name_expands_to_its_pipeline_options(runner, options, expected, monkeypatch):
    for name in (config.BEAM_JOB_ENDPOINT.name, config.BEAM_WORKER_POOL.name):
        monkeypatch.delenv(name, raising=False)
    assert validate.beam_options(runner, options) == expected


def test_flink_without_a_job_server_and_bad_options_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(SettingError, match="flink needs your Flink job server: add --beam-option job_endpoint="):
        validate.beam_options("flink", [])
    with pytest.raises(SettingError, match="KEY=VALUE or --KEY=VALUE"):
        validate.beam_options("direct", ["-x"])
    monkeypatch.setenv(config.BEAM_RUNNER.name, "storm")
    with pytest.raises(SettingError, match="MLOPS_BEAM_RUNNER must be one of direct, spark, flink, got 'storm'"):
        config.BEAM_RUNNER.get()
    monkeypatch.delenv(config.BEAM_RUNNER.name)
    monkeypatch.delenv(config.BEAM_OPTIONS.name, raising=False)
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n")
    runner = CliRunner()
    flink = runner.invoke(cli, ["run", "--data", str(data), "--target", "b", "--beam-runner", "flink"])
    assert flink.exit_code == 2 and "no local Flink cluster here" in flink.output
    spaced = runner.invoke(cli, ["run", "--data", str(data), "--target", "b", "--beam-option", "a=b c"])
    assert spaced.exit_code == 2 and "one KEY=VALUE without spaces" in spaced.output


# -- Which statistics go through Beam, and with which options -----------------------------------


def _tool_arguments(monkeypatch, **kwargs) -> list[str]:
    """The tfdv_tool.py arguments run_tfdv_tool would use (the tool itself not run)."""
    seen: list[list[str]] = []
    monkeypatch.setattr(validate, "_run_tool", lambda arguments, out_dir: seen.append(arguments) or {})
    validate.run_tfdv_tool({"train": "/data/train"}, "/out", **kwargs)
    return seen[0]


@pytest.fixture
def no_beam_settings(monkeypatch):
    for setting in (config.TFDV_BEAM_OVER, config.BEAM_OPTIONS, config.BEAM_RUNNER, config.BEAM_JOB_ENDPOINT):
        monkeypatch.delenv(setting.name, raising=False)


def _option_values(arguments: list[str]) -> list[str]:
    return [argument.split("=", 1)[1] for argument in arguments if argument.startswith("--beam-option=")]


def test_a_large_split_goes_through_beams_direct_runner_by_default(no_beam_settings, monkeypatch):
    arguments = _tool_arguments(monkeypatch)
    assert arguments[arguments.index("--beam-over") + 1] == str(config.DEFAULT_TFDV_BEAM_OVER_ROWS)
    assert _option_values(arguments) == ["--runner=DirectRunner"]
    # A runner (or options) named: every split, unless a threshold is set.
    arguments = _tool_arguments(monkeypatch, beam_runner="spark", beam_options_text="job_endpoint=js:8099")
    assert arguments[arguments.index("--beam-over") + 1] == "0"
    assert _option_values(arguments)[-1] == "--job_endpoint=js:8099"
    assert arguments[arguments.index("--beam-runner-label") + 1] == "spark"
    monkeypatch.setenv(config.TFDV_BEAM_OVER.name, "5000")
    arguments = _tool_arguments(monkeypatch, beam_options_text="runner=DataflowRunner project=p")
    assert arguments[arguments.index("--beam-over") + 1] == "5000"
    assert _option_values(arguments) == ["--runner=DataflowRunner", "--project=p"]


@pytest.mark.parametrize(
    "option",
    ["s3_secret_access_key=abc", "--s3_session_token=t", "hdfs_password=p", "service_account_private_key=k"],
)
def test_an_option_that_looks_like_a_credential_is_refused(option, no_beam_settings, monkeypatch):
    with pytest.raises(SettingError, match="looks like a credential.*through their environment"):
        _tool_arguments(monkeypatch, beam_options_text=f"runner=DataflowRunner {option}")


@pytest.mark.tfdv
@pytest.mark.parametrize(
    "options",
    [
        "",  # the default past the threshold: DirectRunner in the tool's process
        # SDK workers in their own processes, which get the pipeline's functions pickled by value, as a
        # cluster's workers do (a function that needs the tool's module globals fails here, as on Spark)
        "--direct_running_mode=multi_processing --direct_num_workers=1",
    ],
)
def test_beams_direct_runner_over_row_groups_gives_the_in_memory_statistics(
    options, no_beam_settings, tmp_path, monkeypatch
):
    """DirectRunner reading the file a row group at a time (here 7 of them) gives the in-memory statistics."""
    monkeypatch.delenv(config.TFDV_SOCKET.name, raising=False)
    split = tmp_path / "train"
    _table(rows=6500).to_parquet(split, index=False, row_group_size=1000)
    in_memory = validate.run_tfdv_tool({"train": str(split)}, str(tmp_path / "memory"))
    monkeypatch.setenv(config.TFDV_BEAM_OVER.name, "6499")
    on_beam = validate.run_tfdv_tool({"train": str(split)}, str(tmp_path / "beam"), beam_options_text=options)
    assert (in_memory["statistics_engine"], on_beam["statistics_engine"]) == ("in-memory", "beam")
    assert on_beam["statistics_runner"] == "DirectRunner"
    assert on_beam["splits"] == in_memory["splits"] == {"train": {"num_examples": 6500}}
    _assert_same_statistics(in_memory, on_beam)


def _assert_same_statistics(expected: dict, actual: dict) -> None:
    """Counts, extremes and top values exact; means and standard deviations to float tolerance."""
    ours = {row["feature"]: row for row in expected["features"]["train"]}
    theirs = {row["feature"]: row for row in actual["features"]["train"]}
    assert theirs.keys() == ours.keys() == {"amount", "ratio", "colour", "count", "label"}
    for feature, row in theirs.items():
        for key, value in ours[feature].items():
            if key in ("mean", "std_dev"):  # sums in another order, across batches or workers
                assert row[key] == pytest.approx(value, rel=1e-9), (feature, key)
            else:
                assert row[key] == value, (feature, key)


# -- The options on the cluster paths: `mlops submit`, `mlops run --runner docker` ---------------


@pytest.fixture
def argo_clients(monkeypatch):
    from test_argo_client import FakeCustomObjects  # the in-memory Kubernetes custom-objects API

    from mlops.cluster import argo_client

    clients = argo_client.Clients(FakeCustomObjects(), None, "mlops-runs")
    monkeypatch.setattr(argo_client, "connect", lambda context, namespace: clients)
    return clients


SUBMIT = ["submit", "--engine", "argo", "--param", "data_uri=demo@1", "--param", "target=t", "--param", "model_name=m"]


def test_submit_passes_the_beam_options_to_the_validate_task(argo_clients, no_beam_settings):
    result = CliRunner().invoke(
        cli,
        [
            *SUBMIT,
            "--beam-runner",
            "spark",
            "--beam-option",
            "job_endpoint=spark-js.beam:8099",
            "--beam-option",
            "environment_type=DOCKER",
        ],
    )
    assert result.exit_code == 0, result.output
    (workflow,) = [obj for (kind, _), obj in argo_clients.custom.objects.items() if kind == "workflows"]
    given = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert given["beam_runner"] == "spark"
    assert given["beam_options"] == "job_endpoint=spark-js.beam:8099 environment_type=DOCKER"
    # The template hands them to the validate container, which hands them to the stage.
    (template,) = [obj for (kind, _), obj in argo_clients.custom.objects.items() if kind == "workflowtemplates"]
    commands = [" ".join(t["container"]["command"]) for t in template["spec"]["templates"] if "container" in t]
    validate_commands = [command for command in commands if '"task":"validate"' in command]
    assert validate_commands and all(
        "beam_runner={{inputs.parameters.beam_runner}}" in command
        and "beam_options={{inputs.parameters.beam_options}}" in command
        for command in validate_commands
    )
    passed = [
        {p["name"]: p["value"] for p in task.get("arguments", {}).get("parameters", [])}
        for t in template["spec"]["templates"]
        for task in t.get("dag", {}).get("tasks", [])
        if task["name"] == "validate"
    ]
    assert passed and all(  # from the run's parameters, through the DAG that holds the task
        task[name] in (f"{{{{workflow.parameters.{name}}}}}", f"{{{{inputs.parameters.{name}}}}}")
        for task in passed
        for name in ("beam_runner", "beam_options")
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--beam-option", "-x"], "KEY=VALUE or --KEY=VALUE"),
        (["--beam-runner", "spark"], "--beam-runner spark on a cluster needs its job server"),
        (["--beam-option", "runner=DataflowRunner", "--beam-option", "s3_secret_access_key=s"], "looks like a"),
        (["--param", "beam_options=--s3_session_token=t"], "looks like a credential"),
    ],
)
def test_submit_refuses_bad_beam_options_in_one_line(arguments, message, argo_clients, no_beam_settings):
    result = CliRunner().invoke(cli, [*SUBMIT, *arguments])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not argo_clients.custom.objects  # nothing applied or created


@pytest.mark.parametrize(
    ("beam", "outside"),
    [
        ({}, False),
        ({"beam_runner": "direct"}, False),
        ({"beam_options": "--runner=DirectRunner --direct_num_workers=2"}, False),
        ({"beam_runner": "spark"}, True),
        ({"beam_options": "job_endpoint=flink:8099"}, True),
        ({"beam_options": "runner=DataflowRunner project=p"}, True),
    ],
)
def test_docker_tasks_get_the_hosts_network_only_for_a_runner_outside(beam, outside, tmp_path, monkeypatch):
    from mlops.runners import docker as docker_runner

    class Engine:
        def close(self):
            pass

    monkeypatch.setattr(docker_runner, "docker_client", Engine)
    monkeypatch.setattr(docker_runner, "check_images", lambda client: None)
    monkeypatch.setattr(docker_runner, "share_run_dir", lambda run_dir: None)
    monkeypatch.setattr(docker_runner, "_bind", lambda source, read_only: str(source))
    store = tmp_path / "store"
    settings = docker_runner.container_settings(tmp_path / "run", {"store_uri": str(store), **beam})
    assert settings.container_arguments()["network_mode"] == ("host" if outside else "none")
    if outside:
        with pytest.raises(docker_runner.DockerRunError, match="needs a filesystem store"):
            docker_runner.container_settings(tmp_path / "run", {"store_uri": "s3://mlops/store", **beam})


# -- The real cluster ----------------------------------------------------------------------


def _cluster(command: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CLUSTER), command], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    """`make beam-cluster-up` on free loopback ports, in a state directory of its own; its settings."""
    spec = importlib.util.spec_from_file_location("beam_cluster", CLUSTER)
    cluster = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cluster)
    fetched = cluster.runtime_dir()
    if not (fetched / "manifest.json").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the Beam runtime is missing at {fetched} (CI must run `make beam-runtime`)")
        pytest.skip(f"the Beam runtime is missing at {fetched}: run `make beam-runtime`")
    settings = {
        config.BEAM_STATE_DIR.name: str(tmp_path_factory.mktemp("beam-state")),
        config.BEAM_JOB_ENDPOINT.name: f"localhost:{free_port()}",
        config.BEAM_WORKER_POOL.name: f"localhost:{free_port()}",
        config.SPARK_MASTER_PORT.name: str(free_port()),
    }
    env = {**os.environ, **settings}
    started = _cluster("up", env)
    try:
        assert started.returncode == 0, started.stderr
        yield settings
    finally:
        stopped = _cluster("down", env)
        assert stopped.returncode == 0, stopped.stderr


def _table(rows: int = 3000, seed: int = 7) -> pd.DataFrame:
    """Numbers (one with gaps and zeros), a category with gaps, an integer and a label."""
    rng = np.random.default_rng(seed)
    amount = rng.normal(50, 12, rows).round(3)
    amount[rng.random(rows) < 0.05] = np.nan
    amount[rng.random(rows) < 0.03] = 0.0
    colour = rng.choice(["red", "green", "blue", "teal"], rows).astype(object)
    colour[rng.random(rows) < 0.04] = None
    return pd.DataFrame(
        {
            "amount": amount,
            "ratio": rng.random(rows),
            "colour": colour,
            "count": rng.integers(0, 9, rows),
            "label": rng.choice(["yes", "no"], rows),
        }
    )


@pytest.mark.tfdv
@pytest.mark.beam
def test_statistics_on_spark_equal_the_in_process_ones(spark_cluster, tmp_path, monkeypatch):
    split = tmp_path / "train"
    _table().to_parquet(split, index=False)
    for name in (
        config.TFDV_BEAM_OVER.name,
        config.BEAM_OPTIONS.name,
        config.BEAM_RUNNER.name,
        config.TFDV_SOCKET.name,
    ):
        monkeypatch.delenv(name, raising=False)
    in_process = validate.run_tfdv_tool({"train": str(split)}, str(tmp_path / "memory"))
    # A schema that no longer admits one of the colours: both engines must find the same anomaly.
    strict = tmp_path / "strict.pbtxt"
    strict.write_text((tmp_path / "memory" / "schema.pbtxt").read_text().replace('  value: "teal"\n', ""))
    expected = validate.run_tfdv_tool({"train": str(split)}, str(tmp_path / "memory-strict"), str(strict))

    for name, value in spark_cluster.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(config.BEAM_RUNNER.name, "spark")
    on_spark = validate.run_tfdv_tool({"train": str(split)}, str(tmp_path / "spark"), str(strict))

    assert (in_process["statistics_engine"], on_spark["statistics_engine"]) == ("in-memory", "beam")
    assert on_spark["statistics_runner"] == "spark"
    assert on_spark["splits"] == in_process["splits"] == {"train": {"num_examples": 3000}}
    memory_features = {row["feature"]: row for row in in_process["features"]["train"]}
    spark_features = {row["feature"]: row for row in on_spark["features"]["train"]}
    assert spark_features.keys() == memory_features.keys() == {"amount", "ratio", "colour", "count", "label"}
    for feature, theirs in spark_features.items():
        ours = memory_features[feature]
        for key, value in ours.items():
            if key in ("mean", "std_dev"):  # sums in another order, across workers
                assert theirs[key] == pytest.approx(value, rel=1e-9), (feature, key)
            else:  # counts, extremes, the top value: exact
                assert theirs[key] == value, (feature, key)
    assert expected["anomalies"] and on_spark["anomalies"] == expected["anomalies"]
    assert any(row["feature"] == "colour" for row in on_spark["anomalies"])

    # It ran on the cluster: the master gave the job's application executors on both workers.
    master_log = Path(spark_cluster[config.BEAM_STATE_DIR.name], "master.log").read_text()
    assert len(set(re.findall(r"Launching executor \S+ on worker (\S+)", master_log))) == 2
