"""The ``ingest`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from typing import NamedTuple


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

    with adapter.stage("ingest") as step:
        from collections import namedtuple

        from mlops.stages import ingest as stage
        from mlops.store import open_store

        stage.check_run_parameters(
            model_name=model_name,
            search_space=adapter.as_mapping(search_space),
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            min_score=min_score,
        )
        store = open_store(uri=store_uri, role="pipeline")
        result = stage.ingest_source(data_uri=data_uri, store=store, name=data_name)
        version = result.version
        step.progress(
            f"{version.rows} rows x {len(version.columns)} columns -> data version "
            f"{version.ref}{' (new)' if result.new else ''}",
        )
        return namedtuple("IngestOutputs", "data_version source columns")(
            version.full_ref, result.source, result.columns
        )
