"""The ``train`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from kfp.dsl import Dataset, Input, Model, Output


def train(
    candidate: dict,
    train_split: Input[Dataset],
    validation_split: Input[Dataset],
    preprocessor: Input[Model],
    seed: int,
    model: Output[Model],
):
    """Train one candidate on the rows of train that prepare chose (all of them within the memory budget,
    else a seed-keyed sample; the preprocessor's ``training_rows``) and score it on validation."""
    from components import adapter

    with adapter.stage("train") as step:
        from mlops.stages import train as stage
        from mlops.store import model_io

        candidate = {**candidate, "params": adapter.restore_integers(candidate["params"])}
        transform = model_io.load(path=preprocessor.path)
        training_rows = stage.TrainingRows.from_json(dict(preprocessor.metadata["training_rows"]))
        fitted, scores = stage.train_candidate_on_split(
            candidate=candidate,
            preprocessor=transform,
            train_path=train_split.path,
            rows=training_rows,
            validation=validation_split.path,  # predicted batch by batch
            target=preprocessor.metadata["target"],
            task=preprocessor.metadata["task"],
            seed=seed,
        )
        model_io.save(fitted, model.path)
        model.metadata.update(
            {
                "candidate": candidate,
                "validation_metrics": scores,
                "format": model_io.FORMAT,
                "training_rows": training_rows.to_json(),
            }
        )
        if training_rows.sampled:
            step.progress(f"{candidate['id']} trained on {training_rows.describe()}")
        step.progress(
            f"{candidate['id']} {candidate['params']}: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(scores.items())),
        )
