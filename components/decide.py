"""The ``decide`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from typing import NamedTuple

from kfp.dsl import HTML, Artifact, Input, Markdown, Model, Output

from components.artifact_types import Anomalies, Statistics


def decide(
    data_version: str,
    model_name: str,
    model_version: int,
    target: str,
    task: str,
    metric: str,
    test_score: float,
    profile: Input[Artifact],
    champion: Input[Model],
    anomalies: Input[Anomalies],
    live_statistics: Input[Statistics],
    policy: str,
    allow_retrain: bool,
    store_uri: str,
    decision_record: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
) -> NamedTuple("DecisionOutputs", decision=str, action=str, retrain_data=str, log_entry=str):
    """Drift (sample-size aware), prediction drift, live performance and the policy: none, retrain or blocked.
    The decision is appended to the model's monitor log; `action` is retrain only when retraining is allowed."""
    from components import adapter

    with adapter.stage("monitor") as step:
        import json
        import os
        from collections import namedtuple
        from pathlib import Path

        from mlops.stages import monitor as stage
        from mlops.store import model_io, open_store

        store = open_store(uri=store_uri, role="pipeline")
        rules = stage.parse_policy_text(text=policy)
        with open(anomalies.path, encoding="utf-8") as handle:
            found = json.load(handle)
        with open(profile.path, encoding="utf-8") as handle:
            baseline_profile = json.load(handle)
        with open(os.path.join(live_statistics.path, "result.json"), encoding="utf-8") as handle:
            tfdv_result = json.load(handle)
        kept_at = stage.report_key(model_name)
        outcome = stage.monitor_batch(
            store=store,
            model_name=model_name,
            model_version=model_version,
            data_version=data_version,
            target=target,
            task=task,
            metric=metric,
            test_score=test_score,
            profile=baseline_profile,
            model=model_io.load(champion.path),
            anomalies=found,
            policy=rules,
            allow_retrain=allow_retrain,
            report_key=kept_at,
        )
        record = {**outcome.decision.to_json(), "tfdv_drift": tfdv_result.get("tfdv_drift", [])}
        Path(decision_record.path).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
        decision_record.metadata.update(
            {"decision": outcome.decision.decision, "action": outcome.action, "log_entry": outcome.log_entry}
        )
        from mlops.reporting import monitor_report

        html = monitor_report.render(record)
        Path(report.path).write_text(html, encoding="utf-8")
        store.put(key=kept_at, data=html.encode("utf-8"))
        Path(summary.path).write_text(monitor_report.summary(record), encoding="utf-8")
        step.progress(
            f"decision: {outcome.decision.decision} ({'; '.join(outcome.decision.reasons)})"
            + (f"; retraining on {outcome.retrain_data}" if outcome.action == "retrain" else "")
            + (f"; not retraining: {outcome.decision.retrain_held}" if outcome.decision.retrain_held else ""),
        )
        return namedtuple("DecisionOutputs", "decision action retrain_data log_entry")(
            outcome.decision.decision, outcome.action, outcome.retrain_data, outcome.log_entry
        )
