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
from dataclasses import asdict, dataclass

from mlops import config
from mlops.errors import StageError
from mlops.stages.metrics import METRICS, higher_is_better, predict_split, split_batches

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


# -- The training rows: all of them within the memory budget, else a seed-keyed sample ----------------

# What one text cell costs in a pandas frame: the object pointer and a short Python str (49 bytes + its text).
TEXT_CELL_BYTES = 64
# A candidate holds its model matrix (8 bytes a model input) and, while it fits, about one working copy of
# it: histogram gradient boosting's early-stopping split and its binned inputs, the random forest's float32
# copy, the transform's temporaries. Measured on the bench's table (20 columns, 30 model inputs), a
# candidate's peak over its process's start was 660 to 750 MB at 1M rows: within the 770 MB counted.
MATRIX_COPIES = 2
SAMPLE_SCHEME = "row-key-sample-v1"
SAMPLE_BATCH_ROWS = 65_536
# Rows a candidate's transform works on at once (:func:`transform_in_chunks`).
TRANSFORM_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class TrainingRows:
    """Which rows of the training split a candidate was fitted on, and why (recorded in the lineage)."""

    used: int
    available: int
    how: str  # "all", or SAMPLE_SCHEME: the rows whose row keys, salted with the seed, are smallest
    seed: int
    memory_budget_mb: int
    estimated_mb: float  # what all the rows would take (:func:`training_bytes_per_row`)

    @property
    def sampled(self) -> bool:
        return self.used < self.available

    def to_json(self) -> dict:
        return {**asdict(self), "sampled": self.sampled}

    @classmethod
    def from_json(cls, record: dict) -> TrainingRows:
        """The inverse of :meth:`to_json` (integers may come back as floats from a metadata store)."""
        counts = {name: int(record[name]) for name in ("used", "available", "seed", "memory_budget_mb")}
        return cls(**counts, how=str(record["how"]), estimated_mb=float(record["estimated_mb"]))

    def describe(self) -> str:
        if not self.sampled:
            return (
                f"all {self.available:,} training rows (about {self.estimated_mb:,.0f} MB, "
                f"within the {self.memory_budget_mb:,} MB training budget)"
            )
        return (
            f"{self.used:,} of {self.available:,} training rows (all would need about {self.estimated_mb:,.0f} MB, "
            f"over the {self.memory_budget_mb:,} MB training budget): the rows whose content keys salted with "
            f"seed {self.seed} are smallest ({self.how})"
        )


def describe_training_rows(record: dict | None) -> str:
    """:meth:`TrainingRows.describe` of a lineage record's ``training.rows`` ("" when it has none: a model
    registered before the record was kept)."""
    if not record or "used" not in record:
        return ""
    return TrainingRows.from_json(record).describe()


def training_bytes_per_row(schema, model_inputs: int) -> int:
    """The memory one training row is counted as against the budget: 8 bytes for each number, boolean or
    date column of the split, TEXT_CELL_BYTES for each other column (the frame the rows are read into), and
    8 bytes times MATRIX_COPIES for each model input (the float64 matrix the estimator is fitted on and its
    working copy). A candidate's peak memory is about the budget over what its process holds before it reads
    the rows (0.3 GB: Python, pandas, scikit-learn)."""
    import pyarrow as pa

    def cell(kind) -> int:
        fixed = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        return 8 if fixed or pa.types.is_temporal(kind) or pa.types.is_decimal(kind) else TEXT_CELL_BYTES

    return sum(cell(field.type) for field in schema) + 8 * MATRIX_COPIES * model_inputs


