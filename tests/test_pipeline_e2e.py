"""The whole training pipeline through kfp.local, driven by the real `mlops` CLI.

Two real data sets (binary and multiclass) plus a regression one, the champion
gate, anomalies that stop the run, and every bad input: each must fail with one
line on stderr and register nothing.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlops.runners.local import RunFailed, run_pipeline
from mlops.store.fs import FileStore
from mlops.store.registry import ModelRegistry

pytestmark = [pytest.mark.e2e, pytest.mark.tfdv]


MLOPS = str(Path(sys.executable).with_name("mlops"))


def mlops(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([MLOPS, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def registered(store_dir: Path, name: str) -> list:
    return ModelRegistry(FileStore(store_dir)).versions(name) if store_dir.exists() else []


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


def test_multiclass_run_registers_a_champion_and_writes_the_report(workdir, demo_data):
    result = mlops("run", "--data", str(demo_data["wine"]), "--target", "target", cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    stages = [line.split("]")[0].strip("[") for line in lines if line.startswith("[")]
    assert stages[:4] == ["ingest", "split", "validate", "prepare"], result.stdout
    assert stages[-3:] == ["evaluate", "register", "report"], result.stdout
    assert "blessed: yes, now the champion" in result.stdout
    assert "no anomalies against the curated schema schemas/demo-wine.pbtxt" in result.stdout
    assert "schema:  curated schemas/demo-wine.pbtxt" in result.stdout

    listing = json.loads(mlops("models", "list", "--json", cwd=workdir).stdout)
    assert [(row["name"], row["version"], row["aliases"]) for row in listing] == [("demo-wine", 1, ["champion"])]
    row = listing[0]
    assert {"name", "version", "aliases", "metrics", "data_hash", "created_at"} <= set(row)
    assert row["metrics"]["test_f1_macro"] > 0.8

    version = registered(workdir / ".mlops", "demo-wine")[0]
    lineage = version.lineage
    assert lineage["data"]["content_hash"] == row["data_hash"]
    assert lineage["validation"]["schema_source"] == "curated"
    held_to = ModelRegistry(FileStore(workdir / ".mlops")).read_file(version, "baseline/schema.pbtxt")
    assert lineage["validation"]["schema_sha256"] == hashlib.sha256(held_to).hexdigest()  # validate's hash
    assert lineage["blessing"]["champion_version"] is None and lineage["blessing"]["skill"] > 0.5
    assert {"model.skops", "lineage.json", "baseline/schema.pbtxt", "baseline/train_statistics.pb"} <= set(
        version.files
    )
    assert lineage["split"]["scheme"] == "row-key-v3"
    assert lineage["seed"] == 42 and lineage["task"] == "classification"
    assert set(lineage["environment"]["locks"]) == {"main.lock", "tfdv.lock"}
    assert len(lineage["code"]["version"]) >= 40 and lineage["kfp"]["run_id"]
    assert lineage["params"]["candidate"]["id"] in result.stdout
    assert {d["kind"] for d in lineage["features"].values()} == {"numeric"}  # the decision travels with the model

    report = Path(lines[-1].split("report:", 1)[1].strip())
    html = report.read_text(encoding="utf-8")
    for section in (
        "<h2>Data</h2>",
        "<h2>Validation (TFDV)</h2>",
        "<h2>Features</h2>",
        "<h2>Candidates</h2>",
        "<h2>Test</h2>",
        "Unseen categories in test rows: none.",
        "trivial predictor",
        "confusion matrix",
        "<h2>Decision</h2>",
        "<h2>Lineage</h2>",
    ):
        assert section in html, section
    assert "<script" not in html and 'src="http' not in html  # a report loads nothing from anywhere


def test_a_model_trained_from_a_csv_file_reproduces_bit_for_bit(workdir):
    """Reproduce re-runs from the stored data version; the file's row order must not matter."""
    result = mlops("models", "reproduce", "demo-wine@1", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "model:    bit-identical" in result.stdout and "metrics:  equal" in result.stdout
    assert len(registered(workdir / ".mlops", "demo-wine")) == 1  # the re-run went to a scratch store


def test_a_model_that_misses_the_floor_is_registered_but_not_promoted(workdir, demo_data):
    result = mlops("run", "--data", str(demo_data["wine"]), "--target", "target", "--min-score", "1.01", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "blessed: no: test f1_macro" in result.stdout and "does not meet the floor 1.0100" in result.stdout
    versions = registered(workdir / ".mlops", "demo-wine")
    assert [(v.version, v.aliases, v.tags["blessed"]) for v in versions] == [
        (1, ["champion"], "true"),
        (2, [], "false"),
    ]


def test_data_that_breaks_the_curated_schema_stops_the_run(workdir, demo_data, tmp_path):
    frame = pd.read_csv(demo_data["wine"])
    frame["alcohol"] = frame["alcohol"].map(lambda value: f"{value} %")  # numbers turned into strings
    changed = tmp_path / "demo-wine.csv"
    frame.to_csv(changed, index=False)
    result = mlops("run", "--data", str(changed), "--target", "target", cwd=workdir)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "validate: data validation against the curated schema schemas/demo-wine.pbtxt found" in result.stderr
    assert "alcohol: UNEXPECTED_DATA_TYPE" in result.stderr and "--schema FILE" in result.stderr
    assert len(registered(workdir / ".mlops", "demo-wine")) == 2  # nothing new


def test_binary_run_with_string_labels(workdir, demo_data):
    frame = pd.read_csv(demo_data["breast_cancer"]).rename(columns={"target": "Diagnosis (M/B)"})
    data = workdir / "cancer.csv"
    frame.to_csv(data, index=False)
    result = mlops("run", "--data", str(data), "--target", "Diagnosis (M/B)", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "(classification of 'diagnosis_m_b')" in result.stdout.splitlines()[0]
    version = registered(workdir / ".mlops", "cancer")[0]
    assert version.aliases == ["champion"]
    assert version.lineage["data"]["target"] == "diagnosis_m_b"
    assert version.lineage["data"]["columns"]["Diagnosis (M/B)"] == "diagnosis_m_b"
    assert version.metrics["test_roc_auc"] > 0.9
    # The evaluate task's ClassificationMetrics carry the ROC curve and confusion matrix for the KFP UI.
    outputs = Path(result.stdout.split("report:", 1)[1].strip()).parent / "outputs"
    executor_output = json.loads(next(outputs.rglob("evaluate/executor_output.json")).read_text())
    metadata = executor_output["artifacts"]["classification_metrics"]["artifacts"][0]["metadata"]
    assert metadata["confidenceMetrics"] and metadata["confusionMatrix"]["annotationSpecs"]


def test_regression_run_with_a_target_name_that_cleaning_changes(workdir, demo_data):
    frame = pd.read_csv(demo_data["diabetes"]).rename(columns={"target": "Disease Progression"})
    data = workdir / "diabetes.csv"
    frame.to_csv(data, index=False)
    result = mlops("run", "--data", str(data), "--target", "Disease Progression", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "(regression of 'disease_progression')" in result.stdout.splitlines()[0]
    assert "metrics: test r2=" in result.stdout and "trivial predictor" in result.stdout
    version = registered(workdir / ".mlops", "diabetes")[0]
    assert version.lineage["task"] == "regression" and version.lineage["data"]["target"] == "disease_progression"
    assert "blessing" in version.lineage and version.metrics["test_r2"] > 0.3


# Bad input: one line on stderr, exit 1, nothing registered. ---------------


def _wine_variant(demo_data, change) -> str:
    return change(Path(demo_data["wine"]).read_text(encoding="utf-8"))


BAD_INPUTS = {
    "empty": (lambda d: b"", "is empty"),
    "header-only": (lambda d: _wine_variant(d, lambda t: t.splitlines()[0] + "\n").encode(), "header but no data rows"),
    "not-utf8": (lambda d: _wine_variant(d, lambda t: t).encode("utf-16"), "is not UTF-8 text"),
    "numeric-with-strings": (
        lambda d: _wine_variant(d, lambda t: t.replace("\n14.23,", "\nabc,", 1)).encode(),
        "column 'alcohol' is numeric but holds 1 non-numeric value(s), e.g. 'abc'",
    ),
    "one-class": (
        lambda d: pd.read_csv(d["wine"]).assign(target="class_0").to_csv(index=False).encode(),
        "has only one class ('class_0')",
    ),
    "too-few-rows": (
        lambda d: "\n".join(_wine_variant(d, lambda t: t).splitlines()[:13]).encode(),
        "too few rows for the split",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_with_one_line_and_registers_nothing(case, demo_data, tmp_path):
    make, message = BAD_INPUTS[case]
    data = tmp_path / "wine.csv"
    data.write_bytes(make(demo_data))
    result = mlops("run", "--data", str(data), "--target", "target", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "runs").exists() and registered(tmp_path / ".mlops", "wine") == []
    assert "Traceback" not in result.stderr


def test_missing_target_column_names_the_columns(demo_data, tmp_path):
    result = mlops("run", "--data", str(demo_data["wine"]), "--target", "quality", cwd=tmp_path)
    assert result.returncode == 1
    assert "target column 'quality' not found; columns are: alcohol, malic_acid" in result.stderr


def test_bad_input_inside_the_pipeline_fails_the_ingest_stage(demo_data, tmp_path):
    """Without the CLI's pre-flight (as on a cluster) the ingest stage itself stops the run."""
    data = tmp_path / "empty.csv"
    data.write_bytes(b"")
    with pytest.raises(RunFailed, match="^ingest: empty.csv is empty$"):
        run_pipeline(
            {
                "data_uri": str(data),
                "target": "target",
                "model_name": "empty",
                "store_uri": (tmp_path / "store").as_uri(),
            },
            runs_dir=tmp_path / "runs",
            emit=lambda line: None,
        )
    # Nothing published but the run's own record, which says why it failed (`mlops runs list`).
    store = FileStore(tmp_path / "store")
    [key] = store.list("")
    record = json.loads(store.read(key))
    assert key == f"runs/empty/{record['id']}.json" and record["id"].endswith(f"-empty-{os.getpid()}")
    assert (record["state"], record["reason"], record["data"]["version"]) == (
        "failed",
        "ingest: empty.csv is empty",
        None,
    )


def _rare_class_kept_out_of_test(demo_data, split_like_a_run, clean_like_a_run):
    """Wine with a fourth, rare class whose rows the content-hash split puts in train and validation
    only (a row's split depends on its own content alone, so the choice is stable)."""
    wine = pd.read_csv(demo_data["wine"])
    rare = wine[wine["target"] == "class_0"].head(40).assign(target="class_rare", alcohol=lambda f: f["alcohol"] + 5)
    splits = split_like_a_run(rare, "target", min_rows_per_split=0).frames()
    keep = pd.concat([splits["train"], splits["validation"]])
    assert len(splits["validation"]) and len(splits["test"])  # the test rows of the rare class are left out
    return pd.concat([clean_like_a_run(wine), keep], ignore_index=True)


def test_a_metric_the_test_split_cannot_compute_fails_the_run_in_one_line(
    demo_data, tmp_path, split_like_a_run, clean_like_a_run
):
    data = tmp_path / "wine.csv"
    _rare_class_kept_out_of_test(demo_data, split_like_a_run, clean_like_a_run).to_csv(data, index=False)
    params = tmp_path / "params.yaml"
    params.write_text("metric: roc_auc\ncandidates:\n  classification:\n    logistic_regression: {C: [1.0]}\n")
    result = mlops("run", "--data", str(data), "--target", "target", "--params", str(params), cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert (
        "evaluate: metric 'roc_auc' cannot be computed on the test split (it needs every class present in "
        "that split); choose another metric in the params file or add rows"
    ) in result.stderr
    assert registered(tmp_path / ".mlops", "wine") == [] and "Traceback" not in result.stderr


def test_a_tfdv_run_past_its_deadline_fails_the_run_in_one_line(demo_data, tmp_path):
    # The warm sidecar computes wine's statistics well within a second; TFDV's Beam pipeline (every
    # split, MLOPS_TFDV_BEAM_OVER_ROWS=0) takes seconds to start, so the deadline passes.
    env = {**os.environ, "MLOPS_TFDV_TIMEOUT_SECONDS": "1", "MLOPS_TFDV_BEAM_OVER_ROWS": "0"}
    result = subprocess.run(
        [MLOPS, "run", "--data", str(demo_data["wine"]), "--target", "target"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "validate: TFDV did not finish within 1 s; raise MLOPS_TFDV_TIMEOUT_SECONDS" in result.stderr
    assert registered(tmp_path / ".mlops", "demo-wine") == []


def test_a_kind_tag_in_the_schema_reaches_prepare(tmp_path):
    """The schema a run validates against (here --schema FILE; a curated one alike) sets a column's kind."""
    import numpy as np

    rng = np.random.default_rng(3)
    shop = rng.integers(1, 6, 400)
    amount = rng.normal(size=400).round(3)
    label = np.where((shop % 2 == 0) ^ (amount > 1.0), "yes", "no")
    pd.DataFrame({"shop": shop, "amount": amount, "y": label}).to_csv(tmp_path / "shops.csv", index=False)
    schema = tmp_path / "shops.pbtxt"
    schema.write_text(
        'feature { name: "shop" type: INT annotation { tag: "kind: categorical" } }\n'
        'feature { name: "amount" type: FLOAT }\nfeature { name: "y" type: BYTES }\n'
    )
    result = mlops("run", "--data", str(tmp_path / "shops.csv"), "--target", "y", "--schema", str(schema), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    features = registered(tmp_path / ".mlops", "shops")[0].lineage["features"]
    assert features["shop"] == {"kind": "categorical", "reason": "set in the schema (annotation tag)"}
    assert features["amount"]["kind"] == "numeric"


def test_past_the_training_memory_budget_a_run_trains_on_a_recorded_sample(tmp_path):
    """MLOPS_TRAIN_MEMORY_BUDGET_MB of 1 on a generated 20,000-row table: each candidate fits on the
    seed-keyed sample that fits (lineage, report and summary say which), evaluated on the whole test split."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = 20_000
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows).round(4) for i in range(6)})
    frame["colour"] = rng.choice(["red", "green", "blue"], rows)
    frame["label"] = np.where(frame["x0"] + (frame["colour"] == "red") + rng.normal(0, 1, rows) > 0, "yes", "no")
    frame.to_csv(tmp_path / "big.csv", index=False)
    result = subprocess.run(
        [MLOPS, "run", "--data", "big.csv", "--target", "label", "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MLOPS_TRAIN_MEMORY_BUDGET_MB": "1"},
    )
    assert result.returncode == 0, result.stderr
    version = registered(tmp_path / ".mlops", "big")[0]
    recorded = version.lineage["training"]["rows"]
    # 6 numbers at 8 bytes, 2 text columns at 64, 9 model inputs at 8 bytes twice: 320 bytes a row; 1 MB holds
    # 3,276 rows (prepare fitted the transform on them too)
    assert recorded["used"] == 3276 < recorded["available"] == version.lineage["data"]["rows"]["train"]
    assert recorded["how"] == "row-key-sample-v1" and recorded["seed"] == 42 and recorded["memory_budget_mb"] == 1
    said = f"3,276 of {recorded['available']:,} training rows"
    assert f"trained: {said}" in result.stdout
    assert said in Path(result.stdout.split("report:", 1)[1].strip()).read_text(encoding="utf-8")
