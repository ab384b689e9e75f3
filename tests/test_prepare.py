"""Prepare: task detection, target checks, a transform fitted on train only."""

import numpy as np
import pandas as pd
import pytest

from mlops.errors import StageError
from mlops.stages.prepare import check_target, detect_task, fit_preprocessor


@pytest.mark.parametrize(
    "values, expected",
    [
        (["a", "b", "a"], "classification"),  # strings
        ([True, False, True], "classification"),  # bools
        ([0, 1, 2, 1, 0], "classification"),  # few whole numbers
        (np.linspace(0, 1, 50), "regression"),  # continuous
        (list(range(100)), "regression"),  # many whole numbers
    ],
)
def test_detect_task(values, expected):
    assert detect_task(pd.Series(values, name="y")) == expected


def test_requested_task_is_checked():
    with pytest.raises(StageError, match="task is regression but target 'y' is not numeric"):
        detect_task(pd.Series(["a", "b"], name="y"), "regression")
    with pytest.raises(StageError, match="task must be one of"):
        detect_task(pd.Series([1, 2], name="y"), "ranking")


@pytest.mark.parametrize(
    "values, task, message",
    [
        (["yes"] * 10, "classification", "has only one class \\('yes'\\)"),
        ([3.5] * 10, "regression", "is constant"),
    ],
)
def test_degenerate_targets(values, task, message):
    with pytest.raises(StageError, match=message):
        check_target(pd.Series(values, name="y"), task)


def test_transform_is_fitted_on_train_only():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["a", "b", "a", "b"]})
    transform, info = fit_preprocessor(train, "y")
    scaler = transform.named_transformers_["numeric"].named_steps["scale"]
    assert scaler.mean_[0] == pytest.approx(2.5)  # the train mean, nothing else seen
    assert info["task"] == "classification" and info["classes"] == ["a", "b"]


def test_categories_unseen_missing_and_mixed_types_are_handled():
    train = pd.DataFrame(
        {
            "colour": ["red", "blue", None, "red"],
            "flag": [True, False, None, True],
            "x": [1.0, None, 3.0, 4.0],
            "y": [0, 1, 0, 1],
        }
    )
    transform, info = fit_preprocessor(train, "y")
    assert info["categorical_features"] == ["colour", "flag"]
    serving = pd.DataFrame({"colour": ["green", None], "flag": [None, False], "x": [None, 2.0]})
    encoded = transform.transform(serving)
    assert encoded.shape == (2, info["output_features"])
    assert not np.isnan(encoded).any()
    names = list(transform.get_feature_names_out())
    # An unseen category ("green") turns on no colour column at all.
    colour_columns = [i for i, name in enumerate(names) if name.startswith("colour_")]
    assert encoded[0, colour_columns].sum() == 0
