"""The KFP components: one thin function per stage, and nothing else.

Each function only unpacks its artifacts and parameters, calls the stage's plain
logic (components/<stage>.py, which imports no kfp) through
components.adapter, and writes typed outputs: NamedTuple parameters that
later tasks are wired to in pipelines/training.py (the compiler checks the
wiring and the KFP UI shows them), and artifacts with their facts in
``.metadata``. KFP embeds each function's source in the compiled spec and runs
it in the image, so every import a function needs is inside its body.
components/factory.py turns these functions into components.

Inside a ParallelFor, kfp.local 2.17 replaces a task's upstream *parameters*
with the loop item (artifacts and pipeline parameters arrive intact), so
``train`` reads the target and task from the preprocessor's metadata.
"""

from typing import List, NamedTuple

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components.artifact_types import Anomalies, Blessing, Schema, Statistics


def ingest(
    data_uri: str,
    data_name: str,
    model_name: str,
    search_space: str,
    validation_fraction: float,
    test_fraction: float,
    min_score: str,
    store_uri: str,
) -> NamedTuple("IngestOutputs", data_version=str, source=str, columns=dict):
    """Check the run's parameters, read the data, clean it and publish it as a data version."""
    from components import adapter

    adapter.warm_start()

    from collections import namedtuple

    from mlops.stages import ingest as stage
    from mlops.store import open_store

    adapter.run(
        "ingest",
        stage.check_run_parameters,
        model_name=model_name,
        search_space=adapter.as_mapping(search_space),
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        min_score=min_score,
    )
    store = adapter.run("ingest", open_store, uri=store_uri, role="pipeline")
    result = adapter.run("ingest", stage.ingest_source, data_uri=data_uri, store=store, name=data_name)
    version = result.version
    adapter.progress(
        "ingest",
        f"{version.rows} rows x {len(version.columns)} columns -> data version "
        f"{version.ref}{' (new)' if result.new else ''}",
    )
    return namedtuple("IngestOutputs", "data_version source columns")(version.full_ref, result.source, result.columns)


def split(
    data_version: str,
    target: str,
    validation_fraction: float,
    test_fraction: float,
    split_salt: str,
    store_uri: str,
    train: Output[Dataset],
    validation: Output[Dataset],
    test: Output[Dataset],
) -> NamedTuple("SplitOutputs", target=str):
    """Split a data version by row-content hash into train, validation and test."""
    from components import adapter

    adapter.warm_start()

    from collections import namedtuple

    from mlops.stages import ingest as stage
    from mlops.store import open_store

    config = adapter.run(
        "split",
        stage.SplitConfig,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        salt=split_salt,
    )
    store = adapter.run("split", open_store, uri=store_uri, role="pipeline")
    paths = {"train": train.path, "validation": validation.path, "test": test.path}
    result = adapter.run(
        "split", stage.split_version, store=store, data_version=data_version, target=target, split=config, paths=paths
    )
    for name, artifact in (("train", train), ("validation", validation), ("test", test)):
        artifact.metadata.update(
            {
                "split": name,
                "rows": result.rows[name],
                "data_version": data_version,
                "target": result.target,
                "format": "parquet",
            }
        )
    train.metadata.update(
        {
            "split_config": config.to_json(),
            "rows_by_split": result.rows,
            "dropped_missing_target": result.dropped_missing_target,
        }
    )
    rows = result.rows
    adapter.progress(
        "split",
        f"target '{result.target}': train {rows['train']}, validation {rows['validation']}, "
        f"test {rows['test']}"
        + (f"; {result.dropped_missing_target} rows without a target dropped" if result.dropped_missing_target else ""),
    )
    return namedtuple("SplitOutputs", "target")(result.target)


