"""The ``report`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from kfp.dsl import HTML, Dataset, Input, Markdown, Model, Output

from components.artifact_types import Blessing, Schema, Statistics


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

    with adapter.stage("report") as step:
        import json
        import os

        from mlops.reporting import report as stage
        from mlops.store import open_store
        from mlops.store.registry import ModelRegistry

        store = open_store(uri=store_uri, role="pipeline")
        version = ModelRegistry(store).get(name=model_name, version=model_version)
        with open(os.path.join(statistics.path, "result.json"), encoding="utf-8") as handle:
            validation = json.load(handle)
        with open(blessing.path, encoding="utf-8") as handle:
            decision = json.load(handle)
        # The splits a column at a time: every row, never a whole split in memory.
        frames = stage.split_columns(
            {"train": train_split.path, "validation": validation_split.path, "test": test_split.path}
        )
        shift = stage.train_validation_shift(frames)
        page = stage.render_report(
            version=version.to_json(),
            validation=validation,
            schema_description=schema.metadata,
            leaderboard=[
                {
                    **row,
                    "candidate": {**row["candidate"], "params": adapter.restore_integers(row["candidate"]["params"])},
                }
                for row in best.metadata["leaderboard"]
            ],
            evaluation=decision,
            frames=frames,
            shift=shift,
        )
        with open(run_report.path, "w", encoding="utf-8") as handle:
            handle.write(page)
        store.put(key=stage.report_key(model_name, model_version), data=page.encode("utf-8"))
        with open(summary.path, "w", encoding="utf-8") as handle:
            handle.write(stage.render_summary(version=version.to_json(), evaluation=decision))
        step.progress(run_report.path)
