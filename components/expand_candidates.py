"""The ``expand_candidates`` component. Its source is embedded in the compiled spec: imports stay inside its body."""


def expand_candidates(search_space: str, task: str, seed: int) -> list:
    """The candidates of the search space for the task (each estimator built and checked)."""
    from components import adapter

    with adapter.stage("train") as step:
        from mlops.stages import train as stage

        candidates = stage.expand_search_space(search_space=adapter.as_mapping(search_space), task=task, seed=seed)
        step.progress(f"{len(candidates)} candidates: " + ", ".join(c["id"] for c in candidates))
        return candidates
