"""The ``validate_batch`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from typing import NamedTuple

from kfp.dsl import HTML, Input, Output

from components.artifact_types import Anomalies, Schema, Statistics


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

    with adapter.stage("monitor") as step:
        import json
        import os
        import shutil
        import tempfile
        from collections import namedtuple
        from pathlib import Path

        from mlops.stages import validate as stage
        from mlops.store import open_store
        from mlops.store.datasets import DataVersions

        store = open_store(uri=store_uri, role="pipeline")
        versions = DataVersions(store)
        batch = versions.resolve(ref=data_version)
        os.makedirs(live_statistics.path, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            batch_path = os.path.join(scratch, "batch.parquet")
            Path(batch_path).write_bytes(versions.read_bytes(batch))
            result = stage.validate_batch(
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
        step.progress(
            f"{result['rows']} rows; {len(result['anomalies'])} anomalies against the schema (SERVING environment)",
        )
        return namedtuple("BatchOutputs", "anomaly_count rows")(len(result["anomalies"]), result["rows"])
