"""Prepare: decide the task and fit the feature transform on the training split only.

The fitted ColumnTransformer becomes the first step of every candidate's
model pipeline, so serving applies exactly the transform training saw, and
no statistic from validation or test leaks into it.
"""

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from mlops.errors import StageError, quote

TASKS = ("auto", "classification", "regression")
# Up to this many distinct values a numeric target is read as class labels.
MAX_CLASSES_FOR_NUMERIC_TARGET = 20
# Categorical features with more levels than this are ordinal-encoded, not one-hot.
MAX_ONE_HOT_LEVELS = 30
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
    """Numeric and categorical feature names (bools count as categorical)."""
    numeric = [
        c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    categorical = [c for c in frame.columns if c not in numeric]
    return numeric, categorical


def build_preprocessor(features: pd.DataFrame) -> ColumnTransformer:
    """Impute and scale numbers; impute and encode categories, tolerating unseen ones.

    A column with no value at all in the training split is kept (as zeros, or as one "missing"
    category), so the transform has the same shape on every split and never ends up empty.
    """
    numeric, categorical = split_features(features)
    one_hot = [c for c in categorical if features[c].nunique() <= MAX_ONE_HOT_LEVELS]
    ordinal = [c for c in categorical if c not in one_hot]
    transformers = []
    if numeric:
        transformers.append(
            (
                "numeric",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    if one_hot:
        transformers.append(
            (
                "one_hot",
                Pipeline(
                    [
                        ("as_text", FunctionTransformer(as_text, feature_names_out="one-to-one")),
                        (
                            "impute",
                            SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY, keep_empty_features=True),
                        ),
                        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                one_hot,
            )
        )
    if ordinal:
        transformers.append(
            (
                "ordinal",
                Pipeline(
                    [
                        ("as_text", FunctionTransformer(as_text, feature_names_out="one-to-one")),
                        (
                            "impute",
                            SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY, keep_empty_features=True),
                        ),
                        ("encode", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)),
                    ]
                ),
                ordinal,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def as_text(values) -> np.ndarray:
    """Categorical values as strings, missing ones as NaN.

    Part of the shipped transform (not a one-off cleanup) so that serving
    sees the same encoding: a column of True/False/None must not reach the
    encoder as a mix of bools and floats.
    """
    frame = pd.DataFrame(values)
    return frame.apply(lambda column: column.map(lambda v: str(v) if pd.notna(v) else np.nan)).to_numpy(dtype=object)


def fit_preprocessor(train: pd.DataFrame, target: str, requested_task: str = "auto") -> tuple[ColumnTransformer, dict]:
    """Fit the preprocessor on ``train``; return it and a description of the features."""
    if target not in train.columns:
        raise StageError(f"target column '{target}' not in the training split")
    task = detect_task(train[target], requested_task)
    check_target(train[target], task)
    features = train.drop(columns=[target])
    numeric, categorical = split_features(features)
    preprocessor = build_preprocessor(features).fit(features)
    info = {
        "task": task,
        "target": target,
        "numeric_features": numeric,
        "categorical_features": categorical,
        "output_features": int(len(preprocessor.get_feature_names_out())),
    }
    if task == "classification":
        info["classes"] = sorted(map(str, train[target].dropna().unique()))
    return preprocessor, info
