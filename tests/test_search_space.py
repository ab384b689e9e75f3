"""The size-aware default search space: every combination on a small table, one per family on a large one."""

import pytest

from mlops.errors import StageError
from mlops.stages.search_space import FOREST_SAMPLE_ROWS, FULL_SEARCH_CELLS, load_search_space, size_aware
from mlops.stages.train import check_search_space, expand_search_space


def ids(candidates):
    return [(c["family"], c["params"]) for c in candidates]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_default_search_space_is_size_aware(task):
    space = load_search_space()
    assert space["size_aware"] is True
    full = expand_search_space(space, task)
    # a small table (and one exactly at the limit) gets every combination listed
    assert ids(expand_search_space(space, task, train_rows=2_000, model_inputs=13)) == ids(full)
    assert ids(expand_search_space(space, task, train_rows=FULL_SEARCH_CELLS // 50, model_inputs=50)) == ids(full)
    # a 337k-row table of 60 model inputs (70% of it to train) gets one candidate per family
    large = expand_search_space(space, task, train_rows=236_000, model_inputs=60)
    families = [c["family"] for c in full]
    assert [c["family"] for c in large] == sorted(set(families), key=families.index) and len(large) < len(full)
    for candidate in large:  # the first value listed for each hyperparameter
        listed = space["candidates"][task][candidate["family"]]
        expected = {name: values[0] for name, values in listed.items()}
        if candidate["family"] == "random_forest":
            expected["max_samples"] = FOREST_SAMPLE_ROWS
        assert candidate["params"] == expected


def test_wide_but_short_tables_are_trimmed_too_and_a_forest_on_few_rows_uses_them_all():
    space = load_search_space()
    candidates = expand_search_space(space, "classification", train_rows=20_000, model_inputs=400)
    forest = next(c for c in candidates if c["family"] == "random_forest")
    assert len(candidates) == 3 and "max_samples" not in forest["params"]  # 20,000 rows: no sampling


def test_only_a_size_aware_search_space_is_trimmed_and_what_the_file_sets_stays():
    grid = {"random_forest": {"n_estimators": [50, 100], "max_samples": [0.5]}, "ridge": {"alpha": [1.0, 10.0]}}
    mine = {"candidates": {"regression": grid}}
    assert size_aware(mine, "regression", 10**6, 100) == (mine, "")  # no size_aware: every combination
    space, note = size_aware({**mine, "size_aware": True}, "regression", 10**6, 100)
    assert space["candidates"]["regression"] == {
        "random_forest": {"n_estimators": [50], "max_samples": [0.5]},  # its own max_samples is kept
        "ridge": {"alpha": [1.0]},
    }
    assert note.startswith("size-aware search space: 1,000,000 training rows x 100 model inputs is over 5,000,000")
    assert "100,000-row samples" not in note


def test_size_aware_must_be_true_or_false():
    with pytest.raises(StageError, match="size_aware in the search space must be true or false, got 'yes'"):
        check_search_space({"size_aware": "yes", "candidates": {"regression": {"ridge": {}}}})
