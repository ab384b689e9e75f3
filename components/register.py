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
        import json
        from collections import namedtuple

        from mlops.data.uris import redact
        from mlops.stages import register as stage
        from mlops.store import open_store

        result = stage.register_run(
            store=open_store(uri=store_uri, role="registry"),
            model_name=model_name,
            model_path=best.path,
            candidate={
                **best.metadata["candidate"],
                "params": adapter.restore_integers(best.metadata["candidate"]["params"]),
            },
            metric=best.metadata["metric"],
            validation_metrics=best.metadata["validation_metrics"],
            training_rows=adapter.restore_integers(dict(best.metadata.get("training_rows") or {})),
            blessing_path=blessing.path,
            blessed=blessed,
            champion_version=champion_version,
            train_path=train_split.path,
            test_path=test_split.path,
            split_facts=dict(train_split.metadata),
            schema_path=schema.path,
            schema_facts=dict(schema.metadata),
            statistics_dir=statistics.path,
            tfdv_version=statistics.metadata["tfdv_version"],
            task=task,
            data_version=data_version,
            data_source=data_source,
            columns=columns,
            search_space=adapter.as_mapping(search_space),
            seed=seed,
            code_version=code_version,
            run_id=run_id,
            run_name=run_name,
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