def validate(
    train: Input[Dataset],
    validation: Input[Dataset],
    test: Input[Dataset],
    model_name: str,
    schema_uri: str,
    store_uri: str,
    statistics: Output[Statistics],
    schema: Output[Schema],
    anomalies: Output[Anomalies],
    statistics_view: Output[HTML],
) -> NamedTuple("ValidateOutputs", schema_source=str):
    """TFDV statistics and anomalies of every split against the schema that applies; anomalies stop the run."""
    from components import adapter

    adapter.warm_start()

    import hashlib
    import json
    import os
    import shutil
    from collections import namedtuple

    from mlops.stages import validate as stage
    from mlops.store import open_store

    os.makedirs(statistics.path, exist_ok=True)
    splits = {"train": train.path, "validation": validation.path, "test": test.path}
    store = adapter.run("validate", open_store, uri=store_uri, role="pipeline")
    checked = adapter.run(
        "validate",
        stage.validate_splits,
        splits=splits,
        model_name=model_name,
        store=store,
        out_dir=statistics.path,
        schema_uri=schema_uri,
    )
    result = checked.result
    shutil.copyfile(os.path.join(statistics.path, "statistics.html"), statistics_view.path)
    shutil.copyfile(os.path.join(statistics.path, "schema.pbtxt"), schema.path)
    with open(anomalies.path, "w", encoding="utf-8") as handle:
        json.dump(result["anomalies"], handle)
    with open(schema.path, "rb") as handle:
        schema_sha256 = hashlib.sha256(handle.read()).hexdigest()
    schema.metadata.update(
        {
            "source": checked.schema.source,
            "origin": checked.schema.origin,
            "sha256": schema_sha256,
            "model_name": model_name,
        }
    )
    statistics.metadata.update(
        {"splits": sorted(splits), "tfdv_version": result["tfdv_version"], "schema_source": checked.schema.source}
    )
    anomalies.metadata["count"] = len(result["anomalies"])
    adapter.progress(
        "validate",
        f"no anomalies against {checked.schema.describe()} (another schema: --schema FILE or another --model-name)",
    )
    return namedtuple("ValidateOutputs", "schema_source")(checked.schema.source)


def prepare(
    train_split: Input[Dataset],
    target: str,
    task: str,
    search_space: str,
    preprocessor: Output[Model],
) -> NamedTuple("PrepareOutputs", task=str, metric=str):
    """Decide the task and the ranking metric; fit the feature transform on the training split only."""
    from components import adapter

    adapter.warm_start()

    from collections import namedtuple

    import pandas as pd

    from mlops.stages import metrics
    from mlops.stages import prepare as stage
    from mlops.store import model_io

    fitted, info = adapter.run(
        "prepare", stage.fit_preprocessor, train=pd.read_parquet(train_split.path), target=target, requested_task=task
    )
    metric = adapter.run(
        "prepare",
        metrics.resolve_metric,
        name=adapter.as_mapping(search_space).get("metric", "auto"),
        task=info["task"],
    )
    model_io.save(fitted, preprocessor.path)
    preprocessor.metadata.update({**info, "metric": metric, "format": model_io.FORMAT})
    adapter.progress(
        "prepare",
        f"{info['task']} of '{target}' ranked by {metric}: {len(info['numeric_features'])} "
        f"numeric and {len(info['categorical_features'])} categorical features -> "
        f"{info['output_features']} model inputs (fitted on train only)",
    )
    return namedtuple("PrepareOutputs", "task metric")(info["task"], metric)


def expand_candidates(search_space: str, task: str, seed: int) -> list:
    """The candidates of the search space for the task (each estimator built and checked)."""
    from components import adapter

    adapter.warm_start()

    from mlops.stages import train as stage

    candidates = adapter.run(
        "train", stage.expand_search_space, search_space=adapter.as_mapping(search_space), task=task, seed=seed
    )
    adapter.progress("train", f"{len(candidates)} candidates: " + ", ".join(c["id"] for c in candidates))
    return candidates


