"""Validate: TFDV statistics, schema and anomalies for each split; stop on anomalies.

TFDV runs in its own interpreter (see tfdv_tool.py); this module decides which
schema applies and what the result means for the run:

1. a curated schema in git, ``schemas/<model_name>.pbtxt``, wins;
2. else the baseline schema stored for this model by its first run;
3. else TFDV infers one, and it becomes that baseline once the data passes.

Any anomaly in any split stops the run before training. Train-vs-validation
skew is measured and reported, not enforced: with small splits the
distances are noisy, and the split is by content hash, not by time.
"""

import json
import os
import subprocess
import tempfile
from pathlib import Path

from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from components.runtime import StageError, project_path
from components.storage import NotFound, ObjectStore

TOOL = Path(__file__).with_name("tfdv_tool.py")
TOOL_VERSION = "1"
TOOL_TIMEOUT_SECONDS = 1800


def tfdv_python() -> Path:
    """The TFDV interpreter: MLOPS_TFDV_PYTHON, else the checkout's .venv-tfdv."""
    return project_path("MLOPS_TFDV_PYTHON", ".venv-tfdv/bin/python")


def curated_schema_path(model_name: str) -> Path | None:
    path = project_path("MLOPS_SCHEMA_DIR", "schemas") / f"{model_name}.pbtxt"
    return path if path.is_file() else None


def baseline_schema_key(model_name: str) -> str:
    return f"schemas/{model_name}/baseline.pbtxt"


def run_tfdv_tool(splits: dict[str, str], out_dir: str, schema_path: str | None = None) -> dict:
    """Run tfdv_tool.py validate and return its result.json as a dict."""
    python = tfdv_python()
    if not python.exists():
        raise StageError(f"TFDV interpreter not found at {python}: run `make setup` or set MLOPS_TFDV_PYTHON")
    command = [str(python), str(TOOL), "validate", "--out", out_dir]
    for name, path in splits.items():
        command += ["--split", f"{name}={path}"]
    if schema_path:
        command += ["--schema", str(schema_path)]
    # TensorFlow's C++ logging is noise here; the tool reports through result.json.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=TOOL_TIMEOUT_SECONDS)
    if completed.returncode != 0:
        lines = [line for line in completed.stderr.splitlines() if line.strip()]
        raise StageError(f"TFDV failed: {lines[-1] if lines else f'exit status {completed.returncode}'}")
    result = json.loads(Path(out_dir, "result.json").read_text(encoding="utf-8"))
    if result.get("tool_version") != TOOL_VERSION:
        raise StageError(f"tfdv_tool version {result.get('tool_version')!r} does not match {TOOL_VERSION!r}")
    return result


def describe_anomalies(anomalies: list[dict], limit: int = 5) -> str:
    """One line listing the anomalies (the rest are in the anomalies artifact)."""
    parts = [f"{row['split']}/{row['feature']}: {row['kind']} ({row['detail']})" for row in anomalies[:limit]]
    more = f"; and {len(anomalies) - limit} more" if len(anomalies) > limit else ""
    return "; ".join(parts) + more


def validate_splits(splits: dict[str, str], model_name: str, store: ObjectStore, out_dir: str) -> dict:
    """Validate the splits against the schema that applies; raise StageError on anomalies.

    Returns the tool's result with ``schema_source`` set to curated, baseline
    or inferred. Writes statistics, schema.pbtxt and statistics.html to out_dir.
    """
    curated = curated_schema_path(model_name)
    with tempfile.TemporaryDirectory() as scratch:
        schema_path, source = None, "inferred"
        if curated:
            schema_path, source = curated, "curated"
        else:
            try:
                baseline = store.read(baseline_schema_key(model_name))
            except NotFound:
                pass
            else:
                schema_path = Path(scratch, "baseline.pbtxt")
                schema_path.write_bytes(baseline)
                source = "baseline"
        result = run_tfdv_tool(splits, out_dir, str(schema_path) if schema_path else None)
    result["schema_source"] = source
    Path(out_dir, "result.json").write_text(json.dumps(result, indent=2, sort_keys=True), encoding="utf-8")
    if result["anomalies"]:
        raise StageError(
            f"data validation against the {source} schema found {len(result['anomalies'])} anomalies: "
            + describe_anomalies(result["anomalies"])
        )
    if source == "inferred":
        # First clean run for this model: its schema guards every later run.
        from components.storage import AlreadyExists

        try:
            store.create(baseline_schema_key(model_name), Path(out_dir, "schema.pbtxt").read_bytes())
        except AlreadyExists:
            pass
    return result


def validate(
    train: Input[Dataset],
    validation: Input[Dataset],
    test: Input[Dataset],
    model_name: str,
    store_uri: str,
    statistics: Output[Artifact],
    schema: Output[Artifact],
    anomalies: Output[Artifact],
    statistics_view: Output[HTML],
) -> str:
    """KFP component: TFDV validation of every split; fails the run on anomalies.

    Outputs: per-split statistics (and result.json), the schema validated against,
    the anomaly list (JSON, empty when the run goes on) and TFDV's HTML view.
    """
    import json
    import os
    import shutil

    from components import runtime
    from components import validate as stage
    from components.storage import open_store

    os.makedirs(statistics.path, exist_ok=True)
    splits = {"train": train.path, "validation": validation.path, "test": test.path}
    result = runtime.run_stage("validate", stage.validate_splits, splits=splits, model_name=model_name,
                               store=open_store(store_uri), out_dir=statistics.path)
    shutil.copyfile(os.path.join(statistics.path, "statistics.html"), statistics_view.path)
    shutil.copyfile(os.path.join(statistics.path, "schema.pbtxt"), schema.path)
    with open(anomalies.path, "w", encoding="utf-8") as handle:
        json.dump(result["anomalies"], handle)
    schema.metadata["source"] = result["schema_source"]
    statistics.metadata.update({"schema_source": result["schema_source"], "anomalies": 0,
                                "tfdv_version": result["tfdv_version"]})
    skewed = [row["feature"] for row in result["skew"] if row["exceeded"]]
    runtime.report_progress("validate", f"no anomalies against the {result['schema_source']} schema; "
                            f"train/validation skew over threshold in {len(skewed)} of {len(result['skew'])} features")
    keep = ("schema_source", "skew", "splits", "thresholds", "tfdv_version", "features")
    return json.dumps({key: result[key] for key in keep})
