"""The ``prepare`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Model, Output


def prepare(
    train_split: Input[Dataset],
    target: str,
    task: str,
    search_space: str,
    preprocessor: Output[Model],
) -> NamedTuple("PrepareOutputs", task=str, metric=str):
    """Decide the task and the ranking metric; fit the feature transform on the training split only."""
    from components import adapter

    with adapter.stage("prepare") as step:
        from collections import namedtuple

        import pandas as pd

        from mlops.stages import metrics
        from mlops.stages import prepare as stage
        from mlops.store import model_io

        fitted, info = stage.fit_preprocessor(
            train=pd.read_parquet(train_split.path),
            target=target,
            requested_task=task,
            overrides=adapter.as_mapping(search_space).get("features"),
        )
        metric = metrics.resolve_metric(
            name=adapter.as_mapping(search_space).get("metric", "auto"),
            task=info["task"],
        )
        model_io.save(fitted, preprocessor.path)
        preprocessor.metadata.update({**info, "metric": metric, "format": model_io.FORMAT})
        step.progress(
            f"{info['task']} of '{target}' ranked by {metric}: {len(info['numeric_features'])} "
            f"numeric and {len(info['categorical_features'])} categorical features -> "
            f"{info['output_features']} model inputs (fitted on train only)",
        )
        for line in stage.describe_decisions(info["features"]):
            step.progress(line)
        return namedtuple("PrepareOutputs", "task metric")(info["task"], metric)
