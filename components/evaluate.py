"""The ``evaluate`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from typing import NamedTuple

from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.artifact_types import Blessing


def evaluate(
    best: Input[Model],
    train_split: Input[Dataset],
    validation_split: Input[Dataset],
    test_split: Input[Dataset],
    target: str,
    task: str,
    metric: str,
    model_name: str,
    min_skill: float,
    min_score: str,
    seed: int,
    store_uri: str,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    blessing: Output[Blessing],
) -> NamedTuple("EvaluateOutputs", blessed=bool, champion_version=int):
    """Test-set metrics against a trivial predictor and the champion: the blessing decision."""
    from components import adapter

    with adapter.stage("evaluate") as step:
        import json
        from collections import namedtuple

        from mlops.stages import evaluate as stage
        from mlops.store import model_io, open_store

        model = model_io.load(path=best.path)
        floor = stage.optional_float(name="min_score", text=min_score)
        store = open_store(uri=store_uri, role="pipeline")
        result = stage.evaluate_model(
            model=model,
            train=train_split.path,  # its target column alone
            test=test_split.path,  # read in batches
            target=target,
            task=task,
            metric=metric,
            min_skill=min_skill,
            min_score=floor,
            store=store,
            model_name=model_name,
            validation=validation_split.path,  # the rows permutation importance samples
            seed=seed,
        )
        decision = result.blessing
        for name, value in sorted(decision.test_metrics.items()):
            metrics.log_metric(f"test_{name}", value)
        metrics.log_metric(f"trivial_{metric}", decision.baseline_score)
        metrics.log_metric("skill", decision.skill)
        metrics.log_metric("blessed", 1.0 if decision.blessed else 0.0)
        if result.confusion_matrix:
            classification_metrics.log_confusion_matrix(
                result.confusion_matrix["labels"], result.confusion_matrix["matrix"]
            )
        if result.roc:
            classification_metrics.log_roc_curve(result.roc["fpr"], result.roc["tpr"], result.roc["thresholds"])
        with open(blessing.path, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    **decision.to_json(),
                    "confusion_matrix": result.confusion_matrix,
                    "roc": result.roc,
                    "diagnostics": result.diagnostics,
                },
                handle,
                indent=2,
                sort_keys=True,
            )
        blessing.metadata.update(
            {
                "blessed": decision.blessed,
                "reason": decision.reason,
                "metric": metric,
                "score": decision.score,
                "champion_version": decision.champion_version or 0,
            }
        )
        step.progress(
            f"test {metric}={decision.score:.4f} on {decision.test_rows} rows; "
            f"{'BLESSED' if decision.blessed else 'not blessed'}: {decision.reason}",
        )
        return namedtuple("EvaluateOutputs", "blessed champion_version")(
            decision.blessed, decision.champion_version or 0
        )
