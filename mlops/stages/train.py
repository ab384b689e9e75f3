"""Train: the search space, one candidate's fit, and the choice of the best.

Candidates run as a KFP ParallelFor (one task each) and meet again through
dsl.Collected. Every estimator gets the run's seed and n_jobs=1, so a
candidate trained twice on the same data is bit-identical.

The search space (the params file) is checked as a whole before anything
trains (:func:`check_search_space`): unknown keys, families and
hyperparameters, and values the estimator would reject, each get one line.
"""

from __future__ import annotations

import difflib
import importlib
import itertools
import math

from mlops import config
from mlops.errors import StageError
from mlops.stages.metrics import METRICS, higher_is_better, score_model

# family -> {task: estimator class}, imported when first used: a task that only
# ranks results (select_best) should not pay for importing scikit-learn's ensembles.
FAMILIES = {
    "logistic_regression": {"classification": "sklearn.linear_model:LogisticRegression"},
    "ridge": {"regression": "sklearn.linear_model:Ridge"},
    "random_forest": {
        "classification": "sklearn.ensemble:RandomForestClassifier",
        "regression": "sklearn.ensemble:RandomForestRegressor",
    },
    "hist_gradient_boosting": {
        "classification": "sklearn.ensemble:HistGradientBoostingClassifier",
        "regression": "sklearn.ensemble:HistGradientBoostingRegressor",
    },
    "knn": {
        "classification": "sklearn.neighbors:KNeighborsClassifier",
        "regression": "sklearn.neighbors:KNeighborsRegressor",
    },
}


def estimator_class(family: str, task: str):
    module, _, name = FAMILIES[family][task].partition(":")
    return getattr(importlib.import_module(module), name)


# One thread per candidate: KFP runs candidates in parallel already, and
# single-threaded fits are bit-for-bit repeatable.
DEFAULT_FIXED_PARAMS = {
    "logistic_regression": {"max_iter": 2000},
    "random_forest": {"n_jobs": 1},
    "knn": {"n_jobs": 1},
}
# Set by the pipeline, not by the params file.
RESERVED_PARAMS = {"random_state", "n_jobs"}
# features: column -> kind, overriding what prepare detects (mlops.stages.features).
# size_aware: trim the grid on large tables (mlops.stages.search_space.size_aware).
SEARCH_SPACE_KEYS = {"metric", "candidates", "features", "size_aware"}
TASK_NAMES = ("classification", "regression")


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def make_estimator(family: str, params: dict, task: str, seed: int):
    """The estimator for one candidate, with its parameters checked by scikit-learn itself."""
    if task not in FAMILIES.get(family, {}):
        known = sorted(f for f, tasks in FAMILIES.items() if task in tasks)
        raise StageError(
            f"unknown model family {family!r} for {task}{_suggest(family, known)}; known: {', '.join(known)}"
        )
    cls = estimator_class(family, task)
    available = cls().get_params()
    for name in params:
        if name in RESERVED_PARAMS:
            raise StageError(
                f"{family}: {name!r} is set by the pipeline (seed, one thread); remove it from the params file"
            )
        if name not in available:
            raise StageError(f"unknown hyperparameter {name!r} for {family} ({task}){_suggest(name, available)}")
    fixed = {"random_state": seed} if "random_state" in available else {}
    estimator = cls(**{**DEFAULT_FIXED_PARAMS.get(family, {}), **params, **fixed})
    try:
        # scikit-learn's own parameter constraints, checked now rather than after
        # minutes of training (BaseEstimator._validate_params, scikit-learn >= 1.2).
        estimator._validate_params()
    except (ValueError, TypeError) as error:
        raise StageError(f"bad parameters for {family} ({task}): {error}") from None
    return estimator


def _value_lists(family: str, task: str, grid) -> tuple[list[str], list[list]]:
    if grid is None:
        grid = {}
    if not isinstance(grid, dict):
        raise StageError(f"candidates.{task}.{family} must map hyperparameters to values, got {grid!r}")
    names = sorted(grid)
    lists = []
    for name in names:
        values = grid[name] if isinstance(grid[name], list) else [grid[name]]
        if not values:
            raise StageError(f"candidates.{task}.{family}.{name} is an empty list")
        lists.append(values)
    return names, lists


def _check_size(task_families: dict) -> None:
    """Refuse a search space with more combinations than MLOPS_MAX_CANDIDATES, counted without
    enumerating them (a grid of 500,000 would otherwise hang the pre-flight and the fan-out)."""
    limit = config.MAX_CANDIDATES.get()
    for task, families in task_families.items():
        if not isinstance(families, dict):
            continue
        total = 0
        for family, grid in families.items():
            _, value_lists = _value_lists(family, task, grid)
            total += math.prod(len(values) for values in value_lists)
        if total > limit:
            raise StageError(
                f"the search space has {total} candidates for {task}, over the limit of {limit} "
                f"({config.MAX_CANDIDATES.name}); list fewer values"
            )


