"""The ``register`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Model, Output

from components.artifact_types import Blessing, Schema, Statistics


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

    with adapter.stage("register") as step:
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
        from mlops.stages.prepare import feature_decisions

        model = model_io.loads(model_bytes, source=best.path)
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
            features=feature_decisions(model),
        )
        baseline = stage.baseline_files(
            model=model,
            train=pd.read_parquet(train_split.path),
            test=pd.read_parquet(test_split.path),
            target=facts["target"],
            schema=Path(schema.path).read_bytes(),
            train_statistics=(Path(statistics.path) / "statistics" / "train.pb").read_bytes(),
        )
        store = open_store(uri=store_uri, role="registry")
        result = stage.register_model(
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
        step.progress(
            f"{result.ref} in {redact(result.store)} "
            f"({'champion -> this version' if result.promoted else result.reason})",
        )
        return namedtuple("RegisterOutputs", "model_version promoted promotion")(
            result.version, result.promoted, result.reason
        )
