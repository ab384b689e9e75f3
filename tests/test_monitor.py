"""The drift monitor: sample-size-aware drift, the policy, the decision, the log, and the whole
loop (train -> monitor -> retrain through the blessing gate) on a shipped demo data set."""

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.stages import drift, monitor
from mlops.store.fs import FileStore
from mlops.store.registry import ModelRegistry

MLOPS = str(Path(sys.executable).with_name("mlops"))


@pytest.fixture(scope="module")
def cancer(demo_data) -> pd.DataFrame:
    return pd.read_csv(demo_data["breast_cancer"])


def _profile(frame):
    return drift.profile_frame(frame)


# -- Drift that knows its sample size -----------------------------------------------------------


def test_tiny_batches_never_drift(cancer):
    profile = _profile(cancer.sample(400, random_state=0))
    for seed in range(5):
        tiny = cancer.sample(30, random_state=seed + 10)
        tiny["mean radius"] = tiny["mean radius"] * 1.5  # even a real shift: 30 rows cannot tell
        assert not any(f.drifted for f in drift.compare_frame(profile, tiny))
        assert {f.verdict for f in drift.compare_frame(profile, tiny)} == {"too little data to tell"}


def test_a_large_clean_resample_never_drifts(cancer):
    profile = _profile(cancer.sample(400, random_state=0))
    for seed in range(3):
        resample = cancer.sample(5000, replace=True, random_state=seed)
        assert [f.feature for f in drift.compare_frame(profile, resample) if f.drifted] == []


def test_a_modest_shift_of_one_feature_in_a_large_batch_drifts(cancer):
    """A one-standard-deviation shift of one feature, in 2000 rows: that feature, and only it, drifts."""
    profile = _profile(cancer.sample(400, random_state=0))
    shifted = cancer.sample(2000, replace=True, random_state=1)
    shifted["mean texture"] += cancer["mean texture"].std()
    results = {f.feature: f for f in drift.compare_frame(profile, shifted)}
    assert [name for name, f in results.items() if f.drifted] == ["mean texture"]
    moved = results["mean texture"]
    assert moved.distance >= moved.threshold and moved.adjusted_p < moved.alpha and moved.rows == 2000


def test_significance_without_effect_is_not_drift():
    """A tiny difference in a huge sample is significant but harmless: below the effect threshold."""
    rng = np.random.default_rng(0)
    profile = _profile(pd.DataFrame({"x": rng.normal(0, 1, 5000)}))
    [result] = drift.compare_frame(profile, pd.DataFrame({"x": rng.normal(0.1, 1, 200_000)}))
    assert result.adjusted_p < 0.01 and result.distance < result.threshold and result.verdict == "no drift"


def test_categories_use_l_infinity_and_count_new_values():
    base = pd.DataFrame({"colour": ["red"] * 500 + ["blue"] * 500})
    live = pd.DataFrame({"colour": ["red"] * 300 + ["blue"] * 300 + ["purple"] * 400})
    [result] = drift.compare_frame(_profile(base), live)
    assert result.measure == "l_infinity" and result.distance == pytest.approx(0.4) and result.drifted
    assert "(other)" in result.buckets


def _rows_for(measure, base, distance):
    """The batch size whose minimum detectable effect (one feature, alpha 0.01, power 0.8) is ``distance``."""
    low, high = 2, 10**7
    while high - low > 1:
        middle = (low + high) // 2
        mde, _ = drift.min_detectable_effect(measure, base, middle, alpha=0.01, power=0.8)
        low, high = (middle, high) if mde > distance else (low, middle)
    return high