def expand_search_space(
    search_space: dict, task: str, seed: int = 0, train_rows: int = 0, model_inputs: int = 0
) -> list[dict]:
    """Turn ``{family: {param: [values]}}`` for ``task`` into checked candidates.

    Each candidate is ``{"id", "family", "params"}``; ids are stable so the same
    search space gives the same candidate names in every run. Every candidate's
    estimator is built (and its parameters checked) here. With the training
    split's size (``train_rows`` x ``model_inputs``), a ``size_aware`` search
    space is trimmed first (mlops.stages.search_space.size_aware).
    """
    check_search_space(search_space)
    if train_rows and model_inputs:
        from mlops.stages.search_space import size_aware

        search_space, _ = size_aware(search_space, task, train_rows, model_inputs)
    families = search_space["candidates"].get(task)
    if not families:
        raise StageError(f"the search space has no candidates for task {task!r}")
    candidates = []
    for family, grid in families.items():
        names, value_lists = _value_lists(family, task, grid)
        for values in itertools.product(*value_lists):
            params = dict(zip(names, values))
            make_estimator(family, params, task, seed)
            candidates.append({"id": f"c{len(candidates) + 1:02d}-{family}", "family": family, "params": params})
    return candidates


def check_search_space(search_space) -> None:
    """The params file's shape, metric, families and every hyperparameter, or one StageError line."""
    if not isinstance(search_space, dict):
        raise StageError("the search space must be a mapping with 'metric' and 'candidates'")
    unknown = sorted(set(search_space) - SEARCH_SPACE_KEYS)
    if unknown:
        raise StageError(
            f"unknown key {unknown[0]!r} in the search space{_suggest(unknown[0], SEARCH_SPACE_KEYS)}; "
            f"allowed: {', '.join(sorted(SEARCH_SPACE_KEYS))}"
        )
    if not isinstance(search_space.get("size_aware", False), bool):
        raise StageError(f"size_aware in the search space must be true or false, got {search_space['size_aware']!r}")
    metric = search_space.get("metric", "auto")
    if not isinstance(metric, str) or (metric not in METRICS and metric != "auto"):
        raise StageError(
            f"unknown metric {metric!r}{_suggest(str(metric), METRICS)}; choose one of: auto, {', '.join(METRICS)}"
        )
    from mlops.stages.features import check_overrides

    check_overrides(search_space.get("features"), None)
    candidates = search_space.get("candidates")
    if not isinstance(candidates, dict) or not candidates:
        raise StageError("the search space needs a 'candidates' mapping by task (classification, regression)")
    for task, families in candidates.items():
        if task not in TASK_NAMES:
            raise StageError(
                f"unknown task {task!r} under candidates{_suggest(str(task), TASK_NAMES)}; "
                f"use {' or '.join(TASK_NAMES)}"
            )
        if not isinstance(families, dict) or not families:
            raise StageError(f"candidates.{task} must map model families to hyperparameters")
    _check_size(candidates)
    for task, families in candidates.items():
        for family, grid in families.items():
            names, value_lists = _value_lists(family, task, grid)
            for values in itertools.product(*value_lists):
                make_estimator(family, dict(zip(names, values)), task, seed=0)


def train_candidate(candidate: dict, preprocessor, train, validation, target: str, task: str, seed: int):
    """Fit one candidate on train (the fitted preprocessor is reused, not refit) and score it on validation."""
    from sklearn.pipeline import Pipeline

    estimator = make_estimator(candidate["family"], candidate["params"], task, seed)
    features = preprocessor.transform(train.drop(columns=[target]))
    with one_thread():
        try:
            estimator.fit(features, train[target])
        except (ValueError, TypeError) as error:
            raise StageError(f"candidate {candidate['id']} failed to train: {error}") from None
        model = Pipeline([("features", preprocessor), ("model", estimator)])
        scores = score_model(model, validation.drop(columns=[target]), validation[target], task)
    return model, scores


def one_thread():
    """One OpenMP/BLAS thread while a candidate fits, as n_jobs=1 gives the others: histogram gradient
    boosting has no n_jobs and takes every core, and with candidates in parallel on a loaded machine its
    threads wait on each other (10x slower at 70,000 rows on 2 busy cores: 147 s against 14 s)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def pick_best(results: list[dict], metric: str) -> dict:
    """The best result by ``metric``; ties go to the earlier candidate id (stable)."""
    scored = [r for r in results if metric in r["validation_metrics"]]
    if not scored:
        raise StageError(
            f"no candidate could be scored by {metric!r} on the validation split "
            "(it needs every class present); choose another metric in the params file"
        )
    sign = 1 if higher_is_better(metric) else -1
    return sorted(scored, key=lambda r: (-sign * r["validation_metrics"][metric], r["candidate"]["id"]))[0]
