"""The ``expand_candidates`` component. Its source is embedded in the compiled spec: imports stay inside its body."""


def expand_candidates(search_space: str, task: str, seed: int, train_rows: int = 0, model_inputs: int = 0) -> list:
    """The candidates of the search space for the task (each estimator built and checked), trimmed on a
    large table when the search space is size-aware (training rows x model inputs, from prepare)."""
    from components import adapter

    with adapter.stage("train") as step:
        from mlops.stages import train as stage
        from mlops.stages.search_space import size_aware

        space, note = size_aware(adapter.as_mapping(search_space), task, train_rows, model_inputs)
        if note:
            step.progress(note)
        candidates = stage.expand_search_space(search_space=space, task=task, seed=seed)
        step.progress(f"{len(candidates)} candidates: " + ", ".join(c["id"] for c in candidates))
        return candidates
