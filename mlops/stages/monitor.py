"""The drift monitor: live data against the champion's baseline, a policy, and a decision.

The decision is ``none``, ``retrain``, ``too little data`` or ``blocked``:

- ``blocked``: the live batch breaks the schema the model was validated against
  (a missing feature, a type change, a value outside a closed domain; the
  policy maps anomaly kinds to severities). The batch must not be used.
- ``retrain``: by default, when any feature drifts (mlops.stages.drift: effect
  AND significance AND enough rows), or when the batch has labels and the
  champion's live metric is worse than its registered test metric by more than
  a tolerance. The policy can require a share of features and set per-feature
  thresholds and severities.

  A retrain decision is not always a retrain: ``retrain_held`` says why none
  happens. Retraining needs labelled data the champion has not learnt from
  (the batch's labels, or a newer version of its data set): without any, the
  decision still says retrain, and ``retrain_held`` is "retrain needed: no new
  labelled data". The policy's cool-down (no second retrain for the same
  champion within N hours, or on the same data version) holds back only the
  retrain itself: while drift persists, the decision still says so.
- ``too little data``: nothing calls for a retrain, but the batch (or the
  baseline) is too small to see a drift of the threshold's size on a feature
  that would retrain: its minimum detectable effect at the policy's ``alpha``
  and ``power`` is above its threshold (mlops.stages.drift), or the batch has
  fewer than ``min_rows`` rows. The reasons name the features and the rows a
  batch would need.
- ``none``: anything else, with the reasons (warnings included).

Every decision is appended to the model's monitor log in the store
(``monitor/<model>/log/<time>-<id>.json``, one object each, never rewritten).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from mlops.errors import MlopsError
from mlops.stages import drift

SEVERITIES = {"drift": ("retrain", "warn", "ignore"), "anomaly": ("block", "warn", "ignore")}
NONE, RETRAIN, TOO_LITTLE_DATA, BLOCKED = "none", "retrain", "too little data", "blocked"
RETRAIN_DATA = ("auto", "union", "latest")


class PolicyError(MlopsError):
    """A monitor policy file that cannot be used."""


@dataclass
class Policy:
    """What the monitor decides from what it measures (defaults documented in README)."""

    numeric_threshold: float = drift.DEFAULT_NUMERIC_THRESHOLD
    categorical_threshold: float = drift.DEFAULT_CATEGORICAL_THRESHOLD
    alpha: float = drift.DEFAULT_ALPHA
    # The chance a drift of the threshold's size must have of being seen before the answer is "none".
    power: float = drift.DEFAULT_POWER
    min_rows: int = drift.DEFAULT_MIN_ROWS
    # Retrain when at least this share of the compared features drift (0: any one feature).
    drifted_share: float = 0.0
    drift_severity: str = "retrain"
    prediction_drift_severity: str = "warn"
    performance_severity: str = "retrain"
    # Scores (f1, r2, ...): an absolute drop; error metrics (rmse, ...): a relative rise.
    performance_tolerance: float = 0.05
    anomaly_severity: str = "block"
    anomaly_kinds: dict = field(default_factory=dict)  # TFDV anomaly kind -> block | warn | ignore
    features: dict = field(default_factory=dict)  # feature -> {"threshold": x, "severity": s}
    cooldown_hours: float = 24.0
    retrain_data: str = "auto"

    def to_json(self) -> dict:
        return asdict(self)


_POLICY_KEYS = {
    "numeric_threshold",
    "categorical_threshold",
    "alpha",
    "power",
    "min_rows",
    "drifted_share",
    "drift_severity",
    "prediction_drift_severity",
    "performance_severity",
    "performance_tolerance",
    "anomaly_severity",
    "anomaly_kinds",
    "features",
    "cooldown_hours",
    "retrain_data",
}


def parse_policy(document, source: str = "policy") -> Policy:
    """A Policy from a mapping (a YAML file's content); one PolicyError line per problem."""
    if document is None:
        return Policy()
    if not isinstance(document, dict):
        raise PolicyError(f"{source} must be a mapping of settings, got {type(document).__name__}")
    unknown = sorted(set(document) - _POLICY_KEYS)
    if unknown:
        raise PolicyError(f"{source}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(_POLICY_KEYS))}")
    policy = Policy(**document)
    for name in (
        "numeric_threshold",
        "categorical_threshold",
        "alpha",
        "drifted_share",
        "performance_tolerance",
        "cooldown_hours",
    ):
        value = getattr(policy, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise PolicyError(f"{source}: {name} must be a number >= 0, got {value!r}")
    if isinstance(policy.power, bool) or not isinstance(policy.power, (int, float)) or not 0 < policy.power < 1:
        raise PolicyError(f"{source}: power must be a number between 0 and 1 (exclusive), got {policy.power!r}")
    if isinstance(policy.min_rows, bool) or not isinstance(policy.min_rows, int) or policy.min_rows < 1:
        raise PolicyError(f"{source}: min_rows must be a whole number >= 1, got {policy.min_rows!r}")
    for name in ("drift_severity", "prediction_drift_severity", "performance_severity"):
        if getattr(policy, name) not in SEVERITIES["drift"]:
            raise PolicyError(
                f"{source}: {name} must be one of {', '.join(SEVERITIES['drift'])}, got {getattr(policy, name)!r}"
            )
    kinds = {"anomaly_severity": policy.anomaly_severity, **policy.anomaly_kinds}
    for kind, severity in kinds.items():
        if severity not in SEVERITIES["anomaly"]:
            raise PolicyError(
                f"{source}: anomaly severity for {kind} must be one of "
                f"{', '.join(SEVERITIES['anomaly'])}, got {severity!r}"
            )
    for feature, settings in policy.features.items():
        if not isinstance(settings, dict) or set(settings) - {"threshold", "severity"}:
            raise PolicyError(f"{source}: features.{feature} takes threshold and severity, got {settings!r}")
        if settings.get("severity", "retrain") not in SEVERITIES["drift"]:
            raise PolicyError(f"{source}: features.{feature}.severity must be one of {', '.join(SEVERITIES['drift'])}")
    if policy.retrain_data not in RETRAIN_DATA:
        raise PolicyError(
            f"{source}: retrain_data must be one of {', '.join(RETRAIN_DATA)}, got {policy.retrain_data!r}"
        )
    return policy


def load_policy(path: str | Path | None) -> Policy:
    """The policy in a YAML file, or the defaults."""
    import yaml

    if not path:
        return Policy()
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy file not found: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise PolicyError(f"policy file {path} is not readable YAML: {error}") from None
    return parse_policy(document, str(path))


# -- The decision ---------------------------------------------------------------------------------


@dataclass
class Decision:
    """What the monitor concluded, and everything it concluded it from."""

    decision: str
    reasons: list
    warnings: list
    model: dict  # name, version (the baseline's), metric, test score
    data_version: str
    rows: int
    features: list  # FeatureDrift.to_json() rows
    anomalies: list
    prediction_drift: dict | None = None
    performance: dict | None = None
    retrain_data: str | None = None
    policy: dict | None = None
    time: str = ""
    # Batch rows whose value a categorical feature never had in training, by column (a warning each).
    unseen_categories: dict = field(default_factory=dict)
    # Why a retrain decision does not retrain (cool-down, no new labelled data); None when it may.
    retrain_held: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def _severity(policy: Policy, feature: str) -> str:
    return policy.features.get(feature, {}).get("severity", policy.drift_severity)


def anomaly_severity(policy: Policy, kind: str) -> str:
    return policy.anomaly_kinds.get(kind, policy.anomaly_severity)


def performance_check(
    metric: str, higher_is_better: bool, registered: float, live: float, rows: int, policy: Policy
) -> dict:
    """Whether the champion's live score is worse than its registered test score by more than the tolerance."""
    if higher_is_better:
        degraded = live < registered - policy.performance_tolerance
        limit = registered - policy.performance_tolerance
    else:
        degraded = live > registered * (1 + policy.performance_tolerance)
        limit = registered * (1 + policy.performance_tolerance)
    enough = rows >= policy.min_rows
    return {
        "metric": metric,
        "registered": registered,
        "live": live,
        "limit": limit,
        "rows": rows,
        "degraded": bool(degraded and enough),
        "verdict": ("too few labelled rows to tell" if not enough else "degraded" if degraded else "holds"),
    }


def decide(
    *,
    model: dict,
    data_version: str,
    rows: int,
    features: list[drift.FeatureDrift],
    anomalies: list[dict],
    prediction: drift.FeatureDrift | None,
    performance: dict | None,
    policy: Policy,
    history: list[dict],
    unseen: dict | None = None,
) -> Decision:
    """The decision from the measurements, the policy and the model's monitor log."""
    reasons, warnings = [], []
    for column, count in sorted((unseen or {}).items()):
        warnings.append(f"{column}: {count} of {rows} rows have a category never seen in training")
    blocking = [a for a in anomalies if anomaly_severity(policy, a["kind"]) == "block"]
    for anomaly in anomalies:
        if anomaly_severity(policy, anomaly["kind"]) == "warn":
            warnings.append(f"anomaly {anomaly['feature']}: {anomaly['kind']}")
    record = dict(
        model=model,
        data_version=data_version,
        rows=rows,
        features=[f.to_json() for f in features],
        anomalies=anomalies,
        prediction_drift=prediction.to_json() if prediction else None,
        performance=performance,
        policy=policy.to_json(),
        unseen_categories=dict(unseen or {}),
    )
    if blocking:
        reasons = [f"{a['feature']}: {a['kind']} ({a['detail']})" for a in blocking]
        return Decision(decision="blocked", reasons=reasons, warnings=warnings, **record)

    drifted = [f for f in features if f.drifted and _severity(policy, f.feature) != "ignore"]
    for feature in drifted:
        if _severity(policy, feature.feature) == "warn":
            warnings.append(f"{feature.feature} drifts ({feature.measure} {feature.distance:.3f})")
    retraining = [f for f in drifted if _severity(policy, f.feature) == "retrain"]
    share = len(retraining) / max(len(features), 1)
    if retraining and share >= policy.drifted_share:
        names = ", ".join(
            f"{f.feature} ({f.measure} {f.distance:.3f} >= {f.threshold:g}, p={f.adjusted_p:.2g}, n={f.rows})"
            for f in retraining
        )
        reasons.append(f"{len(retraining)} of {len(features)} features drift: {names}")
    elif retraining:
        warnings.append(
            f"{len(retraining)} of {len(features)} features drift, under the share "
            f"{policy.drifted_share:g} the policy requires"
        )
    if rows < policy.min_rows:
        warnings.append(f"{rows} rows: too few to tell drift from noise (the policy needs {policy.min_rows})")
    if prediction is not None and prediction.drifted:
        text = f"predictions drift ({prediction.measure} {prediction.distance:.3f}, p={prediction.adjusted_p:.2g})"
        if policy.prediction_drift_severity == "retrain":
            reasons.append(text)
        elif policy.prediction_drift_severity == "warn":
            warnings.append(text)
    if performance and performance["degraded"]:
        text = (
            f"live {performance['metric']} {performance['live']:.4f} is worse than the registered "
            f"{performance['registered']:.4f} beyond the tolerance (limit {performance['limit']:.4f}, "
            f"n={performance['rows']})"
        )
        if policy.performance_severity == "retrain":
            reasons.append(text)
        elif policy.performance_severity == "warn":
            warnings.append(text)
    if not reasons:
        untold = too_little_data(features, prediction, len(retraining), policy)
        if untold:
            return Decision(decision=TOO_LITTLE_DATA, reasons=[untold], warnings=warnings, **record)
        return Decision(decision=NONE, reasons=["no drift, no degradation"], warnings=warnings, **record)
    cooling = cooldown_reason(history, model["version"], data_version, policy.cooldown_hours)
    held = f"retrain held back: {cooling}" if cooling else None
    return Decision(decision="retrain", reasons=reasons, warnings=warnings, retrain_held=held, **record)


def too_little_data(
    features: list[drift.FeatureDrift], prediction: drift.FeatureDrift | None, drifting: int, policy: Policy
) -> str | None:
    """Why the answer cannot be "none", or None when it can: the features that could not tell (their
    minimum detectable effect is above their threshold, or the batch is under ``min_rows``) are ones a
    drift would retrain on, and enough of them to reach the policy's ``drifted_share``."""
    untold = [f for f in features if f.verdict == drift.TOO_LITTLE_DATA and _severity(policy, f.feature) == "retrain"]
    if not untold or (drifting + len(untold)) / max(len(features), 1) < policy.drifted_share:
        untold = []
    if prediction is not None and prediction.verdict == drift.TOO_LITTLE_DATA:
        if policy.prediction_drift_severity == "retrain":
            untold.append(prediction)
    if not untold:
        return None
    untold.sort(key=lambda f: -f.min_detectable_effect / max(f.threshold, 1e-12))  # the furthest from telling first
    shown = ", ".join(f"{f.feature} ({f.measure} {f.min_detectable_effect:.3g} > {f.threshold:g})" for f in untold[:3])
    if len(untold) > 3:
        shown += f" and {len(untold) - 3} more"
    short = [f.feature for f in untold if f.rows_needed is None]
    if short:
        more = (
            f"no batch would tell: the baseline is too small for {', '.join(short)} "
            "(retrain on more data, or raise the threshold)"
        )
    else:
        more = f"a batch of {max(f.rows_needed or 0 for f in untold)} rows would tell"
    return (
        f"too little data to tell: in {untold[0].rows} rows, the smallest drift seen with {policy.power:.0%} "
        f"power is above the threshold for {shown}; {more}"
    )


def cooldown_reason(
    history: list[dict], champion_version: int, data_version: str, hours: float, now: dt.datetime | None = None
) -> str | None:
    """Why a retrain must wait, from the log of earlier decisions that triggered one; None when it need not."""
    now = now or dt.datetime.now(dt.timezone.utc)
    for entry in reversed(history):
        if not entry.get("retrain_triggered"):
            continue
        if entry.get("data_version") == data_version:
            return (
                f"cool-down: a retrain on this data version was already triggered at {entry['time']}; "
                "not retraining on it again"
            )
        age = now - dt.datetime.fromisoformat(entry["time"])
        if entry.get("model", {}).get("version") == champion_version and age < dt.timedelta(hours=hours):
            return (
                f"cool-down: a retrain for champion v{champion_version} was triggered at {entry['time']}, "
                f"less than {hours:g} h ago"
            )
    return None


# -- The monitor log ------------------------------------------------------------------------------


def _log_prefix(model_name: str) -> str:
    return f"monitor/{model_name}/log/"


def append_log(store, model_name: str, entry: dict) -> str:
    """Append one decision to the model's monitor log (a new object; nothing is ever rewritten)."""
    from mlops.store.registry import dumps, validate_name

    validate_name("model", model_name)
    stamp = dt.datetime.now(dt.timezone.utc)
    key = f"{_log_prefix(model_name)}{stamp.strftime('%Y%m%dT%H%M%S.%fZ')}-{uuid.uuid4().hex[:8]}.json"
    entry = {**entry, "id": key, "time": entry.get("time") or stamp.isoformat(timespec="seconds")}
    store.create(key, dumps(entry))
    return key


def read_log(store, model_name: str) -> list[dict]:
    """The model's monitor log, oldest first."""
    from mlops.store.registry import validate_name

    validate_name("model", model_name)
    return [json.loads(store.read(key)) for key in store.list(_log_prefix(model_name)) if key.endswith(".json")]


# -- The baseline and the retraining data -----------------------------------------------------------


@dataclass
class Baseline:
    """What a registered model version carries for the monitor."""

    version: object  # mlops.store.registry.ModelVersion
    profile: dict
    schema_text: str
    statistics: bytes

    @property
    def target(self) -> str:
        return self.version.lineage["data"]["target"]


def load_baseline(store, model_name: str, against: str = "", check_model: bool = True) -> Baseline:
    """The baseline of ``against`` (NAME@VERSION) or, by default, of the model's current champion.

    With ``check_model`` the version's model is loaded too, so a model that cannot be loaded stops
    the monitor here in one line naming NAME@VERSION (not later, by the path of a task's file); the
    CLI's pre-flight skips it (it would import scikit-learn into the process that waits for the run).
    """
    from mlops.store import NotFound, model_io
    from mlops.store.registry import ModelRegistry

    registry = ModelRegistry(store)
    if against:
        version = registry.resolve(against)
        if version.name != model_name:
            raise MlopsError(f"--against {against} is a version of {version.name!r}, not of {model_name!r}")
    else:
        version = registry.champion(model_name)
        if version is None:
            raise NotFound(
                f"model {model_name!r} has no champion in {store.uri} to monitor against; "
                "train one first, or name a version with --against NAME@VERSION"
            )
    missing = [
        name
        for name in ("baseline/profile.json", "baseline/schema.pbtxt", "baseline/train_statistics.pb")
        if name not in version.files
    ]
    if missing:
        raise MlopsError(
            f"{version.ref} carries no monitoring baseline ({', '.join(missing)} missing): it was "
            "registered before baselines travelled with models; retrain it"
        )
    if check_model:
        model_io.loads(registry.read_file(version, model_io.FILE_NAME), source=f"the model of {version.ref}")
    return Baseline(
        version=version,
        profile=json.loads(registry.read_file(version, "baseline/profile.json")),
        schema_text=registry.read_file(version, "baseline/schema.pbtxt").decode("utf-8"),
        statistics=registry.read_file(version, "baseline/train_statistics.pb"),
    )


def retraining_data(
    store, trained_on_ref: str, target: str, batch: pd.DataFrame, batch_version: str, has_labels: bool, policy: Policy
) -> str:
    """The data a retrain uses: with labels, the champion's training data and the batch together (published
    as a new version of the champion's data set); without, the data set's latest version."""
    from mlops.store.datasets import DataVersions

    versions = DataVersions(store)
    trained_on = versions.resolve(trained_on_ref)
    mode = policy.retrain_data
    if mode == "auto":
        mode = "union" if has_labels else "latest"
    if mode == "union":
        if not has_labels:
            raise MlopsError(
                "the policy asks to retrain on the champion's data and the batch, but the batch has "
                f"no '{target}' column (labels)"
            )
        original = versions.read_frame(trained_on)
        union = pd.concat([original, batch[[c for c in original.columns if c in batch.columns]]], ignore_index=True)
        version, _ = versions.publish(trained_on.name, union, source=f"{trained_on.full_ref} + {batch_version}")
        return version.full_ref
    return versions.resolve(f"{trained_on.name}@latest").full_ref


NO_NEW_DATA = "retrain needed: no new labelled data"


def no_new_labelled_data(store, trained_on_ref: str, target: str, has_labels: bool, policy: Policy) -> str | None:
    """Why a retrain would learn nothing new, or None when there is labelled data the champion has not seen.

    With labels in the batch there is (the champion's data plus the batch). Without, a retrain uses the data
    set's latest version (or, by policy, refuses): when that is the version the champion learnt from, a
    retrain would register the same model again.
    """
    from mlops.store.datasets import DataVersions

    if has_labels:
        return None
    versions = DataVersions(store)
    trained_on = versions.resolve(trained_on_ref)
    if policy.retrain_data == "union":
        return (
            f"{NO_NEW_DATA}: the batch has no '{target}' labels, and the policy retrains on the champion's "
            "data and the batch"
        )
    latest = versions.resolve(f"{trained_on.name}@latest")
    if latest.full_ref == trained_on.full_ref:
        return (
            f"{NO_NEW_DATA}: the batch has no '{target}' labels, and {trained_on.full_ref} (the newest version "
            f"of {trained_on.name!r}) is what the champion learnt from; label the batch and publish it to retrain"
        )
    return None


def parse_policy_text(text: str) -> Policy:
    """A policy given as YAML (or JSON) text, the form a pipeline parameter carries; "" is the default."""
    import yaml

    if not text or not text.strip():
        return Policy()
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError(f"the policy is not valid YAML: {error}") from None
    return parse_policy(document, "policy")


@dataclass
class MonitorOutcome:
    decision: Decision
    action: str  # retrain (and it will happen) | none
    retrain_data: str
    log_entry: str


def monitor_batch(
    *,
    store,
    model_name: str,
    model_version: int,
    data_version: str,
    target: str,
    task: str,
    metric: str,
    test_score: float,
    profile: dict,
    model,
    anomalies: list[dict],
    policy: Policy,
    allow_retrain: bool,
    report_key: str = "",
) -> MonitorOutcome:
    """Measure a stored batch against a model version's baseline, decide, and log the decision
    (with ``report_key``, where the caller keeps the decision's report in the store)."""
    from mlops.stages.metrics import higher_is_better, score_model
    from mlops.store.datasets import DataVersions
    from mlops.store.registry import ModelRegistry

    versions = DataVersions(store)
    batch = versions.read_frame(versions.resolve(data_version))
    feature_columns = [c for c in profile["columns"] if c != target]
    has_labels = target in batch.columns and bool(batch[target].notna().any())
    blocking = any(anomaly_severity(policy, a["kind"]) == "block" for a in anomalies)
    features, prediction, performance, unseen = [], None, None, {}
    if not blocking:
        from mlops.stages.features import unseen_categories

        unseen = unseen_categories(model, batch[feature_columns])
        thresholds = {name: rule["threshold"] for name, rule in policy.features.items() if "threshold" in rule}
        settings = dict(
            numeric_threshold=policy.numeric_threshold,
            categorical_threshold=policy.categorical_threshold,
            alpha=policy.alpha,
            power=policy.power,
            min_rows=policy.min_rows,
        )
        features = drift.compare_frame(profile, batch, thresholds=thresholds, columns=feature_columns, **settings)
        predictions = pd.DataFrame({"prediction": model.predict(batch[feature_columns])})
        prediction = drift.compare_frame({"columns": {"prediction": profile["predictions"]}}, predictions, **settings)[
            0
        ]
        if has_labels:
            labelled = batch[batch[target].notna()]
            live = score_model(model, labelled[feature_columns], labelled[target], task).get(metric)
            if live is not None:
                performance = performance_check(
                    metric, higher_is_better(metric), test_score, live, len(labelled), policy
                )
    decision = decide(
        model={"name": model_name, "version": model_version, "metric": metric, "test_score": test_score},
        data_version=data_version,
        rows=int(len(batch)),
        features=features,
        anomalies=anomalies,
        prediction=prediction,
        performance=performance,
        policy=policy,
        history=read_log(store, model_name),
        unseen=unseen,
    )
    decision.time = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    action, retrain_data = "none", ""
    if decision.decision == "retrain":
        trained_on = ModelRegistry(store).get(model_name, model_version).lineage["data"]["ref"]
        nothing_new = no_new_labelled_data(store, trained_on, target, has_labels, policy)
        decision.retrain_held = nothing_new or decision.retrain_held
        if allow_retrain and not decision.retrain_held:
            retrain_data = retraining_data(store, trained_on, target, batch, data_version, has_labels, policy)
            action = "retrain"
    decision.retrain_data = retrain_data or None
    entry = {
        "type": "decision",
        **decision.to_json(),
        "retrain_triggered": action == "retrain",
        "report_key": report_key,
    }
    log_entry = append_log(store, model_name, entry)
    return MonitorOutcome(decision=decision, action=action, retrain_data=retrain_data, log_entry=log_entry)


def history(store, model_name: str) -> list[dict]:
    """The model's monitor decisions, oldest first, each with the version its retrain registered (if any)."""
    entries = read_log(store, model_name)
    outcomes = {e["decision_entry"]: e for e in entries if e.get("type") == "retrain"}
    rows = []
    for entry in entries:
        if entry.get("type") == "retrain":
            continue
        key = entry.get("id") if entry.get("id") in outcomes else None
        rows.append(
            {
                "time": entry["time"],
                "model": entry["model"],
                "data_version": entry["data_version"],
                "decision": entry["decision"],
                "reasons": entry["reasons"],
                "rows": entry.get("rows"),
                # the features that could not tell, with their minimum detectable effect (mlops.stages.drift)
                "too_little_data": {
                    f["feature"]: f.get("min_detectable_effect")
                    for f in entry.get("features", [])
                    if f.get("verdict") == drift.TOO_LITTLE_DATA
                },
                "retrain_triggered": entry.get("retrain_triggered", False),
                "retrain_held": entry.get("retrain_held"),
                "report_key": entry.get("report_key") or None,
                "retrained_version": outcomes[key]["retrained_version"] if key else None,
                "promoted": outcomes[key]["promoted"] if key else None,
            }
        )
    return rows


def report_key(model_name: str) -> str:
    """A new place for a monitor decision's report in the store."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"reports/{model_name}/monitor/{stamp}-{uuid.uuid4().hex[:8]}.html"
