"""Evaluate: test metrics, the blessing rules (trivial baseline, floor, champion) and the champion comparison."""

import pandas as pd
import pytest

from mlops.errors import StageError
from mlops.stages.evaluate import decide_blessing, evaluate_model
from mlops.stages.metrics import resolve_metric, skill
from mlops.stages.prepare import fit_preprocessor
from mlops.stages.train import train_candidate
from mlops.store import model_io
from mlops.store.registry import ModelRegistry


def bless(score, baseline=0.3, metric="f1_macro", min_skill=0.1, min_score=None, champion=None):
    return decide_blessing({metric: score}, {metric: baseline}, metric, min_skill, min_score, champion)


@pytest.mark.parametrize(
    "kwargs, blessed, reason",
    [
        # the trivial predictor scores 0.3: skill = (score - 0.3) / (1 - 0.3)
        ({"score": 0.9}, True, "has skill 0.86 over a trivial predictor (0.3000; minimum 0.10); no champion yet"),
        (
            {"score": 0.35},
            False,
            "has skill 0.07 over a trivial predictor (0.3000; minimum 0.10): it learnt too little",
        ),
        ({"score": 0.9, "min_score": 0.95}, False, "does not meet the floor 0.9500"),
        (
            {"score": 0.9, "champion": {"version": 3, "test_metrics": {"f1_macro": 0.95}}},
            False,
            "is worse than champion v3 (0.9500)",
        ),
        (
            {"score": 0.95, "champion": {"version": 3, "test_metrics": {"f1_macro": 0.95}}},
            True,
            "not worse than champion v3 (0.9500)",
        ),
        ({"score": 0.99, "champion": {"version": 3, "error": "KeyError: 'x'"}}, False, "could not be scored"),
    ],
)
def test_blessing_rules(kwargs, blessed, reason):
    decision = bless(**kwargs)
    assert decision.blessed is blessed and reason in decision.reason, decision.reason


def test_a_first_model_that_learnt_nothing_is_not_crowned():
    """A regression with test r2 = 0.03 used to become champion: the default gate now refuses it."""
    decision = bless(0.03, baseline=-0.01, metric="r2")
    assert not decision.blessed and decision.skill == pytest.approx(0.0396, abs=1e-3)


def test_error_metrics_count_lower_values_as_better():
    assert skill(2.0, 4.0, "rmse") == pytest.approx(0.5)
    assert bless(2.0, baseline=4.0, metric="rmse", champion={"version": 1, "test_metrics": {"rmse": 2.5}}).blessed
    assert not bless(3.9, baseline=4.0, metric="rmse").blessed
    assert not bless(2.0, baseline=4.0, metric="rmse", min_score=1.5).blessed


def test_a_metric_the_test_split_cannot_compute_is_one_line():
    with pytest.raises(StageError, match="metric 'roc_auc' cannot be computed on the test split"):
        decide_blessing({"f1_macro": 0.9}, {"f1_macro": 0.3}, "roc_auc", 0.1, None, None)


def test_metric_resolution():
    assert resolve_metric("auto", "regression") == "r2"
    with pytest.raises(StageError, match="metric 'r2' is for regression"):
        resolve_metric("r2", "classification")
    with pytest.raises(StageError, match="unknown metric 'auc'"):
        resolve_metric("auc", "classification")


def _fit(split_like_a_run, frame, candidate):
    splits = split_like_a_run(frame, "target").frames()
    transform, info = fit_preprocessor(splits["train"], "target")
    model, _ = train_candidate(
        candidate, transform, splits["train"], splits["validation"], "target", info["task"], seed=1
    )
    return model, splits["train"], splits["test"]


def _register_champion(store, name, model):
    registry = ModelRegistry(store)
    version = registry.register(name, {model_io.FILE_NAME: model_io.dumps(model)}, metrics={}, lineage={})
    registry.set_alias(name, "champion", version.version)
    return version


