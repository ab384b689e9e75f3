"""Prepare: decide the task and fit the feature transform on the training split only.

The fitted ColumnTransformer becomes the first step of every candidate's
model pipeline, so serving applies exactly the transform training saw, and
no statistic from validation or test leaks into it.

On a split too large for the training memory budget (:func:`fit_on_split`), the
transform is fitted on the rows the candidates train on: all of them when they
fit the budget, else the same seed-keyed sample (mlops.stages.train). The target
is read over the whole split, streamed one record batch of that column at a time:
the task, the two-class check and the class list see a class that only rows
outside the sample have. The feature kinds and the category levels come from the
sample, as a data scientist fitting on a sample would have them: a level the
model never trains on is unseen to it anyway (counted as such by evaluate and
the monitor); only the identifier test compares a column's range with the
whole split's row count, which a sample's range would not fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from mlops import config
from mlops.errors import StageError, quote
from mlops.stages import features as features_mod

TASKS = ("auto", "classification", "regression")
# Up to this many distinct values a numeric target is read as class labels.
MAX_CLASSES_FOR_NUMERIC_TARGET = 20
# Categorical features with more levels than this are hashed, not one-hot (mlops.stages.features).
MAX_ONE_HOT_LEVELS = features_mod.MAX_ONE_HOT_LEVELS
# Missing categorical values become a category of their own.
MISSING_CATEGORY = "(missing)"


def detect_task(target: pd.Series, requested: str = "auto") -> str:
    """Classification or regression, from the request or the target's values."""
    if requested not in TASKS:
        raise StageError(f"task must be one of {', '.join(TASKS)}, got {requested!r}")
    if requested != "auto":
        if requested == "regression" and not pd.api.types.is_numeric_dtype(target):
            raise StageError(f"task is regression but target '{target.name}' is not numeric")
        return requested
    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return "classification"
    values = target.dropna()
    is_whole = bool((values == values.round()).all())
    if is_whole and values.nunique() <= MAX_CLASSES_FOR_NUMERIC_TARGET:
        return "classification"
    return "regression"


def check_target(target: pd.Series, task: str) -> None:
    """A classifier needs two classes; a regressor needs a target that varies."""
    distinct = target.nunique(dropna=True)
    if task == "classification" and distinct < 2:
        only = target.dropna().iloc[0] if distinct else None
        raise StageError(
            f"target {quote(target.name)} has only one class ({quote(only)}) in the training split; "
            "a classifier needs at least two"
        )
    if task == "regression" and distinct < 2:
        raise StageError(f"target '{target.name}' is constant in the training split; nothing to learn")


def split_features(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature names by dtype (bools count as categorical)."""
    numeric = [
        c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    categorical = [c for c in frame.columns if c not in numeric]
    return numeric, categorical


def _categories(kind_name: str, encoder) -> Pipeline:
    return Pipeline(
        [
            ("as_text", FunctionTransformer(as_text, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY, keep_empty_features=True)),
            ("encode", encoder),
        ]
    )


def _numbers() -> Pipeline:
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )


def build_preprocessor(features: pd.DataFrame, decisions: dict[str, dict] | None = None) -> ColumnTransformer:
    """One transformer per kind of feature (mlops.stages.features), tolerating unseen categories.

    A column with no value at all in the training split is kept (as zeros, or as one "missing"
    category), so the transform has the same shape on every split and never ends up empty.
    """
    if decisions is None:
        decisions = features_mod.decide_kinds(features)

    def of(*kinds: str) -> list[str]:
        return [c for c in features.columns if decisions[c]["kind"] in kinds]

    transformers: list = []
    if of("numeric"):
        transformers.append(("numeric", _numbers(), of("numeric")))
    if of("boolean", "categorical"):
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        transformers.append(("one_hot", _categories("one_hot", encoder), of("boolean", "categorical")))
    if of("hashed"):
        transformers.append(("hashed", features_mod.HashedCategories(), of("hashed")))
    if of("datetime"):
        calendar = Pipeline([("parts", features_mod.CalendarParts()), ("numbers", _numbers())])
        transformers.append(("datetime", calendar, of("datetime")))
    if of("bag_of_words"):
        transformers.append(("bag_of_words", features_mod.BagOfWords(), of("bag_of_words")))
    # Model input names made unique (features_mod.FeatureTransform): a generated name may equal a column's.
    return features_mod.FeatureTransform(
        transformers, remainder="drop", verbose_feature_names_out=False, sparse_threshold=0
    )


def as_text(values) -> np.ndarray:
    """Categorical values as strings, missing ones as NaN.

    Part of the shipped transform (not a one-off cleanup) so that serving
    sees the same encoding: a column of True/False/None must not reach the
    encoder as a mix of bools and floats.
    """
    frame = pd.DataFrame(values)
    return frame.apply(lambda column: column.map(lambda v: str(v) if pd.notna(v) else np.nan)).to_numpy(dtype=object)


def fit_preprocessor(
    train: pd.DataFrame,
    target: str,
    requested_task: str = "auto",
    overrides: dict | None = None,
    schema_text: str | None = None,
    schema_kinds: dict[str, str] | None = None,
    target_values: pd.Series | None = None,
    split_rows: int | None = None,
) -> tuple[ColumnTransformer, dict]:
    """Fit the preprocessor on ``train``; return it and a description of the features.

    ``overrides``: the params file's ``features`` section (column -> kind); ``schema_text``: the TFDV
    schema the run validated against, whose ``kind:`` tags set kinds too (mlops.stages.features). Both
    win over detection, the params file over the schema. ``schema_kinds``: those tags already read
    (mlops.stages.features.kind_tags; what the validate stage hands on), instead of ``schema_text``.
    The decision per column is kept on the fitted transform (``feature_decisions_``) and in the description.
    ``target_values`` and ``split_rows``: when ``train`` is a sample of the split, the target's distinct
    values over the whole split (:func:`target_values`) and its row count (:func:`fit_on_split`).
    """
    if target not in train.columns:
        raise StageError(f"target column '{target}' not in the training split")
    values = train[target] if target_values is None else target_values
    task = detect_task(values, requested_task)
    check_target(values, task)
    features = train.drop(columns=[target])
    tags = features_mod.kind_tags(schema_text) if schema_kinds is None else schema_kinds
    from_schema = features_mod.check_kind_tags(tags, list(features.columns), target)
    decisions = features_mod.decide_kinds(features, overrides, from_schema, split_rows=split_rows)
    preprocessor = build_preprocessor(features, decisions)
    if not preprocessor.transformers:
        raise StageError(
            "no feature is left to learn from: every column is "
            + ", ".join(f"{c} ({d['kind']})" for c, d in decisions.items())
            + "; set a column's kind under 'features' in the params file or with a kind tag in the schema"
        )
    preprocessor.fit(features, train[target])
    preprocessor.feature_decisions_ = decisions
    kinds = {column: decision["kind"] for column, decision in decisions.items()}
    info = {
        "task": task,
        "target": target,
        "numeric_features": [c for c, k in kinds.items() if k in ("numeric", "datetime")],
        "categorical_features": [c for c, k in kinds.items() if k in ("boolean", "categorical", "hashed")],
        "dropped_features": [c for c, k in kinds.items() if k in features_mod.DROPPED_KINDS],
        "features": decisions,
        "output_features": int(len(preprocessor.get_feature_names_out())),
        "train_rows": int(len(train) if split_rows is None else split_rows),
    }
    if task == "classification":
        info["classes"] = sorted(map(str, values.dropna().unique()))
    return preprocessor, info


def target_values(path, target: str, batch_rows: int = 65_536) -> pd.Series:
    """The distinct values of column ``target`` of the Parquet split at ``path``, in the order they first
    appear and with the type ``pd.read_parquet`` gives the column: what :func:`detect_task` and
    :func:`check_target` need of it. One record batch of that column at a time."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering keeps every row group read until closed
    if target not in parquet.schema_arrow.names:
        raise StageError(f"target column '{target}' not in the training split")
    seen = pa.array([], type=parquet.schema_arrow.field(target).type)
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=[target]):
        column = batch.column(0)
        if pa.types.is_dictionary(column.type):
            column, seen = column.dictionary_decode(), seen.cast(column.type.value_type)
        seen = pc.unique(pa.concat_arrays([seen, pc.unique(column)]))
    frame = pa.table({target: seen}).to_pandas()
    return frame[target]


