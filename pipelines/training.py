"""The training pipeline, top to bottom in the order a run goes.

ingest → validate (TFDV; anomalies stop here) → prepare features → train
candidates in parallel → pick the best → evaluate on test vs the champion →
register (champion moves only when blessed) → report.

Every task gets its cluster settings (store credentials from the Secret,
resources, non-root) through ``for_cluster``; kfp.local ignores them.

Tasks whose result depends on something outside their inputs (the data
behind a URI, the registry's baseline schema or champion) never use KFP's
cache; pure steps (prepare, train) may.
"""

from typing import NamedTuple

from kfp import dsl

from components import evaluate, factory, ingest, prepare, register, report, train, validate
from components.images import TFDV_IMAGE
from pipelines.cluster import apply_task_settings as for_cluster
from pipelines.search_space import load_search_space, to_parameter

PIPELINE_NAME = "training-pipeline"
DEFAULT_SEARCH_SPACE = to_parameter(load_search_space())

ingest_op = factory.build(ingest.ingest)
validate_op = factory.build(validate.validate, image=TFDV_IMAGE)
prepare_op = factory.build(prepare.prepare)
expand_candidates_op = factory.build(train.expand_candidates)
train_op = factory.build(train.train)
select_best_op = factory.build(train.select_best)
evaluate_op = factory.build(evaluate.evaluate)
register_op = factory.build(register.register)
report_op = factory.build(report.report)


@dsl.pipeline(name=PIPELINE_NAME, description="Ingest, validate (TFDV), prepare, train candidates in parallel, "
                                               "evaluate against the champion, register.")
def training_pipeline(
    data_uri: str,
    target: str,
    model_name: str,
    store_uri: str = "",
    task: str = "auto",
    search_space: str = DEFAULT_SEARCH_SPACE,
    seed: int = 42,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    split_salt: str = "",
    min_score: float = 0.0,
    code_version: str = "unknown",
) -> NamedTuple("RunOutputs", registration=str, report_path=str):
    # 1. Ingest: read the data, clean column names, split by row-content hash.
    data = ingest_op(data_uri=data_uri, target=target, validation_fraction=validation_fraction,
                     test_fraction=test_fraction, split_salt=split_salt, store_uri=store_uri)
    for_cluster(data.set_caching_options(False))

    # 2. Validate with TFDV against the curated/baseline schema: anomalies stop the run.
    checked = validate_op(train=data.outputs["train"], validation=data.outputs["validation"],
                          test=data.outputs["test"], model_name=model_name, store_uri=store_uri)
    for_cluster(checked.set_caching_options(False), memory_request="1Gi", memory_limit="4Gi")

    # 3. Prepare features: fit the transform on train only.
    features = for_cluster(prepare_op(train_split=data.outputs["train"], target=target, task=task).after(checked))

    # 4. Train every candidate of the search space in parallel, then pick the best on validation.
    candidates = for_cluster(expand_candidates_op(search_space=search_space, prepare_info=features.outputs["Output"]))
    # At most 4 candidates train at once: enough to use a node, not to starve the cluster.
    with dsl.ParallelFor(candidates.output, name="candidates", parallelism=4) as candidate:
        fitted = train_op(candidate=candidate, train_split=data.outputs["train"],
                          validation_split=data.outputs["validation"], preprocessor=features.outputs["preprocessor"],
                          seed=seed)
        for_cluster(fitted)
    selection = select_best_op(candidates=dsl.Collected(fitted.outputs["model"]), search_space=search_space,
                               prepare_info=features.outputs["Output"])
    for_cluster(selection)

    # 5. Evaluate on the untouched test split, against the threshold and the champion.
    evaluation = evaluate_op(best=selection.outputs["best"], test_split=data.outputs["test"],
                             prepare_info=features.outputs["Output"], selection=selection.outputs["Output"],
                             model_name=model_name, store_uri=store_uri, min_score=min_score)
    for_cluster(evaluation.set_caching_options(False))

    # 6. Register with lineage; the champion alias moves only when blessed.
    registration = register_op(
        best=selection.outputs["best"], model_name=model_name, store_uri=store_uri, data_uri=data_uri,
        ingest_summary=data.outputs["Output"], validation_summary=checked.outputs["Output"],
        prepare_info=features.outputs["Output"], selection=selection.outputs["Output"],
        evaluation=evaluation.outputs["Output"], search_space=search_space, seed=seed, code_version=code_version,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
    for_cluster(registration.set_caching_options(False))

    # 7. The run report: one HTML page.
    page = report_op(model_name=model_name, ingest_summary=data.outputs["Output"],
                     validation_summary=checked.outputs["Output"], statistics_view=checked.outputs["statistics_view"],
                     selection=selection.outputs["Output"], evaluation=evaluation.outputs["Output"],
                     registration=registration.output)
    for_cluster(page.set_caching_options(False))

    RunOutputs = NamedTuple("RunOutputs", registration=str, report_path=str)
    return RunOutputs(registration=registration.output, report_path=page.outputs["Output"])
