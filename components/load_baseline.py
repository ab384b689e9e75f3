"""The ``load_baseline`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from typing import NamedTuple

from kfp.dsl import Artifact, Model, Output

from components.artifact_types import Schema, Statistics


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

    with adapter.stage("monitor") as step:
        import json
        import os
        from collections import namedtuple
        from pathlib import Path

        from mlops.stages import monitor as stage
        from mlops.store import model_io, open_store
        from mlops.store.registry import ModelRegistry

        store = open_store(uri=store_uri, role="pipeline")
        baseline = stage.load_baseline(store=store, model_name=model_name, against=against)
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
        step.progress(
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