def train(
    candidate: dict,
    train_split: Input[Dataset],
    validation_split: Input[Dataset],
    preprocessor: Input[Model],
    seed: int,
    model: Output[Model],
):
    """Train one candidate on train and score it on validation."""
    from components import adapter

    adapter.warm_start()

    import pandas as pd

    from mlops.stages import train as stage
    from mlops.store import model_io

    candidate = {**candidate, "params": adapter.restore_integers(candidate["params"])}
    transform = adapter.run("train", model_io.load, path=preprocessor.path)
    fitted, scores = adapter.run(
        "train",
        stage.train_candidate,
        candidate=candidate,
        preprocessor=transform,
        train=pd.read_parquet(train_split.path),
        validation=pd.read_parquet(validation_split.path),
        target=preprocessor.metadata["target"],
        task=preprocessor.metadata["task"],
        seed=seed,
    )
    model_io.save(fitted, model.path)
    model.metadata.update({"candidate": candidate, "validation_metrics": scores, "format": model_io.FORMAT})
    adapter.progress(
        "train",
        f"{candidate['id']} {candidate['params']}: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(scores.items())),
    )


def select_best(
    candidates: Input[List[Model]],
    metric: str,
    best: Output[Model],
) -> NamedTuple("SelectOutputs", candidate=str, validation_score=float):
    """Fan-in of every candidate: the best on validation by the ranking metric."""
    from components import adapter

    adapter.warm_start()

    import shutil
    from collections import namedtuple

    from mlops.stages import train as stage

    results = [
        {
            "candidate": {
                **c.metadata["candidate"],
                "params": adapter.restore_integers(c.metadata["candidate"]["params"]),
            },
            "validation_metrics": c.metadata["validation_metrics"],
            "path": c.path,
        }
        for c in candidates
    ]
    winner = adapter.run("train", stage.pick_best, results=results, metric=metric)
    shutil.copyfile(winner["path"], best.path)
    score = winner["validation_metrics"][metric]
    best.metadata.update(
        {
            "candidate": winner["candidate"],
            "metric": metric,
            "validation_metrics": winner["validation_metrics"],
            "leaderboard": [
                {"candidate": r["candidate"], "validation_metrics": r["validation_metrics"]} for r in results
            ],
        }
    )
    adapter.progress(
        "train", f"best of {len(results)}: {winner['candidate']['id']} ({metric}={score:.4f} on validation)"
    )
    return namedtuple("SelectOutputs", "candidate validation_score")(winner["candidate"]["id"], score)


def evaluate(
    best: Input[Model],
    train_split: Input[Dataset],
    validation_split: Input[Dataset],
    test_split: Input[Dataset],
    target: str,
    task: str,
    metric: str,
    model_name: str,
    min_skill: float,
    min_score: str,
    seed: int,
    store_uri: str,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    blessing: Output[Blessing],
) -> NamedTuple("EvaluateOutputs", blessed=bool, champion_version=int):
    """Test-set metrics against a trivial predictor and the champion: the blessing decision."""
    from components import adapter

    adapter.warm_start()

    import json
    from collections import namedtuple

    import pandas as pd

    from mlops.stages import evaluate as stage
    from mlops.store import model_io, open_store

    model = adapter.run("evaluate", model_io.load, path=best.path)
    floor = adapter.run("evaluate", stage.optional_float, name="min_score", text=min_score)
    store = adapter.run("evaluate", open_store, uri=store_uri, role="pipeline")
    result = adapter.run(
        "evaluate",
        stage.evaluate_model,
        model=model,
        train=pd.read_parquet(train_split.path),
        test=pd.read_parquet(test_split.path),
        target=target,
        task=task,
        metric=metric,
        min_skill=min_skill,
        min_score=floor,
        store=store,
        model_name=model_name,
        validation=pd.read_parquet(validation_split.path),
        seed=seed,
    )
    decision = result.blessing
    for name, value in sorted(decision.test_metrics.items()):
        metrics.log_metric(f"test_{name}", value)
    metrics.log_metric(f"trivial_{metric}", decision.baseline_score)
    metrics.log_metric("skill", decision.skill)
    metrics.log_metric("blessed", 1.0 if decision.blessed else 0.0)
    if result.confusion_matrix:
        classification_metrics.log_confusion_matrix(
            result.confusion_matrix["labels"], result.confusion_matrix["matrix"]
        )
    if result.roc:
        classification_metrics.log_roc_curve(result.roc["fpr"], result.roc["tpr"], result.roc["thresholds"])
    with open(blessing.path, "w", encoding="utf-8") as handle:
        json.dump(
            {
                **decision.to_json(),
                "confusion_matrix": result.confusion_matrix,
                "roc": result.roc,
                "diagnostics": result.diagnostics,
            },
            handle,
            indent=2,
            sort_keys=True,
        )
    blessing.metadata.update(
        {
            "blessed": decision.blessed,
            "reason": decision.reason,
            "metric": metric,
            "score": decision.score,
            "champion_version": decision.champion_version or 0,
        }
    )
    adapter.progress(
        "evaluate",
        f"test {metric}={decision.score:.4f} on {decision.test_rows} rows; "
        f"{'BLESSED' if decision.blessed else 'not blessed'}: {decision.reason}",
    )
    return namedtuple("EvaluateOutputs", "blessed champion_version")(decision.blessed, decision.champion_version or 0)


