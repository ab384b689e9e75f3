"""The ``prepare`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Model, Output


def prepare(
    train_split: Input[Dataset],
    schema_sha256: str,
    schema_kinds: str,
    target: str,
    task: str,
    search_space: str,
    seed: int,
    memory_budget_mb: int,
    preprocessor: Output[Model],
) -> NamedTuple("PrepareOutputs", task=str, metric=str, train_rows=int, model_inputs=int):
    """Decide the task and the ranking metric; fit the feature transform on the training split only, on the
    rows every candidate will train on: all of them within the memory budget, else a seed-keyed sample
    (recorded in the preprocessor's metadata as ``training_rows``, which the train tasks read).

    Feature kinds: the params file's ``features`` section, then the validated schema's kind tags, then detection.
    The schema comes as values (its sha256 and its kind tags as JSON), not as validate's artifact: validate
    never caches, and a new artifact on every run would re-run this task and all training after it.
    """
    from components import adapter

    with adapter.stage("prepare") as step:
        from collections import namedtuple

        from mlops.stages import metrics
        from mlops.stages import prepare as stage
        from mlops.store import model_io

        fitted, info, training_rows = stage.fit_on_split(
            path=train_split.path,
            target=target,
            requested_task=task,
            overrides=adapter.as_mapping(search_space).get("features"),
            schema_kinds=adapter.as_mapping(schema_kinds),
            seed=seed,
            memory_budget_mb=memory_budget_mb,
        )
        metric = metrics.resolve_metric(
            name=adapter.as_mapping(search_space).get("metric", "auto"),
            task=info["task"],
        )
        model_io.save(fitted, preprocessor.path)
        preprocessor.metadata.update(
            {
                **info,
                "metric": metric,
                "format": model_io.FORMAT,
                "schema_sha256": schema_sha256,
                "training_rows": training_rows.to_json(),
            }
        )
        step.progress(
            f"{info['task']} of '{target}' ranked by {metric}: {len(info['numeric_features'])} "
            f"numeric and {len(info['categorical_features'])} categorical features -> "
            f"{info['output_features']} model inputs (fitted on train only)",
        )
        if training_rows.sampled:
            step.progress(f"transform fitted on {training_rows.describe()}")
        for line in stage.describe_decisions(info["features"]):
            step.progress(line)
        outputs = namedtuple("PrepareOutputs", "task metric train_rows model_inputs")
        return outputs(info["task"], metric, info["train_rows"], info["output_features"])