def test_evaluation_against_a_registered_champion(demo_data, file_store, split_like_a_run):
    frame = pd.read_csv(demo_data["breast_cancer"])
    strong, train, test = _fit(
        split_like_a_run, frame, {"id": "c01", "family": "logistic_regression", "params": {"C": 1.0}}
    )
    weak, _, _ = _fit(split_like_a_run, frame, {"id": "c02", "family": "knn", "params": {"n_neighbors": 150}})

    first = evaluate_model(weak, train, test, "target", "classification", "f1_macro", 0.1, None, file_store, "cancer")
    assert first.blessing.blessed and first.blessing.champion_version is None
    assert first.blessing.baseline_metrics["accuracy"] < first.blessing.test_metrics["accuracy"]
    assert first.roc["positive_class"] in ("benign", "malignant")
    assert sum(map(sum, first.confusion_matrix["matrix"])) == len(test)

    champion = _register_champion(file_store, "cancer", strong)
    second = evaluate_model(weak, train, test, "target", "classification", "f1_macro", 0.1, None, file_store, "cancer")
    assert second.blessing.champion_version == champion.version
    assert not second.blessing.blessed and "worse than champion v1" in second.blessing.reason


def test_a_champion_that_cannot_score_this_data_blocks_blessing(demo_data, file_store, split_like_a_run):
    candidate = {"id": "c01", "family": "logistic_regression", "params": {}}
    wine, _, _ = _fit(split_like_a_run, pd.read_csv(demo_data["wine"]), candidate)
    cancer, train, test = _fit(split_like_a_run, pd.read_csv(demo_data["breast_cancer"]), candidate)
    _register_champion(file_store, "m", wine)
    result = evaluate_model(cancer, train, test, "target", "classification", "f1_macro", 0.1, None, file_store, "m")
    assert not result.blessing.blessed and "could not be scored" in result.blessing.reason
    assert result.blessing.champion_version == 1


@pytest.mark.parametrize(
    "test, trivial, metric, blessed, named",
    [
        # a classifier that ranks well but is overconfident: far worse than the class priors on log loss
        (
            {"f1_macro": 0.8, "accuracy": 0.8, "log_loss": 2.13},
            {"f1_macro": 0.2, "accuracy": 0.52, "log_loss": 1.17},
            "f1_macro",
            False,
            "worse than the trivial predictor on log_loss 2.1300 vs 1.1700 (not worse on accuracy 0.8000 vs 0.5200)",
        ),
        # the weather table: blessed on f1_macro, worse than trivial on accuracy and log loss
        (
            {"f1_macro": 0.45, "accuracy": 0.50, "log_loss": 2.13},
            {"f1_macro": 0.14, "accuracy": 0.52, "log_loss": 1.17},
            "f1_macro",
            False,
            "worse than the trivial predictor on accuracy 0.5000 vs 0.5200, log_loss 2.1300 vs 1.1700",
        ),
        # a regressor with skill on r2 but a worse MAE than the mean (a few huge errors, many small ones)
        (
            {"r2": 0.3, "mae": 5.0, "rmse": 3.0},
            {"r2": 0.0, "mae": 4.0, "rmse": 3.6},
            "r2",
            False,
            "worse than the trivial predictor on mae 5.0000 vs 4.0000 (not worse on rmse 3.0000 vs 3.6000)",
        ),
        # every sanity metric holds: each is named in the reason
        (
            {"f1_macro": 0.8, "accuracy": 0.8, "log_loss": 0.5},
            {"f1_macro": 0.2, "accuracy": 0.52, "log_loss": 1.17},
            "f1_macro",
            True,
            "not worse than the trivial predictor on accuracy 0.8000 vs 0.5200, log_loss 0.5000 vs 1.1700",
        ),
        # ranked by log loss: accuracy is still checked
        (
            {"log_loss": 0.5, "accuracy": 0.4},
            {"log_loss": 1.17, "accuracy": 0.52},
            "log_loss",
            False,
            "worse than the trivial predictor on accuracy 0.4000 vs 0.5200",
        ),
    ],
)
def test_a_model_worse_than_trivial_on_a_sanity_metric_is_not_blessed(test, trivial, metric, blessed, named):
    decision = decide_blessing(test, trivial, metric, 0.1, None, None)
    assert decision.blessed is blessed and named in decision.reason, decision.reason