def register(
    best: Input[Model],
    blessing: Input[Blessing],
    train_split: Input[Dataset],
    test_split: Input[Dataset],
    statistics: Input[Statistics],
    schema: Input[Schema],
    blessed: bool,
    champion_version: int,
    model_name: str,
    task: str,
    data_version: str,
    data_source: str,
    columns: dict,
    search_space: str,
    seed: int,
    code_version: str,
    run_id: str,
    run_name: str,
    store_uri: str,
    registered: Output[Model],
) -> NamedTuple("RegisterOutputs", model_version=int, promoted=bool, promotion=str):
    """Register the model with its lineage and baseline; promote it over the champion it was compared with."""
    from components import adapter

    adapter.warm_start()

    import hashlib
    import json
    from collections import namedtuple
    from pathlib import Path

    import pandas as pd

    from mlops import config
    from mlops.data.uris import redact
    from mlops.stages import register as stage
    from mlops.store import model_io, open_store

    if code_version == "unknown":  # not passed: the commit the image was built from
        code_version = config.CODE_VERSION.get()
    with open(best.path, "rb") as handle:
        model_bytes = handle.read()
    with open(blessing.path, encoding="utf-8") as handle:
        decision = json.load(handle)
    facts = train_split.metadata
    lineage = stage.build_lineage(
        data={
            "ref": data_version,
            "source": data_source,
            "content_hash": data_version.split("@", 1)[1],
            "rows": {k: int(v) for k, v in facts["rows_by_split"].items()},
            "columns": columns,
            "target": facts["target"],
            "dropped_missing_target": int(facts["dropped_missing_target"]),
        },
        split=facts["split_config"],
        validation={
            "schema_source": schema.metadata["source"],
            "schema_origin": schema.metadata["origin"],
            "schema_sha256": schema.metadata["sha256"],
            "tfdv_version": statistics.metadata["tfdv_version"],
        },
        task=task,
        search_space=adapter.as_mapping(search_space),
        candidate={
            **best.metadata["candidate"],
            "params": adapter.restore_integers(best.metadata["candidate"]["params"]),
        },
        metric=best.metadata["metric"],
        validation_metrics=best.metadata["validation_metrics"],
        blessing=decision,
        seed=seed,
        code_version=code_version,
        run_id=run_id,
        run_name=run_name,
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
    )
    baseline = adapter.run(
        "register",
        stage.baseline_files,
        model=model_io.loads(model_bytes, source=best.path),
        train=pd.read_parquet(train_split.path),
        test=pd.read_parquet(test_split.path),
        target=facts["target"],
        schema=Path(schema.path).read_bytes(),
        train_statistics=(Path(statistics.path) / "statistics" / "train.pb").read_bytes(),
    )
    store = adapter.run("register", open_store, uri=store_uri, role="registry")
    result = adapter.run(
        "register",
        stage.register_model,
        store=store,
        model_name=model_name,
        model_bytes=model_bytes,
        lineage=lineage,
        blessed=blessed,
        compared_champion=champion_version or None,
        baseline_files=baseline,
    )
    registered.metadata.update(
        {
            "name": result.name,
            "version": result.version,
            "ref": result.ref,
            "promoted": result.promoted,
            "store": redact(result.store),
        }
    )
    with open(registered.path, "w", encoding="utf-8") as handle:
        json.dump(result.to_json(), handle)
    adapter.progress(
        "register",
        f"{result.ref} in {redact(result.store)} ({'champion -> this version' if result.promoted else result.reason})",
    )
    return namedtuple("RegisterOutputs", "model_version promoted promotion")(
        result.version, result.promoted, result.reason
    )


