"""The ``split`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from typing import NamedTuple

from kfp.dsl import Dataset, Output


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

    with adapter.stage("split") as step:
        from collections import namedtuple

        from mlops.stages import split as stage
        from mlops.store import open_store

        config = stage.SplitConfig(
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            salt=split_salt,
        )
        store = open_store(uri=store_uri, role="pipeline")
        paths = {"train": train.path, "validation": validation.path, "test": test.path}
        result = stage.split_version(store=store, data_version=data_version, target=target, split=config, paths=paths)
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
        step.progress(
            f"target '{result.target}': train {rows['train']}, validation {rows['validation']}, "
            f"test {rows['test']}"
            + (
                f"; {result.dropped_missing_target} rows without a target dropped"
                if result.dropped_missing_target
                else ""
            ),
        )
        return namedtuple("SplitOutputs", "target")(result.target)