class _Overconfident:
    """Right on most rows, but certain of every answer: worse than the class priors on log loss."""

    classes_ = ["no", "yes"]

    def predict(self, features):
        import numpy as np

        return np.where(features["x"] > 0.15, "yes", "no")

    def predict_proba(self, features):
        import numpy as np

        yes = (features["x"].to_numpy() > 0.15).astype(float)
        return np.column_stack([1 - yes, yes])


def test_an_overconfident_model_is_not_blessed_with_every_metric_in_the_reason(file_store):
    """A generated table: the rule is right 90% of the time (f1 well above trivial), but it gives
    probability 1 to every answer, so its log loss is far worse than the trivial predictor's."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 2000)
    flip = rng.uniform(size=2000) < 0.1
    frame = pd.DataFrame({"x": x, "target": np.where((x > 0) ^ flip, "yes", "no")})
    train, test = frame.iloc[:1000], frame.iloc[1000:]
    result = evaluate_model(
        _Overconfident(), train, test, "target", "classification", "f1_macro", 0.1, None, file_store, "over"
    )
    decision = result.blessing
    assert decision.skill > 0.5 and not decision.blessed
    assert "worse than the trivial predictor on log_loss" in decision.reason
    assert "accuracy" in decision.reason and "f1_macro" in decision.reason
    # calibration is reported: certain and often wrong is badly calibrated
    assert decision.test_metrics["brier"] > decision.baseline_metrics["brier"] - 0.5
    assert decision.test_metrics["calibration_error"] > 0.05
    assert decision.baseline_metrics["calibration_error"] < 0.05


@pytest.mark.parametrize(
    "task, family",
    [
        ("classification", "hist_gradient_boosting"),  # binary: ROC, calibration, log loss
        ("regression", "ridge"),
    ],
)
def test_evaluation_streamed_in_batches_equals_the_whole_table(
    task, family, tmp_path, monkeypatch, file_store, split_like_a_run
):
    """The evaluate stage reads its splits from Parquet, the test split in batches (here of 128 rows);
    every number it decides and draws is the one the whole tables in memory give."""
    import numpy as np

    from mlops.stages import metrics
    from mlops.store.datasets import write_parquet

    rng = np.random.default_rng(3)
    rows = 8000
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows).round(4) for i in range(4)})
    frame["colour"] = rng.choice(["red", "green", "blue", None], rows)
    noise = frame["x0"] + (frame["colour"] == "red") + rng.normal(0, 1, rows)
    frame["target"] = np.where(noise > 0, "yes", "no") if task == "classification" else noise.round(3)
    splits = split_like_a_run(frame, "target").splits
    paths = {}
    for name, table in splits.items():
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_parquet(table, paths[name])
    whole = {name: pd.read_parquet(path) for name, path in paths.items()}
    transform, info = fit_preprocessor(whole["train"], "target")
    model, _ = train_candidate(
        {"id": "c01", "family": family, "params": {}},
        transform,
        whole["train"],
        whole["validation"],
        "target",
        info["task"],
        seed=1,
    )
    _register_champion(file_store, "m", model)  # the champion is scored batch by batch too
    metric = "f1_macro" if task == "classification" else "r2"

    def evaluate(splits):
        result = evaluate_model(
            model,
            splits["train"],
            splits["test"],
            "target",
            task,
            metric,
            0.1,
            None,
            file_store,
            "m",
            validation=splits["validation"],
            seed=5,
        )
        return {**result.blessing.to_json(), "cm": result.confusion_matrix, "roc": result.roc, **result.diagnostics}

    in_memory = evaluate(whole)
    monkeypatch.setattr(metrics, "BATCH_ROWS", 128)
    streamed = evaluate(paths)
    assert streamed["test_rows"] == len(whole["test"]) > 128 * 5
    assert streamed["importance"]["rows"] == 1000 < len(whole["validation"])  # sampled from the file's batches
    assert streamed["champion_metrics"] == streamed["test_metrics"]
    assert streamed == in_memory