def choose_training_rows(path, model_inputs: int, seed: int, memory_budget_mb: int) -> TrainingRows:
    """How many rows of the training split at ``path`` a candidate fits on: all of them when they fit
    ``memory_budget_mb`` (counted by :func:`training_bytes_per_row`), else as many as fit, sampled by
    :func:`sample_rows`. Prepare decides it once (mlops.stages.prepare.fit_on_split) and fits the transform
    on those rows; every candidate reads the same rows (:func:`read_training_rows`)."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    available = parquet.metadata.num_rows
    per_row = training_bytes_per_row(parquet.schema_arrow, model_inputs)
    fitting = max(1, int(memory_budget_mb * 2**20 // per_row))
    return TrainingRows(
        used=min(available, fitting),
        available=available,
        how="all" if available <= fitting else SAMPLE_SCHEME,
        seed=seed,
        memory_budget_mb=int(memory_budget_mb),
        estimated_mb=round(available * per_row / 2**20, 1),
    )


def read_training_rows(path, rows: TrainingRows):
    """The rows ``rows`` names as a frame: every row exactly as ``pd.read_parquet(path)`` reads them (so
    a split within the budget trains the same model as before there was one), else :func:`sample_rows`."""
    import pandas as pd

    if not rows.sampled:
        return pd.read_parquet(path)
    return sample_rows(path, rows.used, rows.seed)


def load_training_rows(path, model_inputs: int, seed: int, memory_budget_mb: int):
    """:func:`choose_training_rows` and :func:`read_training_rows`: returns (frame, TrainingRows)."""
    rows = choose_training_rows(path, model_inputs, seed, memory_budget_mb)
    return read_training_rows(path, rows), rows


def sample_rows(path, rows: int, seed: int):
    """``rows`` rows of a Parquet split, chosen by content and seed alone: each row's 64-bit content key
    (mlops.data.content, what the split is drawn from) salted with the seed (:func:`_salted`, splitmix64 as the
    split's salt), and the rows with the smallest salted keys kept, in the file's order (the split's canonical
    order). The same seed gives the same rows whatever the file's row groups, and fewer rows are a subset
    of more. Two passes over the file, one record batch at a time, so only the sample is ever whole in
    memory: its record batches, then (each column freed as it is converted) its frame, with the types
    ``pd.read_parquet`` gives."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops.data.content import row_keys

    parquet = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering keeps every row group read until closed
    salted = np.concatenate(
        [
            _salted(row_keys(pa.Table.from_batches([batch], schema=parquet.schema_arrow)), seed)
            for batch in parquet.iter_batches(batch_size=SAMPLE_BATCH_ROWS)
        ]
    )
    threshold = np.partition(salted, rows - 1)[rows - 1]
    chosen = salted < threshold
    # Equal salted keys are equal content keys: the first in the file's (canonical) order complete the count.
    chosen[np.flatnonzero(salted == threshold)[: rows - int(chosen.sum())]] = True
    del salted
    parts, start = [], 0
    for batch in parquet.iter_batches(batch_size=SAMPLE_BATCH_ROWS):
        here = np.flatnonzero(chosen[start : start + batch.num_rows])
        start += batch.num_rows
        if len(here):
            parts.append(batch.take(pa.array(here)))
    table = pa.Table.from_batches(parts, schema=parquet.schema_arrow)
    del parts
    return table.to_pandas(self_destruct=True)


def _salted(keys, seed: int):
    """splitmix64 of (key XOR a hash of the seed): a permutation of the 64-bit keys that the seed picks."""
    import hashlib

    import numpy as np

    salt = int.from_bytes(hashlib.sha256(f"training-sample:{seed}".encode()).digest()[:8], "big")
    with np.errstate(over="ignore"):
        z = np.asarray(keys, dtype=np.uint64) ^ np.uint64(salt)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def train_candidate(candidate: dict, preprocessor, train, validation, target: str, task: str, seed: int):
    """Fit one candidate on train (the fitted preprocessor is reused, not refit) and score it on validation
    (a frame, or a Parquet file predicted batch by batch)."""
    features = transform_in_chunks(preprocessor, train, target)
    return _fit_and_score(candidate, preprocessor, features, train[target], validation, target, task, seed)


def train_candidate_on_split(
    candidate: dict, preprocessor, train_path, rows: TrainingRows, validation, target: str, task: str, seed: int
):
    """:func:`train_candidate` on the rows of the split at ``train_path`` that ``rows`` names (prepare's
    choice, :func:`read_training_rows`), holding less at once: the frame is transformed in chunks and
    freed before the estimator fits, so the peak is the larger of frame + matrix and matrix + the
    estimator's working copies, not their sum. The matrix and the labels are those of train_candidate."""
    frame = read_training_rows(train_path, rows)
    labels = frame[target].copy()
    features = transform_in_chunks(preprocessor, frame, target)
    del frame
    return _fit_and_score(candidate, preprocessor, features, labels, validation, target, task, seed)


def transform_in_chunks(preprocessor, frame, target: str):
    """``preprocessor.transform(frame.drop(columns=[target]))``, TRANSFORM_CHUNK_ROWS rows at a time into one
    matrix: the transform works row by row, so the matrix is the same, and the transform's temporaries
    (text copies of categories, imputed copies) are a chunk's, not the whole frame's."""
    import numpy as np

    chunk_rows = TRANSFORM_CHUNK_ROWS
    if len(frame) <= chunk_rows:
        return preprocessor.transform(frame.drop(columns=[target]))
    first = preprocessor.transform(frame.iloc[:chunk_rows].drop(columns=[target]))
    matrix = np.empty((len(frame), first.shape[1]), dtype=first.dtype)
    matrix[:chunk_rows] = first
    for begin in range(chunk_rows, len(frame), chunk_rows):
        matrix[begin : begin + chunk_rows] = preprocessor.transform(
            frame.iloc[begin : begin + chunk_rows].drop(columns=[target])
        )
    return matrix


def _fit_and_score(candidate: dict, preprocessor, features, labels, validation, target: str, task: str, seed: int):
    from sklearn.pipeline import Pipeline

    estimator = make_estimator(candidate["family"], candidate["params"], task, seed)
    with one_thread():
        try:
            estimator.fit(features, labels)
        except (ValueError, TypeError) as error:
            raise StageError(f"candidate {candidate['id']} failed to train: {error}") from None
        model = Pipeline([("features", preprocessor), ("model", estimator)])
        scores = predict_split(model, split_batches(validation), target, task).scores(task)
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
