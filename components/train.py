"""Train: expand the search space, fit each candidate, pick the best on validation.

Candidates run as a KFP ParallelFor (one task each) and meet again through
dsl.Collected in ``select_best``. Every estimator gets the run's seed and
n_jobs=1, so a candidate trained twice on the same data is bit-identical.
"""

import itertools
from typing import List

import pandas as pd
from kfp.dsl import Dataset, Input, Model, Output
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline

from components.metrics import higher_is_better, score_model
from components.runtime import StageError

# family -> {task: estimator class}
FAMILIES = {
    "logistic_regression": {"classification": LogisticRegression},
    "ridge": {"regression": Ridge},
    "random_forest": {"classification": RandomForestClassifier, "regression": RandomForestRegressor},
    "hist_gradient_boosting": {"classification": HistGradientBoostingClassifier,
                               "regression": HistGradientBoostingRegressor},
    "knn": {"classification": KNeighborsClassifier, "regression": KNeighborsRegressor},
}
# One thread per candidate: KFP runs candidates in parallel already, and
# single-threaded fits are bit-for-bit repeatable.
DEFAULT_FIXED_PARAMS = {
    "logistic_regression": {"max_iter": 2000},
    "random_forest": {"n_jobs": 1},
    "knn": {"n_jobs": 1},
}


def expand_search_space(search_space: dict, task: str) -> list[dict]:
    """Turn ``{family: {param: [values]}}`` for ``task`` into a list of candidates.

    Each candidate is ``{"id", "family", "params"}``; ids are stable so the
    same search space gives the same candidate names in every run.
    """
    if not isinstance(search_space, dict) or not isinstance(search_space.get("candidates"), dict):
        raise StageError("the search space must be a mapping with a 'candidates' mapping by task")
    families = search_space["candidates"].get(task)
    if not families:
        raise StageError(f"the search space has no candidates for task {task!r}")
    candidates = []
    for family, grid in families.items():
        if task not in FAMILIES.get(family, {}):
            known = sorted(f for f, tasks in FAMILIES.items() if task in tasks)
            raise StageError(f"unknown model family {family!r} for {task}; known: {', '.join(known)}")
        grid = grid or {}
        names = sorted(grid)
        value_lists = [grid[name] if isinstance(grid[name], list) else [grid[name]] for name in names]
        for values in itertools.product(*value_lists):
            params = dict(zip(names, values))
            candidates.append({"id": f"c{len(candidates) + 1:02d}-{family}", "family": family, "params": params})
    return candidates


def restore_integers(params: dict) -> dict:
    """Whole-number floats back to ints.

    Loop items travel as protobuf Structs, whose numbers are all doubles, so
    ``max_depth: 8`` arrives as 8.0, which scikit-learn rejects. Every
    float-typed parameter accepts an int, so the reverse is always safe.
    """
    return {key: int(value) if isinstance(value, float) and value.is_integer() else value
            for key, value in params.items()}


def make_estimator(family: str, params: dict, task: str, seed: int):
    params = restore_integers(params)
    estimator_class = FAMILIES[family][task]
    estimator = estimator_class(**{**DEFAULT_FIXED_PARAMS.get(family, {}), **params})
    available = estimator.get_params()
    fixed = {"random_state": seed} if "random_state" in available else {}
    try:
        return estimator.set_params(**fixed)
    except ValueError as error:
        raise StageError(f"bad parameters for {family}: {error}") from None


def train_candidate(candidate: dict, preprocessor, train: pd.DataFrame, validation: pd.DataFrame,
                    target: str, task: str, seed: int) -> tuple[Pipeline, dict]:
    """Fit one candidate on train (the fitted preprocessor is reused, not refit) and score it on validation."""
    estimator = make_estimator(candidate["family"], candidate["params"], task, seed)
    features = preprocessor.transform(train.drop(columns=[target]))
    try:
        estimator.fit(features, train[target])
    except (ValueError, TypeError) as error:
        raise StageError(f"candidate {candidate['id']} failed to train: {error}") from None
    model = Pipeline([("features", preprocessor), ("model", estimator)])
    scores = score_model(model, validation.drop(columns=[target]), validation[target], task)
    return model, scores