def fit_on_split(
    path,
    target: str,
    requested_task: str = "auto",
    overrides: dict | None = None,
    schema_kinds: dict[str, str] | None = None,
    seed: int = 0,
    memory_budget_mb: int = config.DEFAULT_TRAIN_MEMORY_BUDGET_MB,
):
    """:func:`fit_preprocessor` on the rows of the training split at ``path`` that the candidates will
    train on (mlops.stages.train.choose_training_rows): all of them within ``memory_budget_mb``, read as
    ``pd.read_parquet`` reads them (the transform fitted before there was a budget), else the seed-keyed
    sample. Returns (transform, description, mlops.stages.train.TrainingRows); train reads the same rows.

    The count depends on the model inputs, which only the fitted transform knows: it is first chosen with
    those of a transform fitted on the split's first record batch, then checked against the fitted
    transform's; when that one has more inputs (a category level the first batch did not have), the
    transform is fitted once more, on the smaller sample (a subset of the first, :func:`sample_rows`).
    """
    import pyarrow.parquet as pq

    from mlops.stages import train as train_mod

    values = target_values(path, target)
    split_rows = pq.ParquetFile(path).metadata.num_rows

    def fit(frame: pd.DataFrame) -> tuple[ColumnTransformer, dict]:
        return fit_preprocessor(
            frame,
            target,
            requested_task,
            overrides,
            schema_kinds=schema_kinds,
            target_values=values,
            split_rows=split_rows,
        )

    guessed_inputs = 0  # a split of one batch: fitted on all its rows first, then checked
    if split_rows > train_mod.SAMPLE_BATCH_ROWS:
        first = next(
            pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=train_mod.SAMPLE_BATCH_ROWS)
        ).to_pandas()
        guessed_inputs = fit(first)[1]["output_features"]
        del first
    rows = train_mod.choose_training_rows(path, guessed_inputs, seed, memory_budget_mb)
    preprocessor, info = fit(train_mod.read_training_rows(path, rows))
    fitting = train_mod.choose_training_rows(path, info["output_features"], seed, memory_budget_mb)
    if fitting.used < rows.used:
        rows = fitting
        preprocessor, info = fit(train_mod.read_training_rows(path, rows))
    return preprocessor, info, rows


def feature_decisions(model) -> dict:
    """The kind decided for each feature column, as kept on the model's fitted transform ({} for older models)."""
    transform = model.steps[0][1] if hasattr(model, "steps") else model
    return dict(getattr(transform, "feature_decisions_", {}) or {})


def describe_decisions(decisions: dict) -> list[str]:
    """One line per column that is not simply used as it is: dropped, expanded, hashed or counted."""
    lines = []
    for column, decision in decisions.items():
        if decision["kind"] not in ("numeric", "categorical", "boolean"):
            lines.append(f"{column}: {decision['kind']} ({decision['reason']})")
    return lines