def report(
    model_name: str,
    model_version: int,
    train_split: Input[Dataset],
    validation_split: Input[Dataset],
    test_split: Input[Dataset],
    statistics: Input[Statistics],
    schema: Input[Schema],
    best: Input[Model],
    blessing: Input[Blessing],
    store_uri: str,
    run_report: Output[HTML],
    summary: Output[Markdown],
):
    """The run report: one self-contained HTML page (also kept in the store, for `mlops ui`), and a
    Markdown summary for the KFP UI."""
    from components import adapter

    adapter.warm_start()

    import json
    import os

    import pandas as pd

    from mlops.reporting import report as stage
    from mlops.stages import drift
    from mlops.store import open_store
    from mlops.store.registry import ModelRegistry

    store = adapter.run("report", open_store, uri=store_uri, role="pipeline")
    version = adapter.run("report", ModelRegistry(store).get, name=model_name, version=model_version)
    with open(os.path.join(statistics.path, "result.json"), encoding="utf-8") as handle:
        validation = json.load(handle)
    with open(blessing.path, encoding="utf-8") as handle:
        decision = json.load(handle)
    frames = {
        name: pd.read_parquet(split.path)
        for name, split in (("train", train_split), ("validation", validation_split), ("test", test_split))
    }
    shift = [row.to_json() for row in drift.compare_frame(drift.profile_frame(frames["train"]), frames["validation"])]
    page = adapter.run(
        "report",
        stage.render_report,
        version=version.to_json(),
        validation=validation,
        schema_description=schema.metadata,
        leaderboard=[
            {**row, "candidate": {**row["candidate"], "params": adapter.restore_integers(row["candidate"]["params"])}}
            for row in best.metadata["leaderboard"]
        ],
        evaluation=decision,
        frames=frames,
        shift=shift,
    )
    with open(run_report.path, "w", encoding="utf-8") as handle:
        handle.write(page)
    adapter.run("report", store.put, key=stage.report_key(model_name, model_version), data=page.encode("utf-8"))
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(stage.render_summary(version=version.to_json(), evaluation=decision))
    adapter.progress("report", run_report.path)


# -- The monitor pipeline (pipelines/monitoring.py) -----------------------------------------------


