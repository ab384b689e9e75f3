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


# -- Typed features on tables the tests generate -------------------------------------------------------------


def _weather(rows=1500, seed=0):
    """A weather-like table: a daily date over four years, a temperature, a station code, and the
    season's sky ('sunny' in summer, 'rain' in winter) with noise."""
    rng = np.random.default_rng(seed)
    dates = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 4 * 365, rows), unit="D")
    summer = np.cos((dates.day_of_year.to_numpy() - 200) / 365 * 2 * np.pi)
    sky = np.where(summer + rng.normal(0, 0.5, rows) > 0, "sunny", "rain")
    return pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d"),
            "temperature": 15 + 10 * summer + rng.normal(0, 3, rows),
            "station": rng.choice(["north", "south", "east"], rows),
            "sky": sky,
        }
    )


def test_a_date_column_becomes_calendar_parts_not_a_category():
    train = _weather()
    transform, info = fit_preprocessor(train, "sky")
    assert info["features"]["date"]["kind"] == "datetime"
    names = list(transform.get_feature_names_out())
    assert {"date_year", "date_month", "date_dayofweek", "date_dayofyear"} <= set(names)
    assert "date_hour" not in names  # no time of day in training
    assert not any(name.startswith("date_20") for name in names)  # never one column per day
    # dates training never saw still carry information: their day of year differs
    later = pd.DataFrame({"date": ["2030-01-15", "2030-07-15"], "temperature": [5.0, 25.0], "station": ["x", "x"]})
    encoded = transform.transform(later)
    column = names.index("date_dayofyear")
    assert encoded[0, column] != encoded[1, column]


def test_on_a_weather_like_table_the_blessed_model_beats_trivial_on_accuracy_and_log_loss(file_store, split_like_a_run):
    from mlops.stages.evaluate import evaluate_model
    from mlops.stages.train import train_candidate

    frame = _weather(3000).drop(columns=["temperature"])  # the season only through the date
    splits = split_like_a_run(frame, "sky").frames()
    transform, info = fit_preprocessor(splits["train"], "sky")
    candidate = {"id": "c01", "family": "hist_gradient_boosting", "params": {}}
    model, _ = train_candidate(candidate, transform, splits["train"], splits["validation"], "sky", info["task"], 1)
    result = evaluate_model(
        model, splits["train"], splits["test"], "sky", "classification", "f1_macro", 0.1, None, file_store, "w"
    )
    decision = result.blessing
    assert decision.blessed, decision.reason
    for name in ("accuracy", "log_loss"):
        assert name in decision.reason
    assert decision.test_metrics["accuracy"] > decision.baseline_metrics["accuracy"] + 0.1
    assert decision.test_metrics["log_loss"] < decision.baseline_metrics["log_loss"]


@pytest.mark.parametrize(
    "column, kind",
    [
        (np.arange(100), "id"),  # a row counter
        ([f"user-{i:05d}" for i in range(100)], "id"),  # one distinct code per row
        ([f"the parcel {i} arrived late and {'damaged' if i % 3 else 'wet'}" for i in range(100)], "text"),
        ([f"city{i % 60}" for i in range(100)], "hashed"),  # high cardinality, repeated
        ([f"c{i % 4}" for i in range(100)], "categorical"),
        ([i % 2 == 0 for i in range(100)], "boolean"),
        (np.linspace(0, 1, 100), "numeric"),  # distinct floats are measurements, not IDs
        (pd.date_range("2024-01-01", periods=100, freq="h").strftime("%Y-%m-%d %H:%M"), "datetime"),
    ],
)
def test_each_column_gets_one_kind(column, kind):
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"feature": column, "x": rng.normal(size=100), "y": rng.choice(["a", "b"], 100)})
    transform, info = fit_preprocessor(train, "y")
    assert info["features"]["feature"]["kind"] == kind, info["features"]["feature"]
    assert transform.feature_decisions_ == info["features"]  # kept on the model itself
    if kind in ("id", "text"):
        assert "feature" in info["dropped_features"] and "dropped" in info["features"]["feature"]["reason"]
        assert not any(n.startswith("feature") for n in transform.get_feature_names_out())


