"""`mlops runs list|show|compare` on local runs: real `mlops run`s (a one-candidate search space),
one that succeeds, one with another seed on data with one byte changed, and one that fails."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mlops.cli.main import main
from mlops.store import StoreError
from mlops.store.fs import FileStore
from mlops.store.runs import compare_runs, list_runs, run_record, write_run

MLOPS = str(Path(sys.executable).with_name("mlops"))
ONE_CANDIDATE = "metric: auto\ncandidates:\n  classification:\n    logistic_regression: {C: [1.0]}\n"


def mlops(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([MLOPS, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_data) -> dict:
    """Three runs in one store, oldest first: first (seed 42), changed (seed 7, one byte of the data
    changed), failed (values the curated schema refuses); their ids."""
    work = tmp_path_factory.mktemp("runs")
    (work / "params.yaml").write_text(ONE_CANDIDATE)
    text = Path(demo_data["wine"]).read_text()
    (work / "v2").mkdir()
    header, first_row, rest = text.split("\n", 2)
    changed_row = first_row.replace("14.23", "14.24", 1)
    assert changed_row != first_row
    (work / "v2" / "demo-wine.csv").write_text(f"{header}\n{changed_row}\n{rest}")
    (work / "bad").mkdir()
    wine = pd.read_csv(demo_data["wine"])
    wine.assign(alcohol=wine["alcohol"].map(lambda v: f"{v} %")).to_csv(work / "bad" / "demo-wine.csv", index=False)
    common = ["--target", "target", "--params", "params.yaml"]
    outcomes = [
        mlops("run", "--data", str(demo_data["wine"]), *common, cwd=work),
        mlops("run", "--data", "v2/demo-wine.csv", *common, "--seed", "7", cwd=work),
        mlops("run", "--data", "bad/demo-wine.csv", *common, cwd=work),
    ]
    assert [o.returncode for o in outcomes] == [0, 0, 1], [o.stderr for o in outcomes]
    listed = list_runs(FileStore(work / ".mlops"))
    assert len(listed) == 3
    ids = [record["id"] for record in reversed(listed)]
    return {"work": work, "first": ids[0], "changed": ids[1], "failed": ids[2], "error": outcomes[2].stderr}


def test_list_shows_every_local_run_newest_first_with_the_failed_one_and_its_reason(runs):
    listed = mlops("runs", "list", cwd=runs["work"])  # no --context: the local runs
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [runs["failed"], runs["changed"], runs["first"]]
    assert lines[0].split()[2] == "failed" and "validate: data validation against the curated schema" in lines[0]
    assert lines[2].split()[2] == "succeeded" and lines[2].rstrip().endswith("demo-wine@1")
    rows = json.loads(
        mlops("runs", "list", "--engine", "local", "--model", "demo-wine", "--json", cwd=runs["work"]).stdout
    )
    assert [(r["id"], r["state"]) for r in rows] == [
        (runs["failed"], "failed"),
        (runs["changed"], "succeeded"),
        (runs["first"], "succeeded"),
    ]
    # the failed run's record carries the same one-line reason the command printed
    assert rows[0]["reason"] in runs["error"] and rows[0]["reason"].startswith("validate: ")
    assert rows[0]["data"]["version"].startswith("demo-wine@")  # ingest ran: its data version is known
    assert rows[0]["model_version"] is None and rows[0]["metrics"] == {}
    assert mlops("runs", "list", "--model", "other", cwd=runs["work"]).stdout.startswith("no local runs in file://")


def test_show_names_data_code_model_parameters_and_metrics(runs):
    shown = mlops("runs", "show", runs["first"], cwd=runs["work"])
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "state:    succeeded" in out and "model:    demo-wine@1 (c01-logistic_regression)" in out
    assert "data:     demo-wine@" in out and "param:    seed=42" in out and "metric:   test.f1_macro=0." in out
    record = json.loads(mlops("runs", "show", runs["first"], "--json", cwd=runs["work"]).stdout)
    assert len(record["code"]["version"]) >= 40 and set(record["code"]["locks"]) == {"main.lock", "tfdv.lock"}
    assert record["metrics"]["test"]["f1_macro"] > 0.8 and record["model_version"]["promoted"] is True
    # a failed run: its reason; the end of an id names it too
    failed = mlops(
        "runs", "show", runs["failed"].rsplit("-", 2)[-2] + "-" + runs["failed"].rsplit("-", 1)[-1], cwd=runs["work"]
    )
    assert failed.returncode == 0 and "state:    failed" in failed.stdout and "reason:   validate: " in failed.stdout


def test_show_of_an_unknown_run_is_one_line(runs):
    result = mlops("runs", "show", "no-such-run", cwd=runs["work"])
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "no local run 'no-such-run'" in result.stderr and "Traceback" not in result.stderr


def test_compare_marks_the_changed_parameter_and_data_version_and_nothing_that_is_equal(runs):
    result = mlops("runs", "compare", runs["first"], runs["changed"], cwd=runs["work"])
    assert result.returncode == 0, result.stderr
    lines = {line[3:].split("  ")[0].strip(): line for line in result.stdout.splitlines()[3:-1]}
    for changed in ("parameters: seed", "data: version", "data: source"):
        assert lines[changed].startswith("*"), lines[changed]
    for same in ("parameters: target", "parameters: test_fraction", "code: packages.numpy", "code: locks.main.lock"):
        assert not lines[same].startswith("*"), lines[same]
    assert lines["parameters: seed"].split()[-2:] == ["42", "7"]
    assert result.stdout.splitlines()[0].split()[-2:] == [runs["first"], runs["changed"]]

    comparison = json.loads(mlops("runs", "compare", runs["first"], runs["changed"], "--json", cwd=runs["work"]).stdout)
    rows = {(r["section"], r["name"]): r for r in comparison["rows"]}
    assert rows[("parameters", "seed")]["differs"] and rows[("parameters", "seed")]["values"] == [42, 7]
    first_data, changed_data = rows[("data", "version")]["values"]
    assert rows[("data", "version")]["differs"] and first_data != changed_data
    assert not rows[("code", "packages.python")]["differs"]  # (the commit may differ: others commit meanwhile)
    assert [r["model_version"] for r in comparison["runs"]] == ["demo-wine@1", "demo-wine@2"]

    only = mlops("runs", "compare", runs["first"], runs["changed"], runs["failed"], "--differences", cwd=runs["work"])
    assert only.returncode == 0 and all(line.startswith("*") for line in only.stdout.splitlines()[3:-1])
    assert "parameters: target" not in only.stdout


def test_compare_needs_two_runs(runs):
    result = mlops("runs", "compare", runs["first"], cwd=runs["work"])
    assert result.returncode == 2 and "compare needs at least two runs" in result.stderr


def _record(run_id: str, **changes) -> dict:
    fields = dict(
        run_id=run_id,
        model="m",
        state="succeeded",
        reason="",
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:01:00+00:00",
        parameters={"seed": 1, "search_space": {"metric": "auto"}},
        data_version="d@1",
        data_source="d.csv",
        code_version="abc",
    )
    return run_record(**{**fields, **changes})


def test_a_run_record_is_written_once_and_read_alike_from_every_backend(store):
    write_run(store, _record("r1"))
    write_run(store, _record("r2", state="failed", reason="validate: bad", started_at="2026-01-02T00:00:00+00:00"))
    with pytest.raises(StoreError, match="exists already"):
        write_run(store, _record("r1", state="failed"))
    assert [(r["id"], r["state"]) for r in list_runs(store)] == [("r2", "failed"), ("r1", "succeeded")]
    assert list_runs(store, "m")[0]["reason"] == "validate: bad"
    result = CliRunner().invoke(main, ["runs", "compare", "r1", "r2", "--json", "--store", store.uri])
    rows = {(r["section"], r["name"]): r["differs"] for r in json.loads(result.output)["rows"]}
    assert rows[("parameters", "seed")] is False and rows[("parameters", "search_space.metric")] is False


def test_compare_marks_values_that_differ_or_are_missing():
    rows = compare_runs([_record("a"), _record("b", parameters={"seed": 2}, data_version="d@2")])["rows"]
    marked = {(r["section"], r["name"]) for r in rows if r["differs"]}
    assert marked == {("parameters", "seed"), ("parameters", "search_space.metric"), ("data", "version")}
    # a failed run has no metrics: that is its state, not a difference in every metric
    succeeded = _record("a", lineage={"metrics": {"test": {"f1": 0.9}}})
    rows = compare_runs([succeeded, _record("b", state="failed", reason="validate: bad")])["rows"]
    assert [(r["name"], r["values"], r["differs"]) for r in rows if r["section"] == "metrics"] == [
        ("test.f1", [0.9, None], False)
    ]


def test_argo_is_chosen_by_a_cluster_context():
    result = CliRunner().invoke(main, ["runs", "list", "--context", "no-such-context"])
    assert result.exit_code == 1 and "no kubeconfig context 'no-such-context'" in result.output
