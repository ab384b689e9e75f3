"""Validate: the real TFDV tool in its own interpreter, schema precedence, anomalies stop the run."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops import config
from mlops.errors import MlopsError, StageError
from mlops.stages import validate

pytestmark = pytest.mark.tfdv


def make_splits(directory: Path, frame: pd.DataFrame) -> dict[str, str]:
    """Write three splits of ``frame`` (a third each) as Parquet without suffix, as KFP does."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for index, name in enumerate(("train", "validation", "test")):
        path = directory / name
        frame.iloc[index::3].reset_index(drop=True).to_parquet(path, index=False)
        paths[name] = str(path)
    return paths


def shop_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """A small table with a closed categorical domain, a numeric and a label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], rows),
            "price": rng.normal(10, 2, rows).round(2),
            "bought": rng.choice(["yes", "no"], rows),
        }
    )


def test_tool_version_and_argument_errors(tmp_path):
    python = str(config.TFDV_PYTHON.get())
    version = subprocess.run([python, str(config.TFDV_TOOL.get()), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"tfdv_tool {validate.TOOL_VERSION}"
    missing = subprocess.run(
        [python, str(config.TFDV_TOOL.get()), "validate", "--split", f"train={tmp_path}/nope", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_tool_writes_statistics_schema_view_and_skew(tmp_path, wine_frame):
    out = tmp_path / "out"
    result = validate.run_tfdv_tool(make_splits(tmp_path / "splits", wine_frame), str(out))
    assert result["anomalies"] == [] and result["schema_source"] == "inferred"
    assert {p.name for p in (out / "statistics").iterdir()} == {"train.pb", "validation.pb", "test.pb"}
    assert 'name: "od280/od315_of_diluted_wines"' in (out / "schema.pbtxt").read_text()
    assert "facets-overview" in (out / "statistics.html").read_text()
    assert sum(split["num_examples"] for split in result["splits"].values()) == len(wine_frame)
    measured = {row["feature"]: row for row in result["skew"]}
    assert measured["alcohol"]["measure"] == "jensen_shannon_divergence"
    assert measured["target"]["measure"] == "l_infty"  # categorical: L-infinity distance
    assert all(0.0 <= row["value"] <= 1.0 for row in result["skew"])


def register_with_schema(store, model_name: str, schema: bytes) -> None:
    """What the register stage does with a run's inferred schema: the version carries it."""
    from mlops.store.registry import ModelRegistry

    ModelRegistry(store).register(
        model_name,
        {"model.skops": b"m", "baseline/schema.pbtxt": schema},
        metrics={},
        lineage={"validation": {"schema_source": "inferred"}},
    )


def test_the_first_registered_run_sets_the_baseline_that_later_runs_are_held_to(tmp_path, file_store):
    clean = make_splits(tmp_path / "clean", shop_frame())
    first = validate.validate_splits(clean, "shop", file_store, str(tmp_path / "run1"))
    assert first.schema.source == "inferred"
    # Validation stores nothing: a run that fails after it (in prepare, say) leaves no baseline behind.
    assert file_store.list("") == []
    again = validate.validate_splits(clean, "shop", file_store, str(tmp_path / "run1b"))
    assert again.schema.source == "inferred"
    # The run that registers carries its inferred schema with the version: that is the baseline.
    inferred = (tmp_path / "run1" / "schema.pbtxt").read_bytes()
    register_with_schema(file_store, "shop", inferred)
    second = validate.validate_splits(
        make_splits(tmp_path / "again", shop_frame(seed=1)), "shop", file_store, str(tmp_path / "run2")
    )
    assert second.schema.source == "baseline" and second.anomalies == []
    assert second.schema.origin == "shop@1/baseline/schema.pbtxt" and b'name: "colour"' in inferred


@pytest.mark.parametrize(
    "change, feature, kind",
    [
        (lambda f: f.assign(price=f["price"].astype(str) + " EUR"), "price", "UNEXPECTED_DATA_TYPE"),
        (lambda f: f.drop(columns=["colour"]), "colour", "SCHEMA_MISSING_COLUMN"),
        (
            lambda f: f.assign(colour=f["colour"].replace("blue", "purple")),
            "colour",
            "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
        ),
    ],
)
def test_data_that_changes_under_the_baseline_stops_the_run(tmp_path, file_store, change, feature, kind):
    validate.validate_splits(make_splits(tmp_path / "clean", shop_frame()), "shop", file_store, str(tmp_path / "a"))
    register_with_schema(file_store, "shop", (tmp_path / "a" / "schema.pbtxt").read_bytes())
    changed = make_splits(tmp_path / "changed", change(shop_frame(seed=2)))
    with pytest.raises(StageError, match=f"against the stored baseline schema .* found .*{feature}: {kind}"):
        validate.validate_splits(changed, "shop", file_store, str(tmp_path / "b"))
    rows = json.loads((tmp_path / "b" / "result.json").read_text())["anomalies"]
    assert {(row["feature"], row["kind"]) for row in rows} >= {(feature, kind)}