@pytest.mark.parametrize(
    "measure, baseline, live, baseline_rows",
    [
        # a normal feature in 20 equal bins, its mean shifted by 0.3 and 0.5 sd
        ("jensen_shannon_divergence", "normal", 0.3, 2000),
        ("jensen_shannon_divergence", "normal", 0.5, 400),
        # two categories, one share moved by 0.1 (the worst case for L-infinity: a share near 1/2)
        ("l_infinity", [0.5, 0.5], [0.6, 0.4], 2000),
        ("l_infinity", [0.8, 0.2], [0.85, 0.15], 2000),
    ],
)
def test_the_minimum_detectable_effect_has_the_power_it_claims(measure, baseline, live, baseline_rows):
    """At the batch size where a shift's distance equals the MDE, the chi-squared test finds it in about
    80% of samples (both the baseline and the batch drawn afresh). A formula off by a factor of two in
    the distance would give about 99% or 40%."""
    from scipy.stats import norm

    if baseline == "normal":
        edges = norm.ppf(np.linspace(0, 1, 21)[1:-1])
        p = np.full(20, 0.05)
        q = np.diff(np.concatenate([[0], norm.cdf(edges - live), [1]]))
    else:
        p, q = np.array(baseline), np.array(live)
    distance = drift.jensen_shannon(p, q) if measure == "jensen_shannon_divergence" else drift.l_infinity(p, q)
    rows = _rows_for(measure, p * baseline_rows, distance)
    rng = np.random.default_rng(0)
    found = [
        drift.chi_squared_p(rng.multinomial(baseline_rows, p).astype(float), rng.multinomial(rows, q).astype(float))
        < 0.01
        for _ in range(400)
    ]
    assert 0.72 <= np.mean(found) <= 0.88, (rows, np.mean(found))


def test_the_rows_needed_bring_the_mde_to_the_threshold_unless_the_baseline_is_too_small():
    base = np.full(20, 20.0)  # 400 baseline rows
    mde, needed = drift.min_detectable_effect(
        "jensen_shannon_divergence", base, 30, alpha=0.01, power=0.8, threshold=0.1
    )
    assert mde > 0.1 and needed > 30
    assert drift.min_detectable_effect("jensen_shannon_divergence", base, needed, alpha=0.01, power=0.8)[0] <= 0.1
    assert drift.min_detectable_effect("jensen_shannon_divergence", base, needed - 1, alpha=0.01, power=0.8)[0] > 0.1
    # two even categories and 100 baseline rows: no batch sees an L-infinity shift of 0.05
    _, never = drift.min_detectable_effect(
        "l_infinity", np.array([50.0, 50.0]), 10**6, alpha=0.01, power=0.8, threshold=0.05
    )
    assert never is None


def test_three_answers_at_three_batch_sizes(cancer):
    """30 clean rows: too little data (a drift of the threshold's size could go unseen); 300 clean rows:
    none; 2000 rows with one feature shifted by one standard deviation: retrain."""
    profile = _profile(cancer.sample(400, random_state=0))
    features = [c for c in profile["columns"] if c != "target"]
    shifted = cancer.sample(2000, replace=True, random_state=3)
    shifted["mean texture"] += cancer["mean texture"].std()
    batches = {
        "tiny": cancer.sample(30, random_state=1),
        "medium": cancer.sample(300, replace=True, random_state=2),
        "large": shifted,
    }
    answers = {}
    for name, batch in batches.items():
        measured = drift.compare_frame(profile, batch, columns=features)
        answers[name] = _decide(measured, rows=len(batch))
        for feature in answers[name].features:
            assert 0 < feature["min_detectable_effect"] <= 1 and feature["power"] == 0.8
    tiny, medium, large = answers["tiny"], answers["medium"], answers["large"]
    assert tiny.decision == "too little data"
    assert {f["verdict"] for f in tiny.features} == {"too little data to tell"}
    assert all(f["min_detectable_effect"] > f["threshold"] and f["rows_needed"] == 100 for f in tiny.features)
    assert tiny.reasons[0].startswith("too little data to tell: in 30 rows, the smallest drift seen with 80% power")
    assert tiny.reasons[0].endswith("a batch of 100 rows would tell")
    assert medium.decision == "none", medium.reasons
    assert all(f["min_detectable_effect"] < f["threshold"] for f in medium.features)
    assert large.decision == "retrain" and "mean texture" in large.reasons[0]
    assert [f["feature"] for f in large.features if f["drifted"]] == ["mean texture"]
    assert all(f["verdict"] == "no drift" for f in large.features if f["feature"] != "mean texture")


