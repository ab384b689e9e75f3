"""The ``validate`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from typing import NamedTuple

from kfp.dsl import HTML, Dataset, Input, Output

from components.artifact_types import Anomalies, Schema, Statistics


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
    beam_runner: str = "",
    beam_options: str = "",
) -> NamedTuple("ValidateOutputs", schema_source=str, schema_sha256=str, schema_kinds=str):
    """TFDV statistics and anomalies of every split against the schema that applies; anomalies stop the run.

    The schema's digest and kind tags (JSON) are outputs too: values, so the tasks that need only them
    stay cacheable although this task, which reads the registry and the schema files, never is.
    ``beam_runner`` (direct, spark, flink) and ``beam_options`` (space-separated KEY=VALUE) choose where
    TFDV's Beam pipeline computes the statistics (docs/beam.md); blank: past a size threshold, in process.
    """
    from components import adapter

    with adapter.stage("validate") as step:
        import json
        import os
        import shutil
        from collections import namedtuple

        from mlops.stages import validate as stage
        from mlops.store import open_store

        os.makedirs(statistics.path, exist_ok=True)
        splits = {"train": train.path, "validation": validation.path, "test": test.path}
        store = open_store(uri=store_uri, role="pipeline")
        checked = stage.validate_splits(
            splits=splits,
            model_name=model_name,
            store=store,
            out_dir=statistics.path,
            schema_uri=schema_uri,
            beam_runner=beam_runner,
            beam_options_text=beam_options,
        )
        result = checked.result
        shutil.copyfile(os.path.join(statistics.path, "statistics.html"), statistics_view.path)
        shutil.copyfile(os.path.join(statistics.path, "schema.pbtxt"), schema.path)
        with open(anomalies.path, "w", encoding="utf-8") as handle:
            json.dump(result["anomalies"], handle)
        schema.metadata.update(
            {
                "source": checked.schema.source,
                "origin": checked.schema.origin,
                "sha256": checked.schema_sha256,
                "model_name": model_name,
            }
        )
        statistics.metadata.update(
            {
                "splits": sorted(splits),
                "tfdv_version": result["tfdv_version"],
                "schema_source": checked.schema.source,
                "statistics_engine": result["statistics_engine"],
                "statistics_runner": result.get("statistics_runner") or "",
            }
        )
        anomalies.metadata["count"] = len(result["anomalies"])
        step.progress(
            f"no anomalies against {checked.schema.describe()} (another schema: --schema FILE or another --model-name)",
        )
        outputs = namedtuple("ValidateOutputs", "schema_source schema_sha256 schema_kinds")
        return outputs(checked.schema.source, checked.schema_sha256, json.dumps(checked.schema_kinds, sort_keys=True))