def test_a_curated_schema_in_git_wins_over_the_baseline(tmp_path, file_store, monkeypatch):
    splits = make_splits(tmp_path / "clean", shop_frame())
    validate.validate_splits(splits, "shop", file_store, str(tmp_path / "a"))
    register_with_schema(file_store, "shop", (tmp_path / "a" / "schema.pbtxt").read_bytes())
    curated = tmp_path / "schemas"
    curated.mkdir()
    # A curated schema that only allows red and green.
    schema = (tmp_path / "a" / "schema.pbtxt").read_text().replace('  value: "blue"\n', "")
    (curated / "shop.pbtxt").write_text(schema)
    monkeypatch.setenv("MLOPS_SCHEMA_DIR", str(curated))
    with pytest.raises(
        StageError, match="against the curated schema .*shop.pbtxt found .*colour: ENUM_TYPE_UNEXPECTED_STRING_VALUES"
    ):
        validate.validate_splits(splits, "shop", file_store, str(tmp_path / "b"))


def test_missing_tfdv_interpreter_is_a_clear_error(tmp_path, monkeypatch, file_store):
    monkeypatch.setenv("MLOPS_TFDV_PYTHON", str(tmp_path / "no-python"))
    with pytest.raises(StageError, match="TFDV interpreter not found at .*no-python: run `make setup`"):
        validate.validate_splits({"train": "x"}, "shop", file_store, str(tmp_path))


def test_the_curated_demo_schema_in_git_bounds_alcohol(tmp_path, file_store, wine_frame, clean_like_a_run):
    """schemas/demo-wine.pbtxt is curated: alcohol is a percentage."""
    assert validate.curated_schema_path("demo-wine") is not None
    wine_frame = clean_like_a_run(wine_frame)  # as ingest hands it on
    clean = validate.validate_splits(
        make_splits(tmp_path / "clean", wine_frame), "demo-wine", file_store, str(tmp_path / "a")
    )
    assert clean.schema.source == "curated" and clean.schema.origin == "schemas/demo-wine.pbtxt"
    assert validate.stored_baseline("demo-wine", file_store) is None  # a curated schema needs no baseline
    impossible = wine_frame.assign(alcohol=wine_frame["alcohol"] * 10)
    with pytest.raises(
        StageError, match="against the curated schema schemas/demo-wine.pbtxt found .*alcohol: FLOAT_TYPE_BIG_FLOAT"
    ):
        validate.validate_splits(
            make_splits(tmp_path / "bad", impossible), "demo-wine", file_store, str(tmp_path / "b")
        )


def test_a_user_data_set_named_like_a_demo_is_not_held_to_the_demo_schema(tmp_path, file_store):
    """A user's own wine.csv (other columns) trains as model `wine`: no curated schema applies."""
    theirs = shop_frame().rename(columns={"bought": "cultivar"})
    checked = validate.validate_splits(
        make_splits(tmp_path / "theirs", theirs), "wine", file_store, str(tmp_path / "out")
    )
    assert checked.schema.source == "inferred" and checked.anomalies == []
    assert "TFDV inferred" in checked.schema.describe()


def test_a_schema_file_named_by_the_run_wins(tmp_path, file_store):
    splits = make_splits(tmp_path / "clean", shop_frame())
    validate.validate_splits(splits, "shop", file_store, str(tmp_path / "a"))
    strict = tmp_path / "strict.pbtxt"
    strict.write_text((tmp_path / "a" / "schema.pbtxt").read_text().replace('  value: "blue"\n', ""))
    with pytest.raises(StageError, match=f"against the schema file {strict} found .*colour: ENUM_TYPE"):
        validate.validate_splits(splits, "shop", file_store, str(tmp_path / "b"), schema_uri=str(strict))
    with pytest.raises(StageError, match="schema file not found"):
        validate.validate_splits(splits, "shop", file_store, str(tmp_path / "c"), schema_uri=str(tmp_path / "no"))


