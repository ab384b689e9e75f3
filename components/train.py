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
    """Train one candidate on train and score it on validation."""
    from components import adapter

    with adapter.stage("train") as step:
        import pandas as pd

        from mlops.stages import train as stage
        from mlops.store import model_io

        candidate = {**candidate, "params": adapter.restore_integers(candidate["params"])}
        transform = model_io.load(path=preprocessor.path)
        fitted, scores = stage.train_candidate(
            candidate=candidate,
            preprocessor=transform,
            train=pd.read_parquet(train_split.path),
            validation=pd.read_parquet(validation_split.path),
            target=preprocessor.metadata["target"],
            task=preprocessor.metadata["task"],
            seed=seed,
        )
        model_io.save(fitted, model.path)
        model.metadata.update({"candidate": candidate, "validation_metrics": scores, "format": model_io.FORMAT})
        step.progress(
            f"{candidate['id']} {candidate['params']}: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(scores.items())),
        )
