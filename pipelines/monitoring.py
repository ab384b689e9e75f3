"""The monitor pipeline, top to bottom: live data against the champion's baseline, and retraining
when the policy says so.

ingest the live batch (as a data version) → load the baseline the model version
carries (schema, training statistics, profile, the model) → validate the batch
with TFDV in the SERVING environment → measure drift, prediction drift and live
performance, decide by the policy, log the decision → if the decision is
retrain (and retraining is allowed): the training pipeline on the chosen data,
through the same evaluate/blessing gate, so drift never crowns a worse model.
"""

from typing import NamedTuple

from kfp import dsl

from components.factory import component
from mlops import config
from mlops.stages.search_space import DEFAULT_SEARCH_SPACE_PARAMETER
from pipelines.task_settings import apply_task_settings as for_cluster
from pipelines.training import training_pipeline

ingest, load_baseline, validate_batch = component("ingest"), component("load_baseline"), component("validate_batch")
decide, retrain_gate, record_retrain = component("decide"), component("retrain_gate"), component("record_retrain")


@dsl.pipeline(
    name=config.MONITOR_PIPELINE_NAME,
    description="Live data against the champion's baseline: schema (TFDV, SERVING), sample-size-aware "
    "drift, prediction drift, live performance; retrain when the policy says so.",
)
def monitor_pipeline(
    data_uri: str,
    model_name: str,
    data_name: str = "",
    against: str = "",
    policy: str = "",
    allow_retrain: bool = False,
    store_uri: str = "",
    code_version: str = "unknown",
) -> NamedTuple("MonitorOutputs", decision=str, action=str, record=dsl.Artifact, report=dsl.HTML):
    # 1. Ingest the live batch: clean it and publish it as a data version (the label may be absent).
    batch = for_cluster(
        ingest(
            data_uri=data_uri,
            data_name=data_name,
            model_name=model_name,
            search_space=DEFAULT_SEARCH_SPACE_PARAMETER,
            validation_fraction=config.DEFAULT_VALIDATION_FRACTION,
            test_fraction=config.DEFAULT_TEST_FRACTION,
            min_score="",
            store_uri=store_uri,
        ).set_caching_options(False),
        reads_data=True,
    )

    # 2. The baseline the model version carries: schema, training statistics, profile, the model itself.
    baseline = for_cluster(
        load_baseline(model_name=model_name, against=against, store_uri=store_uri).set_caching_options(False)
    )

    # 3. TFDV: the batch's statistics and its anomalies against the schema, label not required.
    checked = for_cluster(
        validate_batch(
            data_version=batch.outputs["data_version"],
            target=baseline.outputs["target"],
            schema=baseline.outputs["schema"],
            statistics=baseline.outputs["statistics"],
            store_uri=store_uri,
        ),
        memory_request="1Gi",
        memory_limit="4Gi",
    )

    # 4. Drift, prediction drift, live performance and the policy: none, retrain or blocked (logged).
    decision = for_cluster(
        decide(
            data_version=batch.outputs["data_version"],
            model_name=model_name,
            model_version=baseline.outputs["model_version"],
            target=baseline.outputs["target"],
            task=baseline.outputs["task"],
            metric=baseline.outputs["metric"],
            test_score=baseline.outputs["test_score"],
            profile=baseline.outputs["profile"],
            champion=baseline.outputs["champion"],
            anomalies=checked.outputs["anomalies"],
            live_statistics=checked.outputs["live_statistics"],
            policy=policy,
            allow_retrain=allow_retrain,
            store_uri=store_uri,
        ).set_caching_options(False)
    )

    # 5. Retrain: the training pipeline on the chosen data, through the same blessing gate.
    gate = for_cluster(retrain_gate(action=decision.outputs["action"]))
    with dsl.If(gate.output == "retrain", name="retrain"):
        retrained = training_pipeline(
            data_uri=decision.outputs["retrain_data"],
            target=baseline.outputs["target"],
            model_name=model_name,
            data_name=baseline.outputs["data_name"],
            store_uri=store_uri,
            task=baseline.outputs["task"],
            search_space=baseline.outputs["search_space"],
            seed=baseline.outputs["seed"],
            validation_fraction=baseline.outputs["validation_fraction"],
            test_fraction=baseline.outputs["test_fraction"],
            split_salt=baseline.outputs["split_salt"],
            min_skill=baseline.outputs["min_skill"],
            code_version=code_version,
        )
        for_cluster(
            record_retrain(
                model_name=model_name,
                log_entry=decision.outputs["log_entry"],
                model_version=retrained.outputs["model_version"],
                promoted=retrained.outputs["promoted"],
                store_uri=store_uri,
            ).set_caching_options(False)
        )

    MonitorOutputs = NamedTuple("MonitorOutputs", decision=str, action=str, record=dsl.Artifact, report=dsl.HTML)
    return MonitorOutputs(
        decision=decision.outputs["decision"],
        action=decision.outputs["action"],
        record=decision.outputs["decision_record"],
        report=decision.outputs["report"],
    )