def test_a_tfdv_run_past_its_deadline_is_one_line(tmp_path, file_store, monkeypatch):
    monkeypatch.setenv("MLOPS_TFDV_TIMEOUT_SECONDS", "1")
    with pytest.raises(StageError, match="TFDV did not finish within 1 s; raise MLOPS_TFDV_TIMEOUT_SECONDS"):
        validate.validate_splits(make_splits(tmp_path / "clean", shop_frame()), "shop", file_store, str(tmp_path))


def test_a_setting_that_is_not_a_number_is_one_line(tmp_path, file_store, monkeypatch):
    monkeypatch.setenv("MLOPS_TFDV_TIMEOUT_SECONDS", "soon")
    with pytest.raises(MlopsError, match="MLOPS_TFDV_TIMEOUT_SECONDS must be a number, got 'soon'"):
        validate.validate_splits(make_splits(tmp_path / "clean", shop_frame()), "shop", file_store, str(tmp_path))


def test_statistics_from_tfdvs_beam_pipeline_on_the_parquet_files(tmp_path, file_store, monkeypatch):
    """Data that outgrows memory: the Beam pipeline over the files (DirectRunner here; options pass through)."""
    monkeypatch.setenv("MLOPS_TFDV_BEAM_OVER_ROWS", "0")
    monkeypatch.setenv("MLOPS_BEAM_OPTIONS", "--runner=DirectRunner --direct_num_workers=1")
    splits = make_splits(tmp_path / "clean", shop_frame())
    checked = validate.validate_splits(splits, "shop", file_store, str(tmp_path / "beam"))
    assert checked.result["statistics_engine"] == "beam"
    assert sum(split["num_examples"] for split in checked.result["splits"].values()) == 300
    monkeypatch.delenv("MLOPS_TFDV_BEAM_OVER_ROWS")
    monkeypatch.delenv("MLOPS_BEAM_OPTIONS")  # options given send every split through Beam
    in_memory = validate.run_tfdv_tool(splits, str(tmp_path / "memory"))
    assert in_memory["statistics_engine"] == "in-memory"
    assert {f["feature"] for f in in_memory["features"]["train"]} == {
        f["feature"] for f in checked.result["features"]["train"]
    }


def test_the_warm_sidecar_answers_like_the_tool(tmp_path, file_store, monkeypatch):
    """mlops.runners.local starts `tfdv_tool.py serve`; validate then asks it instead of starting TFDV."""
    from mlops.runners.local import tfdv_sidecar

    splits = make_splits(tmp_path / "clean", shop_frame())
    with tfdv_sidecar("subprocess"):
        assert config.TFDV_SOCKET.get() is not None
        warm = validate.validate_splits(splits, "shop", file_store, str(tmp_path / "warm"))
        with pytest.raises(StageError, match="TFDV failed: .*no such file"):
            validate.run_tfdv_tool({"train": str(tmp_path / "missing")}, str(tmp_path / "x"))
    assert config.TFDV_SOCKET.get() is None
    cold = validate.run_tfdv_tool(splits, str(tmp_path / "cold"))
    assert warm.result["splits"] == cold["splits"] and warm.result["anomalies"] == cold["anomalies"] == []


def test_an_idle_sidecar_leaves_and_a_later_task_starts_tfdv_itself(tmp_path, file_store, monkeypatch):
    """After a request and --idle-exit seconds without another, the sidecar removes its socket and exits
    (its memory goes back to the run); validate then runs TFDV in its own interpreter."""
    import time

    socket_path = tmp_path / "tfdv.sock"
    sidecar = subprocess.Popen(
        [
            str(config.TFDV_PYTHON.get()),
            str(config.TFDV_TOOL.get()),
            "serve",
            "--socket",
            str(socket_path),
            "--idle-exit",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        monkeypatch.setenv(config.TFDV_SOCKET.name, str(socket_path))
        splits = make_splits(tmp_path / "clean", shop_frame())
        warm = validate.validate_splits(splits, "shop", file_store, str(tmp_path / "warm"))
        assert sidecar.wait(timeout=30) == 0 and not socket_path.exists() and Path(f"{socket_path}.closed").exists()
        time.sleep(0.1)
        cold = validate.validate_splits(splits, "shop", file_store, str(tmp_path / "cold"))  # no sidecar now
        assert warm.result["splits"] == cold.result["splits"]
    finally:
        sidecar.kill()
