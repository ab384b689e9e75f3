"""The training pipeline, top to bottom in the order a run goes.

ingest (publish a data version) → split → validate (TFDV; anomalies stop here)
→ prepare features → train candidates in parallel → pick the best → evaluate on
test against a trivial predictor and the champion → register (the champion
moves only when blessed, and only over the champion evaluated against) → report.

Every value a later stage needs travels as a typed output of an earlier one
(components/<stage>.py): the cleaned target name, the task, the ranking metric,
the champion compared against, the blessing. Every task gets its cluster
settings through ``for_cluster``; kfp.local ignores them.

Tasks whose result depends on something outside their inputs (the data behind
a URI, the registry's champion, the registry itself, the schema files) never use
KFP's cache; the rest are keyed by content: everything after ingest sees the data
version id, not the URI, and prepare sees the schema's digest and kind tags, not
validate's artifact.
"""

from typing import NamedTuple

from kfp import dsl

from components.factory import component
from mlops import config
from mlops.stages.search_space import DEFAULT_SEARCH_SPACE_PARAMETER
from pipelines.task_settings import apply_task_settings as for_cluster

ingest, split, validate = component("ingest"), component("split"), component("validate")
prepare, expand_candidates, train = component("prepare"), component("expand_candidates"), component("train")
select_best, evaluate = component("select_best"), component("evaluate")
register, report = component("register"), component("report")


@dsl.pipeline(
    name=config.PIPELINE_NAME,
    description="Ingest, validate (TFDV), prepare, train candidates in parallel, evaluate against a "
    "trivial predictor and the champion, register.",
)
def training_pipeline(
    data_uri: str,
    target: str,
    model_name: str,
    data_name: str = "",
    store_uri: str = "",
    task: str = config.DEFAULT_TASK,
    search_space: str = DEFAULT_SEARCH_SPACE_PARAMETER,
    schema_uri: str = "",
    seed: int = config.DEFAULT_SEED,
    validation_fraction: float = config.DEFAULT_VALIDATION_FRACTION,
    test_fraction: float = config.DEFAULT_TEST_FRACTION,
    split_salt: str = "",
    min_skill: float = config.DEFAULT_MIN_SKILL,
    min_score: str = "",
    code_version: str = "unknown",
    train_memory_budget_mb: int = config.DEFAULT_TRAIN_MEMORY_BUDGET_MB,
    beam_runner: str = "",
    beam_options: str = "",
) -> NamedTuple("RunOutputs", model_version=int, promoted=bool, promotion=str, report=dsl.HTML):
    # 1. Ingest: check the run's parameters, read the data, publish it as a content-addressed data version.
    data = for_cluster(
        ingest(
            data_uri=data_uri,
            data_name=data_name,
            model_name=model_name,
            search_space=search_space,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            min_score=min_score,
            store_uri=store_uri,
        ).set_caching_options(False),
        reads_data=True,
    )

    # 2. Split the data version by row-content hash (cacheable: its input is the content id).
    splits = for_cluster(
        split(
            data_version=data.outputs["data_version"],
            target=target,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            split_salt=split_salt,
            store_uri=store_uri,
        )
    )
    train_split, validation_split, test_split = (splits.outputs[name] for name in ("train", "validation", "test"))

    # 3. Validate with TFDV against the schema that applies: anomalies stop the run.
    checked = for_cluster(
        validate(
            train=train_split,
            validation=validation_split,
            test=test_split,
            model_name=model_name,
            schema_uri=schema_uri,
            store_uri=store_uri,
            # Where TFDV's Beam pipeline runs (docs/beam.md): blank, in the task past a size threshold.
            beam_runner=beam_runner,
            beam_options=beam_options,
        ).set_caching_options(False),
        memory_request="1Gi",
        memory_limit="4Gi",
    )

    # 4. Prepare features: the task and ranking metric, the transform fitted on train only (feature kinds
    #    the validated schema's tags or the params file set win over detection). The schema arrives as
    #    values (digest, kind tags), not as validate's artifact, which is new on every run: so prepare and
    #    training come from the cache when the schema is the same, and run again when it changed.
    features = for_cluster(
        prepare(
            train_split=train_split,
            schema_sha256=checked.outputs["schema_sha256"],
            schema_kinds=checked.outputs["schema_kinds"],
            target=splits.outputs["target"],
            task=task,
            search_space=search_space,
            seed=seed,
            memory_budget_mb=train_memory_budget_mb,
        )
    )

    # 5. Train every candidate of the search space (trimmed on a large table when size-aware) in parallel,
    #    each on the rows prepare fitted the transform on (all within the memory budget, else a seed-keyed
    #    sample), then pick the best.
    candidates = for_cluster(
        expand_candidates(
            search_space=search_space,
            task=features.outputs["task"],
            seed=seed,
            train_rows=features.outputs["train_rows"],
            model_inputs=features.outputs["model_inputs"],
        )
    )
    with dsl.ParallelFor(candidates.output, name="candidates", parallelism=config.MAX_PARALLEL_CANDIDATES) as item:
        fitted = for_cluster(
            train(
                candidate=item,
                train_split=train_split,
                validation_split=validation_split,
                preprocessor=features.outputs["preprocessor"],
                seed=seed,
            )
        )
    best = for_cluster(
        select_best(candidates=dsl.Collected(fitted.outputs["model"]), metric=features.outputs["metric"])
    )

    # 6. Evaluate on the untouched test split against a trivial predictor, the floor and the champion.
    evaluation = for_cluster(
        evaluate(
            best=best.outputs["best"],
            train_split=train_split,
            validation_split=validation_split,
            test_split=test_split,
            target=splits.outputs["target"],
            task=features.outputs["task"],
            metric=features.outputs["metric"],
            model_name=model_name,
            min_skill=min_skill,
            min_score=min_score,
            seed=seed,
            store_uri=store_uri,
        ).set_caching_options(False)
    )

    # 7. Register with lineage and baseline; promote only over the champion that was compared against.
    registration = for_cluster(
        register(
            best=best.outputs["best"],
            blessing=evaluation.outputs["blessing"],
            train_split=train_split,
            test_split=test_split,
            statistics=checked.outputs["statistics"],
            schema=checked.outputs["schema"],
            blessed=evaluation.outputs["blessed"],
            champion_version=evaluation.outputs["champion_version"],
            model_name=model_name,
            task=features.outputs["task"],
            data_version=data.outputs["data_version"],
            data_source=data.outputs["source"],
            columns=data.outputs["columns"],
            search_space=search_space,
            seed=seed,
            code_version=code_version,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            store_uri=store_uri,
        ).set_caching_options(False),
        role="registry",
    )

    # 8. The run report: one HTML page, and a Markdown summary for the KFP UI.
    page = for_cluster(
        report(
            model_name=model_name,
            model_version=registration.outputs["model_version"],
            train_split=train_split,
            validation_split=validation_split,
            test_split=test_split,
            statistics=checked.outputs["statistics"],
            schema=checked.outputs["schema"],
            best=best.outputs["best"],
            blessing=evaluation.outputs["blessing"],
            store_uri=store_uri,
        ).set_caching_options(False)
    )

    RunOutputs = NamedTuple("RunOutputs", model_version=int, promoted=bool, promotion=str, report=dsl.HTML)
    return RunOutputs(
        model_version=registration.outputs["model_version"],
        promoted=registration.outputs["promoted"],
        promotion=registration.outputs["promotion"],
        report=page.outputs["run_report"],
    )