def test_an_id_and_free_text_are_dropped_and_text_is_counted_when_asked():
    rng = np.random.default_rng(1)
    rows = 200
    train = pd.DataFrame(
        {
            "ticket": [f"T{i:06d}" for i in range(rows)],
            "note": [f"customer {i} says {rng.choice(['great', 'awful'])} service today" for i in range(rows)],
            "y": rng.choice(["a", "b"], rows),
        }
    )
    train.loc[3, "note"] = None
    _, by_default = fit_preprocessor(train.assign(x=1.0), "y")
    assert by_default["dropped_features"] == ["ticket", "note"]
    transform, asked = fit_preprocessor(train, "y", overrides={"note": "bag_of_words"})
    assert asked["features"]["note"] == {"kind": "bag_of_words", "reason": "set in the params file (features)"}
    names = list(transform.get_feature_names_out())
    assert "note__great" in names and "note__awful" in names and not any(n.startswith("ticket") for n in names)


def test_overrides_win_and_are_checked():
    train = pd.DataFrame({"code": [f"c{i % 4}" for i in range(40)], "x": range(40), "y": ["a", "b"] * 20})
    _, info = fit_preprocessor(train, "y", overrides={"x": "categorical", "code": "drop"})
    assert info["features"]["x"]["kind"] == "categorical" and info["dropped_features"] == ["code"]
    with pytest.raises(StageError, match="features.x must be one of numeric, boolean"):
        fit_preprocessor(train, "y", overrides={"x": "ordinal"})
    with pytest.raises(StageError, match="features.z: no such feature column"):
        fit_preprocessor(train, "y", overrides={"z": "drop"})
    with pytest.raises(StageError, match="no feature is left to learn from"):
        fit_preprocessor(train, "y", overrides={"x": "drop", "code": "drop"})


def test_the_params_file_takes_a_features_section(tmp_path):
    from mlops.stages.search_space import ParamsError, load_search_space

    good = tmp_path / "good.yaml"
    good.write_text("features: {date: datetime, note: bag_of_words}\ncandidates: {regression: {ridge: {}}}\n")
    assert load_search_space(good)["features"]["note"] == "bag_of_words"
    bad = tmp_path / "bad.yaml"
    bad.write_text("features: {date: calendar}\ncandidates: {regression: {ridge: {}}}\n")
    with pytest.raises(ParamsError, match="features.date must be one of"):
        load_search_space(bad)


def test_unseen_categories_are_counted_and_the_transform_survives_the_store():
    from mlops.stages.features import unseen_categories
    from mlops.store import model_io

    rng = np.random.default_rng(2)
    train = pd.DataFrame(
        {
            "colour": rng.choice(["red", "blue"], 300),
            "city": [f"city{i % 80}" for i in range(300)],
            "when": pd.date_range("2020-01-01", periods=300, freq="D").strftime("%Y-%m-%d"),
            "y": rng.choice(["a", "b"], 300),
        }
    )
    transform, info = fit_preprocessor(train, "y")
    assert info["features"]["city"]["kind"] == "hashed"
    loaded = model_io.loads(model_io.dumps(transform))  # the new steps are on the trusted list
    serving = pd.DataFrame({"colour": ["green", "red", None], "city": ["atlantis", "city3", "city4"]})
    serving["when"] = ["2031-05-01", "2020-02-01", None]
    assert unseen_categories(loaded, serving) == {"colour": 1, "city": 1}  # a missing value is not unseen
    np.testing.assert_allclose(loaded.transform(serving), transform.transform(serving))


def test_the_run_report_shows_each_decision_and_the_unseen_count():
    from mlops.reporting import report

    decisions = {
        "date": {"kind": "datetime", "reason": "dates: expanded to calendar parts, never used as a category"},
        "ticket": {"kind": "id", "reason": "one distinct value per row (500 rows): an identifier, dropped"},
        "x": {"kind": "numeric", "reason": "numbers"},
    }
    lineage = {
        "data": {"rows": {"train": 1, "validation": 1, "test": 1}, "columns": {}, "source": "s", "ref": "d@1"}
        | {"dropped_missing_target": 0, "target": "t"},
        "features": decisions,
        "blessing": {"blessed": False, "reason": "r"},
        "params": {"metric": "f1_macro", "candidate": {"id": "c01"}},
        "kfp": {"run_name": "r"},
        "code": {"version": "v"},
        "split": {},
    }
    page = report.render_report(
        version={"name": "m", "version": 1, "lineage": lineage, "aliases": []},
        validation={"tfdv_version": "1", "skew": [], "features": {}},
        schema_description={"source": "inferred", "origin": ""},
        leaderboard=[],
        evaluation={
            "test_metrics": {"f1_macro": 0.9},
            "baseline_metrics": {"f1_macro": 0.3},
            "unseen_categories": {"station": 7},
        },
    )
    features = page.split("<h2>Features</h2>", 1)[1].split("<h2>", 1)[0]
    assert "(1 dropped)" in features and features.index("ticket") < features.index("date")  # dropped first
    assert "an identifier, dropped" in features and "calendar parts" in features
    assert "station: 7 rows" in page


