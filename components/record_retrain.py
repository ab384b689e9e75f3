"""The ``record_retrain`` component. Its source is embedded in the compiled spec: imports stay inside its body."""


def record_retrain(model_name: str, log_entry: str, model_version: int, promoted: bool, store_uri: str):
    """Append the retrain's outcome (the version it registered) to the monitor log."""
    from components import adapter

    with adapter.stage("monitor") as step:
        from mlops.stages import monitor as stage
        from mlops.store import open_store

        store = open_store(uri=store_uri, role="pipeline")
        stage.append_log(
            store=store,
            model_name=model_name,
            entry={
                "type": "retrain",
                "decision_entry": log_entry,
                "retrained_version": model_version,
                "promoted": promoted,
            },
        )
        step.progress(
            f"retrained: {model_name}@{model_version}{' (now the champion)' if promoted else ' (not promoted)'}"
        )