def pick_best(results: list[dict], metric: str) -> dict:
    """The best result by ``metric``; ties go to the earlier candidate id (stable)."""
    scored = [r for r in results if metric in r["validation_metrics"]]
    if not scored:
        raise StageError(f"no candidate has the metric {metric!r}")
    sign = 1 if higher_is_better(metric) else -1
    return sorted(scored, key=lambda r: (-sign * r["validation_metrics"][metric], r["candidate"]["id"]))[0]


def expand_candidates(search_space: str, prepare_info: str) -> list:
    """KFP component: the candidate list for the task that prepare detected."""
    from components import runtime
    from components import train as stage

    task = runtime.parse_json(prepare_info)["task"]
    candidates = runtime.run_stage("train", stage.expand_search_space, search_space=runtime.parse_json(search_space),
                                   task=task)
    runtime.report_progress("train", f"{len(candidates)} candidates: " + ", ".join(c["id"] for c in candidates))
    return candidates


def train(
    candidate: dict,
    train_split: Input[Dataset],
    validation_split: Input[Dataset],
    preprocessor: Input[Model],
    seed: int,
    model: Output[Model],
) -> str:
    """KFP component: train one candidate; the model directory holds model.joblib and result.json."""
    import json
    import os

    import joblib
    import pandas as pd

    from components import prepare, runtime
    from components import train as stage

    candidate = {**candidate, "params": stage.restore_integers(candidate["params"])}
    transform, info = prepare.load_preprocessor(preprocessor.path)
    fitted, scores = runtime.run_stage(
        "train", stage.train_candidate, candidate=candidate, preprocessor=transform,
        train=pd.read_parquet(train_split.path), validation=pd.read_parquet(validation_split.path),
        target=info["target"], task=info["task"], seed=seed)
    os.makedirs(model.path, exist_ok=True)
    joblib.dump(fitted, os.path.join(model.path, "model.joblib"))
    result = {"candidate": candidate, "validation_metrics": scores}
    with open(os.path.join(model.path, "result.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, sort_keys=True)
    model.metadata.update({"candidate": candidate["id"], **{f"validation_{k}": v for k, v in scores.items()}})
    runtime.report_progress("train", f"{candidate['id']} {candidate['params']}: "
                            + ", ".join(f"{k}={v:.4f}" for k, v in sorted(scores.items())))
    return json.dumps(result)


def select_best(candidates: Input[List[Model]], search_space: str, prepare_info: str, best: Output[Model]) -> str:
    """KFP component: fan-in of all candidates; copies the best one to ``best``."""
    import json
    import os
    import shutil

    from components import metrics, runtime
    from components import train as stage

    info = runtime.parse_json(prepare_info)
    metric = runtime.run_stage("train", metrics.resolve_metric, name=runtime.parse_json(search_space).get("metric", "auto"),
                               task=info["task"])
    results = []
    for candidate in candidates:
        with open(os.path.join(candidate.path, "result.json"), encoding="utf-8") as handle:
            results.append({**json.load(handle), "path": candidate.path})
    winner = runtime.run_stage("train", stage.pick_best, results=results, metric=metric)
    shutil.copytree(winner["path"], best.path)
    best.metadata.update({"candidate": winner["candidate"]["id"], "metric": metric,
                          f"validation_{metric}": winner["validation_metrics"][metric]})
    runtime.report_progress("train", f"best of {len(results)}: {winner['candidate']['id']} "
                            f"({metric}={winner['validation_metrics'][metric]:.4f} on validation)")
    table = [{"candidate": r["candidate"], "validation_metrics": r["validation_metrics"]} for r in results]
    return json.dumps({"metric": metric, "best": winner["candidate"]["id"], "candidates": table})