def load_baseline(
    model_name: str,
    against: str,
    store_uri: str,
    schema: Output[Schema],
    statistics: Output[Statistics],
    profile: Output[Artifact],
    champion: Output[Model],
) -> NamedTuple(
    "BaselineOutputs",
    model_version=int,
    data_name=str,
    target=str,
    task=str,
    metric=str,
    test_score=float,
    search_space=str,
    seed=int,
    validation_fraction=float,
    test_fraction=float,
    split_salt=str,
    min_skill=float,
):
    """The baseline a model version carries (the champion's, unless `against` names one) as typed artifacts,
    and what a retrain of it needs."""
    from components import adapter

    adapter.warm_start()

    import json
    import os
    from collections import namedtuple
    from pathlib import Path

    from mlops.stages import monitor as stage
    from mlops.store import model_io, open_store
    from mlops.store.registry import ModelRegistry

    store = adapter.run("monitor", open_store, uri=store_uri, role="pipeline")
    baseline = adapter.run("monitor", stage.load_baseline, store=store, model_name=model_name, against=against)
    version, lineage = baseline.version, baseline.version.lineage
    Path(schema.path).write_text(baseline.schema_text, encoding="utf-8")
    os.makedirs(os.path.join(statistics.path, "statistics"), exist_ok=True)
    Path(statistics.path, "statistics", "train.pb").write_bytes(baseline.statistics)
    Path(profile.path).write_text(json.dumps(baseline.profile), encoding="utf-8")
    Path(champion.path).write_bytes(ModelRegistry(store).read_file(version, model_io.FILE_NAME))
    for artifact in (schema, statistics, profile, champion):
        artifact.metadata.update({"model": version.ref})
    schema.metadata["source"] = "registered"
    metric = lineage["params"]["metric"]
    split = lineage["split"]
    adapter.progress(
        "monitor",
        f"baseline of {version.ref} ({'champion' if not against else 'as asked'}): "
        f"{baseline.profile['rows']} training rows, schema {lineage['validation']['schema_source']}",
    )
    return namedtuple(
        "BaselineOutputs",
        "model_version data_name target task metric test_score search_space seed "
        "validation_fraction test_fraction split_salt min_skill",
    )(
        version.version,
        lineage["data"]["ref"].split("@", 1)[0],
        baseline.target,
        lineage["task"],
        metric,
        float(lineage["metrics"]["test"][metric]),
        json.dumps(lineage["params"]["search_space"], sort_keys=True),
        int(lineage["seed"]),
        float(split["validation_fraction"]),
        float(split["test_fraction"]),
        split["salt"],
        float(lineage["blessing"].get("min_skill", 0.1)),
    )


