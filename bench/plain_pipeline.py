"""The training pipeline as a plain in-process script: the same stage functions on the same data,
one after another, no orchestration. The reference `mlops run` is measured against.

    .venv/bin/python bench/plain_pipeline.py DATA.csv TARGET STORE_DIR
"""

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from mlops.reporting import report
from mlops.stages import drift, register, validate
from mlops.stages.evaluate import evaluate_model
from mlops.stages.ingest import ingest_source
from mlops.stages.metrics import resolve_metric
from mlops.stages.prepare import fit_preprocessor
from mlops.stages.search_space import load_search_space
from mlops.stages.split import SplitConfig, split_version
from mlops.stages.train import expand_search_space, pick_best, train_candidate
from mlops.store import model_io
from mlops.store.fs import FileStore
from mlops.store.registry import ModelRegistry


def run(data: str, target: str, store_dir: str, model_name: str = "plain") -> dict:
    """Every stage of a run, timed; returns stage -> seconds."""
    seconds, started = {}, time.perf_counter()

    def lap(stage):
        nonlocal started
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - started
        started = now

    store = FileStore(store_dir)
    search_space = load_search_space()
    with tempfile.TemporaryDirectory() as scratch:
        ingested = ingest_source(data, store, model_name)
        lap("ingest")
        paths = {name: str(Path(scratch, name)) for name in ("train", "validation", "test")}
        result = split_version(store, ingested.version.full_ref, target, SplitConfig(), paths)
        lap("split")
        checked = validate.validate_splits(paths, model_name, store, str(Path(scratch, "validate")))
        lap("validate")
        frames = {name: pd.read_parquet(path) for name, path in paths.items()}
        schema_text = Path(scratch, "validate", "schema.pbtxt").read_text(encoding="utf-8")
        transform, info = fit_preprocessor(
            frames["train"], result.target, overrides=search_space.get("features"), schema_text=schema_text
        )
        metric = resolve_metric(search_space.get("metric", "auto"), info["task"])
        lap("prepare")
        results = []
        sizes = {"train_rows": info["train_rows"], "model_inputs": info["output_features"]}  # as mlops run: size-aware
        for candidate in expand_search_space(search_space, info["task"], seed=42, **sizes):
            fitted, scores = train_candidate(
                candidate, transform, frames["train"], frames["validation"], result.target, info["task"], seed=42
            )
            results.append({"candidate": candidate, "validation_metrics": scores, "model": fitted})
        best = pick_best(results, metric)
        lap("train")
        evaluation = evaluate_model(
            best["model"],
            frames["train"],
            frames["test"],
            result.target,
            info["task"],
            metric,
            0.1,
            None,
            store,
            model_name,
            validation=frames["validation"],
            seed=42,
        )
        lap("evaluate")
        model_bytes = model_io.dumps(best["model"])
        lineage = register.build_lineage(
            data={
                "ref": ingested.version.full_ref,
                "source": data,
                "content_hash": ingested.version.id,
                "rows": result.rows,
                "columns": ingested.columns,
                "target": result.target,
                "dropped_missing_target": result.dropped_missing_target,
            },
            split=result.split.to_json(),
            validation={"schema_source": checked.schema.source},
            task=info["task"],
            search_space=search_space,
            candidate=best["candidate"],
            metric=metric,
            validation_metrics=best["validation_metrics"],
            blessing={**evaluation.blessing.to_json()},
            seed=42,
            code_version="plain",
            run_id="plain",
            run_name="plain",
            model_sha256="",
        )
        baseline = register.baseline_files(
            best["model"], frames["train"], frames["test"], result.target, b"schema", b"statistics"
        )
        registration = register.register_model(
            store,
            model_name,
            model_bytes,
            lineage,
            evaluation.blessing.blessed,
            evaluation.blessing.champion_version,
            baseline,
        )
        lap("register")
        version = ModelRegistry(store).get(model_name, registration.version)
        shift = [
            row.to_json() for row in drift.compare_frame(drift.profile_frame(frames["train"]), frames["validation"])
        ]
        page = report.render_report(
            version=version.to_json(),
            validation=checked.result,
            schema_description={"source": checked.schema.source, "origin": checked.schema.origin},
            leaderboard=[{k: v for k, v in r.items() if k != "model"} for r in results],
            evaluation={
                **evaluation.blessing.to_json(),
                "confusion_matrix": evaluation.confusion_matrix,
                "diagnostics": evaluation.diagnostics,
            },
            frames=frames,
            shift=shift,
        )
        Path(store_dir, "report.html").write_text(page, encoding="utf-8")
        lap("report")
    return seconds


if __name__ == "__main__":
    stages = run(*sys.argv[1:4])
    print(" ".join(f"{stage}={value:.3f}" for stage, value in stages.items()))