def test_too_little_data_only_where_a_drift_would_retrain():
    untold = _feature("x", drifted=False, verdict="too little data to tell")
    assert _decide([untold]).decision == "too little data"
    ignored = monitor.parse_policy({"features": {"x": {"severity": "warn"}}})
    assert _decide([untold], policy=ignored).decision == "none"
    # half the features must drift to retrain: one of three that cannot tell could not make it
    half = monitor.parse_policy({"drifted_share": 0.5})
    quiet = [untold, _feature("y", drifted=False), _feature("z", drifted=False)]
    assert _decide(quiet, policy=half).decision == "none"
    assert _decide([untold, _feature("y", drifted=False)], policy=half).decision == "too little data"
    # a drift found is a drift, however small the batch
    assert _decide([untold, _feature("y")]).decision == "retrain"
    small = {**untold.to_json(), "rows_needed": None}
    decision = _decide([drift.FeatureDrift(**small)])
    assert "no batch would tell: the baseline is too small for x" in decision.reasons[0]


def test_holm_correction():
    assert drift.holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})


# -- The policy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document, message",
    [
        ({"treshold": 1}, "unknown setting 'treshold'"),
        ({"alpha": "low"}, "alpha must be a number >= 0"),
        ({"min_rows": 0}, "min_rows must be a whole number >= 1"),
        ({"power": 1}, "power must be a number between 0 and 1"),
        ({"drift_severity": "panic"}, "drift_severity must be one of retrain, warn, ignore"),
        ({"anomaly_kinds": {"SCHEMA_MISSING_COLUMN": "retrain"}}, "anomaly severity for SCHEMA_MISSING_COLUMN must be"),
        ({"features": {"x": {"limit": 1}}}, "features.x takes threshold and severity"),
        ({"retrain_data": "all"}, "retrain_data must be one of auto, union, latest"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_policies_are_one_line(document, message):
    with pytest.raises(monitor.PolicyError, match=message):
        monitor.parse_policy(document)


def _feature(name="x", drifted=True, distance=0.3, verdict=None):
    return drift.FeatureDrift(
        feature=name,
        kind="numeric",
        measure="jensen_shannon_divergence",
        distance=distance,
        threshold=0.1,
        p_value=1e-9,
        adjusted_p=1e-9,
        alpha=0.01,
        baseline_rows=400,
        rows=2000,
        min_rows=100,
        drifted=drifted,
        verdict=verdict or ("drift" if drifted else "no drift"),
        buckets=[],
        baseline_shares=[],
        shares=[],
        min_detectable_effect=0.2 if verdict == "too little data to tell" else 0.05,
        rows_needed=500,
    )


def _decide(features=(), anomalies=(), performance=None, policy=None, history=(), prediction=None, rows=2000):
    return monitor.decide(
        model={"name": "m", "version": 1, "metric": "f1_macro", "test_score": 0.9},
        data_version="live@abc",
        rows=rows,
        features=list(features),
        anomalies=list(anomalies),
        prediction=prediction,
        performance=performance,
        policy=policy or monitor.Policy(),
        history=list(history),
    )


def test_the_default_policy_retrains_on_any_drifting_feature():
    assert _decide([_feature("x"), _feature("y", drifted=False)]).decision == "retrain"
    assert _decide([_feature("x", drifted=False)]).decision == "none"


def test_anomalies_block_unless_the_policy_says_warn():
    anomaly = {"feature": "x", "kind": "SCHEMA_MISSING_COLUMN", "detail": "Column is completely missing"}
    assert _decide(anomalies=[anomaly]).decision == "blocked"
    lenient = monitor.parse_policy({"anomaly_kinds": {"SCHEMA_MISSING_COLUMN": "warn"}})
    decision = _decide(anomalies=[anomaly], policy=lenient)
    assert decision.decision == "none" and "anomaly x: SCHEMA_MISSING_COLUMN" in decision.warnings


def test_the_policy_can_require_a_share_of_features_and_per_feature_severities():
    half = monitor.parse_policy({"drifted_share": 0.5})
    assert (
        _decide([_feature("x"), _feature("y", drifted=False), _feature("z", drifted=False)], policy=half).decision
        == "none"
    )
    quiet = monitor.parse_policy({"features": {"x": {"severity": "warn"}}})
    decision = _decide([_feature("x")], policy=quiet)
    assert decision.decision == "none" and decision.warnings


def test_a_degraded_live_metric_retrains():
    policy = monitor.Policy()
    degraded = monitor.performance_check("f1_macro", True, registered=0.95, live=0.80, rows=500, policy=policy)
    assert degraded["degraded"] and _decide(performance=degraded).decision == "retrain"
    holds = monitor.performance_check("rmse", False, registered=50.0, live=51.0, rows=500, policy=policy)
    assert not holds["degraded"]
    few = monitor.performance_check("f1_macro", True, registered=0.95, live=0.5, rows=20, policy=policy)
    assert not few["degraded"] and few["verdict"] == "too few labelled rows to tell"


def test_the_cool_down_holds_for_the_same_champion_and_the_same_data():
    now = dt.datetime.now(dt.timezone.utc)
    recent = {
        "retrain_triggered": True,
        "time": (now - dt.timedelta(hours=2)).isoformat(),
        "model": {"version": 1},
        "data_version": "live@old",
    }
    decision = _decide([_feature()], history=[recent])
    # the cool-down holds back the retrain, not the verdict: the decision still says the feature drifts
    assert decision.decision == "retrain" and "x (jensen_shannon_divergence" in decision.reasons[0]
    assert decision.retrain_held.startswith("retrain held back: cool-down: a retrain for champion v1")
    old = {**recent, "time": (now - dt.timedelta(hours=30)).isoformat()}
    assert _decide([_feature()], history=[old]).retrain_held is None
    same_data = {**old, "data_version": "live@abc"}
    assert "already triggered" in _decide([_feature()], history=[same_data]).retrain_held
    other_champion = {**recent, "model": {"version": 7}}
    assert _decide([_feature()], history=[other_champion]).retrain_held is None


def test_the_monitor_log_is_append_only(store):
    first = monitor.append_log(
        store,
        "m",
        {
            "type": "decision",
            "decision": "retrain",
            "model": {"version": 1},
            "data_version": "d@1",
            "reasons": ["x"],
            "retrain_triggered": True,
        },
    )
    monitor.append_log(
        store, "m", {"type": "retrain", "decision_entry": first, "retrained_version": 2, "promoted": True}
    )
    rows = monitor.history(store, "m")
    assert [(r["decision"], r["retrained_version"], r["promoted"]) for r in rows] == [("retrain", 2, True)]
    assert len(store.list("monitor/m/log/")) == 2


# -- The whole loop, on real data ---------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cancer, demo_data):
    """A workspace where demo-breast-cancer has a champion, and batches of live data."""
    work = tmp_path_factory.mktemp("monitor")
    result = subprocess.run(
        [MLOPS, "run", "--data", str(demo_data["breast_cancer"]), "--target", "target"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    batches = {
        "clean": cancer.sample(3000, replace=True, random_state=1),
        "shifted": cancer.sample(2000, replace=True, random_state=2).assign(
            **{"mean radius": lambda f: f["mean radius"] + 1.5 * cancer["mean radius"].std()}
        ),
        "tiny": cancer.sample(30, random_state=3).drop(columns=["target"]),
        "medium": cancer.sample(300, replace=True, random_state=9),
        "unlabelled-shift": cancer.sample(1500, replace=True, random_state=4)
        .drop(columns=["target"])
        .assign(**{"worst area": lambda f: f["worst area"] * 1.8}),
        "missing": cancer.sample(500, replace=True, random_state=5).drop(columns=["mean radius"]),
        "typechange": cancer.sample(500, replace=True, random_state=6).assign(
            **{"mean texture": lambda f: f["mean texture"].astype(str) + "x"}
        ),
        "degraded": _flip_labels(cancer.sample(1000, replace=True, random_state=7), share=0.4),
    }
    for name, frame in batches.items():
        frame.to_csv(work / f"{name}.csv", index=False)
    return work


def _flip_labels(frame, share):
    flip = frame.sample(frac=share, random_state=8).index
    frame = frame.copy()
    frame.loc[flip, "target"] = frame.loc[flip, "target"].map({"malignant": "benign", "benign": "malignant"})
    return frame


def watch(work, batch, *extra):
    result = subprocess.run(
        [MLOPS, "monitor", "--data", f"{batch}.csv", "--model-name", "demo-breast-cancer", "--json", *extra],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
    )
    record = json.loads(result.stdout) if result.stdout.strip().startswith("{") else None
    return result, record


def versions(work):
    return [v.version for v in ModelRegistry(FileStore(work / ".mlops")).versions("demo-breast-cancer")]


@pytest.mark.e2e
@pytest.mark.tfdv
@pytest.mark.parametrize(
    "batch, decision",
    [
        ("clean", "none"),  # a large clean resample
        ("medium", "none"),  # 300 clean rows: enough to see a drift of the threshold's size
        ("tiny", "too little data"),  # 30 rows, no labels: a drift could go unseen
        ("unlabelled-shift", "retrain"),  # label-less: drift alone decides
        ("degraded", "retrain"),  # labels: the champion's live metric fell
    ],
)
def test_monitor_decisions_on_real_batches(trained, batch, decision):
    result, record = watch(trained, batch)
    assert result.returncode == (5 if decision == "too little data" else 0), result.stderr
    assert record["decision"] == decision, record["reasons"]
    assert all(0 < f["min_detectable_effect"] <= 1 for f in record["features"])
    if batch == "tiny":
        assert "too little data to tell" in Path(record["report"]).read_text(encoding="utf-8")
    assert {"decision", "reasons", "features", "model", "data_version"} <= set(record)
    assert record["model"] == {
        "name": "demo-breast-cancer",
        "version": 1,
        "metric": "f1_macro",
        "test_score": record["model"]["test_score"],
    }
    assert Path(record["report"]).is_file()
    if batch == "degraded":
        assert record["performance"]["degraded"] and not any(f["drifted"] for f in record["features"])
    assert versions(trained) == [1]  # nothing retrained without --retrain


@pytest.mark.e2e
@pytest.mark.tfdv
@pytest.mark.parametrize("batch, kind", [("missing", "SCHEMA_MISSING_COLUMN"), ("typechange", "UNEXPECTED_DATA_TYPE")])
def test_a_batch_that_breaks_the_schema_is_blocked_and_never_retrains(trained, batch, kind):
    result, record = watch(trained, batch, "--retrain")
    assert result.returncode == 3, result.stderr
    assert record["decision"] == "blocked" and any(kind in reason for reason in record["reasons"])
    assert versions(trained) == [1]


@pytest.mark.e2e
@pytest.mark.tfdv
def test_a_shifted_batch_retrains_through_the_blessing_gate_and_then_cools_down(trained):
    result, record = watch(trained, "shifted", "--retrain")
    assert result.returncode == 0, result.stderr
    assert record["decision"] == "retrain" and any("mean_radius" in reason for reason in record["reasons"])
    assert versions(trained) == [1, 2]
    retrained = ModelRegistry(FileStore(trained / ".mlops")).get("demo-breast-cancer", 2)
    assert retrained.lineage["data"]["ref"] == record["retrain_data"]  # the champion's data and the batch
    assert retrained.lineage["blessing"]["reason"]  # the same gate decided
    champion = ModelRegistry(FileStore(trained / ".mlops")).champion("demo-breast-cancer").version
    assert champion == (2 if retrained.lineage["blessing"]["blessed"] else 1)
    history = subprocess.run(
        [MLOPS, "monitor", "history", "demo-breast-cancer", "--json"],
        cwd=trained,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows = json.loads(history.stdout)
    assert [row["retrained_version"] for row in rows if row["retrain_triggered"]] == [2]
    if champion == 2:  # the new champion was trained on the batch: against its baseline nothing drifts
        fresh, record = watch(trained, "shifted", "--retrain")
        assert fresh.returncode == 0 and record["decision"] == "none", record["reasons"]
    # against v1 the batch still drifts (and the decision says so), but a retrain on this data version
    # already ran: the cool-down holds the retrain back, flagged by exit 4
    again, record = watch(trained, "shifted", "--retrain", "--against", "demo-breast-cancer@1")
    assert again.returncode == 4 and record["decision"] == "retrain", again.stderr
    assert any("mean_radius" in reason for reason in record["reasons"])
    assert record["retrain_held"].startswith("retrain held back: cool-down"), record["retrain_held"]
    assert versions(trained) == [1, 2]


def test_unseen_categories_in_a_batch_are_counted_and_warned():
    decision = monitor.decide(
        model={"name": "m", "version": 1, "metric": "f1_macro", "test_score": 0.9},
        data_version="live@abc",
        rows=2000,
        features=[],
        anomalies=[],
        prediction=None,
        performance=None,
        policy=monitor.Policy(),
        history=[],
        unseen={"station": 40},
    )
    assert decision.unseen_categories == {"station": 40}
    assert "station: 40 of 2000 rows have a category never seen in training" in decision.warnings


@pytest.mark.e2e
@pytest.mark.tfdv
def test_an_unlabelled_drifted_batch_with_retrain_registers_nothing_and_says_why(trained):
    """It used to retrain on the champion's own data version and print "retrained ... now the champion"."""
    before = versions(trained)
    result, record = watch(trained, "unlabelled-shift", "--retrain")
    assert result.returncode == 4, result.stderr  # decision retrain, nothing retrained
    assert record["decision"] == "retrain" and any("worst_area" in reason for reason in record["reasons"])
    assert record["retrain_held"].startswith("retrain needed: no new labelled data"), record["retrain_held"]
    assert "retrained" not in result.stdout + result.stderr
    assert versions(trained) == before  # nothing registered
    rows = json.loads(
        subprocess.run(
            [MLOPS, "monitor", "history", "demo-breast-cancer", "--json"],
            cwd=trained,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    )
    last = rows[-1]
    assert last["data_version"] == record["data_version"] and not last["retrain_triggered"]
    assert last["retrain_held"].startswith("retrain needed: no new labelled data")


def test_retraining_needs_labelled_data_the_champion_has_not_learnt_from(store):
    from mlops.store.datasets import DataVersions

    data = DataVersions(store)
    first, _ = data.publish("loans", pd.DataFrame({"x": [1, 2], "y": [0, 1]}), source="a.csv")
    policy = monitor.Policy()
    held = monitor.no_new_labelled_data(store, first.full_ref, "y", has_labels=False, policy=policy)
    assert held.startswith("retrain needed: no new labelled data: the batch has no 'y' labels")
    assert monitor.no_new_labelled_data(store, first.full_ref, "y", has_labels=True, policy=policy) is None
    union = monitor.Policy(retrain_data="union")
    assert "no new labelled data" in monitor.no_new_labelled_data(store, first.full_ref, "y", False, union)
    data.publish("loans", pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 1]}), source="b.csv")  # newer labelled data
    assert monitor.no_new_labelled_data(store, first.full_ref, "y", has_labels=False, policy=policy) is None