def validate_batch(
    data_version: str,
    target: str,
    schema: Input[Schema],
    statistics: Input[Statistics],
    store_uri: str,
    live_statistics: Output[Statistics],
    anomalies: Output[Anomalies],
    statistics_view: Output[HTML],
) -> NamedTuple("BatchOutputs", anomaly_count=int, rows=int):
    """TFDV on a live batch: its statistics, and anomalies against the model's schema in the SERVING
    environment (the label may be absent). Anomalies are reported; the decision is the monitor's."""
    from components import adapter

    adapter.warm_start()

    import json
    import os
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from mlops.stages import validate as stage
    from mlops.store import open_store
    from mlops.store.datasets import DataVersions

    store = adapter.run("monitor", open_store, uri=store_uri, role="pipeline")
    versions = DataVersions(store)
    batch = adapter.run("monitor", versions.resolve, ref=data_version)
    os.makedirs(live_statistics.path, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        batch_path = os.path.join(scratch, "batch.parquet")
        Path(batch_path).write_bytes(versions.read_bytes(batch))
        result = adapter.run(
            "monitor",
            stage.validate_batch,
            batch_path=batch_path,
            schema_text=Path(schema.path).read_text(encoding="utf-8"),
            label=target,
            baseline_statistics=Path(statistics.path, "statistics", "train.pb").read_bytes(),
            out_dir=live_statistics.path,
        )
    shutil.copyfile(os.path.join(live_statistics.path, "statistics.html"), statistics_view.path)
    with open(anomalies.path, "w", encoding="utf-8") as handle:
        json.dump(result["anomalies"], handle)
    anomalies.metadata["count"] = len(result["anomalies"])
    live_statistics.metadata.update({"splits": ["live"], "tfdv_version": result["tfdv_version"]})
    adapter.progress(
        "monitor",
        f"{result['rows']} rows; {len(result['anomalies'])} anomalies against the schema (SERVING environment)",
    )
    return namedtuple("BatchOutputs", "anomaly_count rows")(len(result["anomalies"]), result["rows"])


def decide(
    data_version: str,
    model_name: str,
    model_version: int,
    target: str,
    task: str,
    metric: str,
    test_score: float,
    profile: Input[Artifact],
    champion: Input[Model],
    anomalies: Input[Anomalies],
    live_statistics: Input[Statistics],
    policy: str,
    allow_retrain: bool,
    store_uri: str,
    decision_record: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
) -> NamedTuple("DecisionOutputs", decision=str, action=str, retrain_data=str, log_entry=str):
    """Drift (sample-size aware), prediction drift, live performance and the policy: none, retrain or blocked.
    The decision is appended to the model's monitor log; `action` is retrain only when retraining is allowed."""
    from components import adapter

    adapter.warm_start()

    import json
    import os
    from collections import namedtuple
    from pathlib import Path

    from mlops.stages import monitor as stage
    from mlops.store import model_io, open_store

    store = adapter.run("monitor", open_store, uri=store_uri, role="pipeline")
    rules = adapter.run("monitor", stage.parse_policy_text, text=policy)
    with open(anomalies.path, encoding="utf-8") as handle:
        found = json.load(handle)
    with open(profile.path, encoding="utf-8") as handle:
        baseline_profile = json.load(handle)
    with open(os.path.join(live_statistics.path, "result.json"), encoding="utf-8") as handle:
        tfdv_result = json.load(handle)
    kept_at = stage.report_key(model_name)
    outcome = adapter.run(
        "monitor",
        stage.monitor_batch,
        store=store,
        model_name=model_name,
        model_version=model_version,
        data_version=data_version,
        target=target,
        task=task,
        metric=metric,
        test_score=test_score,
        profile=baseline_profile,
        model=model_io.load(champion.path),
        anomalies=found,
        policy=rules,
        allow_retrain=allow_retrain,
        report_key=kept_at,
    )
    record = {**outcome.decision.to_json(), "tfdv_drift": tfdv_result.get("tfdv_drift", [])}
    Path(decision_record.path).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    decision_record.metadata.update(
        {"decision": outcome.decision.decision, "action": outcome.action, "log_entry": outcome.log_entry}
    )
    from mlops.reporting import monitor_report

    html = monitor_report.render(record)
    Path(report.path).write_text(html, encoding="utf-8")
    adapter.run("monitor", store.put, key=kept_at, data=html.encode("utf-8"))
    Path(summary.path).write_text(monitor_report.summary(record), encoding="utf-8")
    adapter.progress(
        "monitor",
        f"decision: {outcome.decision.decision} ({'; '.join(outcome.decision.reasons)})"
        + (f"; retraining on {outcome.retrain_data}" if outcome.action == "retrain" else ""),
    )
    return namedtuple("DecisionOutputs", "decision action retrain_data log_entry")(
        outcome.decision.decision, outcome.action, outcome.retrain_data, outcome.log_entry
    )


def record_retrain(model_name: str, log_entry: str, model_version: int, promoted: bool, store_uri: str):
    """Append the retrain's outcome (the version it registered) to the monitor log."""
    from components import adapter

    adapter.warm_start()

    from mlops.stages import monitor as stage
    from mlops.store import open_store

    store = adapter.run("monitor", open_store, uri=store_uri, role="pipeline")
    adapter.run(
        "monitor",
        stage.append_log,
        store=store,
        model_name=model_name,
        entry={
            "type": "retrain",
            "decision_entry": log_entry,
            "retrained_version": model_version,
            "promoted": promoted,
        },
    )
    adapter.progress(
        "monitor", f"retrained: {model_name}@{model_version}{' (now the champion)' if promoted else ' (not promoted)'}"
    )


def retrain_gate(action: str) -> str:
    """The monitor's action as this task's only output: kfp.local 2.17 evaluates a dsl.If only on a
    task's single output (not on a NamedTuple field), so the condition reads it from here."""
    return action