def _write(frame: pd.DataFrame, path, row_group_size: int | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), str(path), row_group_size=row_group_size)
    return path


@pytest.mark.parametrize(
    "values",
    [
        [3, 1, 3, None] + [1, 2] * 10,  # whole numbers with a missing value in the first batch only: floats
        ["b", "a", None, "b"] + ["c"] * 10,
        [True, False, True, None] + [False] * 10,
        np.linspace(0, 1, 30),
    ],
)
def test_the_target_is_streamed_with_the_values_and_type_of_the_whole_column(tmp_path, values):
    from mlops.stages.prepare import target_values

    path = _write(pd.DataFrame({"x": range(len(values)), "y": values}), tmp_path / "train.parquet")
    whole = pd.read_parquet(path)["y"]
    streamed = target_values(path, "y", batch_rows=4)
    assert streamed.dtype == whole.dtype and streamed.name == "y"
    pd.testing.assert_series_equal(streamed, pd.Series(whole.unique(), name="y", dtype=whole.dtype))
    assert detect_task(streamed) == detect_task(whole)


def _wide(rows: int, seed: int = 0) -> pd.DataFrame:
    """rows x (a number, 30 text columns, a yes/no label): wide enough that a 1 MB budget samples."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=rows)})
    for i in range(30):
        frame[f"t{i}"] = rng.choice(["p", "q"], rows)
    frame["y"] = np.where(frame["x"] > 0, "yes", "no")
    return frame


def test_a_class_only_outside_the_sample_is_still_known(tmp_path):
    """The target is read over the whole split: a class the sample lacks still counts (two classes,
    and in the class list), although the transform is fitted on the sample."""
    from mlops.stages.prepare import fit_on_split
    from mlops.stages.train import read_training_rows

    frame = _wide(2_000)
    frame.loc[5, "y"] = "rare"
    path = _write(frame, tmp_path / "train.parquet")
    _, info, rows = fit_on_split(path, "y", seed=42, memory_budget_mb=1)
    assert rows.sampled and "rare" not in set(read_training_rows(path, rows)["y"])  # the case at hand
    assert info["classes"] == ["no", "rare", "yes"] and info["task"] == "classification"
    only_yes = frame.assign(y="yes")
    only_yes.loc[5, "y"] = "no"  # two classes in the split, one in the sample: still a classifier's target
    path = _write(only_yes, tmp_path / "one.parquet")
    _, info, rows = fit_on_split(path, "y", seed=42, memory_budget_mb=1)
    assert set(read_training_rows(path, rows)["y"]) == {"yes"} and info["classes"] == ["no", "yes"]


def test_prepare_fits_again_on_fewer_rows_when_the_first_batch_had_fewer_model_inputs(tmp_path, monkeypatch):
    """The first 1,000 rows have one level of 'shop', the rest 25: the first guess of model inputs is too
    low, so the rows chosen with it would overrun the budget; prepare fits once more, on fewer rows."""
    from mlops.stages import train as stage
    from mlops.stages.prepare import fit_on_split, target_values

    monkeypatch.setattr(stage, "SAMPLE_BATCH_ROWS", 1_000)
    frame = _wide(6_000)
    frame["shop"] = ["s0"] * 1_000 + [f"s{i % 25}" for i in range(5_000)]
    path = _write(frame, tmp_path / "train.parquet", row_group_size=1_000)
    transform, info, rows = fit_on_split(path, "y", seed=42, memory_budget_mb=1)
    guessed = fit_preprocessor(frame.head(1_000), "y")[1]["output_features"]
    assert rows.used < stage.choose_training_rows(path, guessed, 42, 1).used
    assert rows.used <= stage.choose_training_rows(path, info["output_features"], 42, 1).used  # within budget
    again, _ = fit_preprocessor(
        stage.read_training_rows(path, rows), "y", target_values=target_values(path, "y"), split_rows=6_000
    )
    from mlops.store import model_io

    assert model_io.dumps(transform) == model_io.dumps(again)
