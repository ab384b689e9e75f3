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
