"""The ``select_best`` component. Its source is embedded in the compiled spec: imports stay inside its body."""

from typing import List, NamedTuple

from kfp.dsl import Input, Model, Output


def select_best(
    candidates: Input[List[Model]],
    metric: str,
    best: Output[Model],
) -> NamedTuple("SelectOutputs", candidate=str, validation_score=float):
    """Fan-in of every candidate: the best on validation by the ranking metric."""
    from components import adapter

    with adapter.stage("train") as step:
        import shutil
        from collections import namedtuple

        from mlops.stages import train as stage

        results = [
            {
                "candidate": {
                    **c.metadata["candidate"],
                    "params": adapter.restore_integers(c.metadata["candidate"]["params"]),
                },
                "validation_metrics": c.metadata["validation_metrics"],
                "training_rows": c.metadata.get("training_rows") or {},
                "path": c.path,
            }
            for c in candidates
        ]
        winner = stage.pick_best(results=results, metric=metric)
        shutil.copyfile(winner["path"], best.path)
        score = winner["validation_metrics"][metric]
        best.metadata.update(
            {
                "candidate": winner["candidate"],
                "metric": metric,
                "validation_metrics": winner["validation_metrics"],
                "training_rows": winner["training_rows"],
                "leaderboard": [
                    {"candidate": r["candidate"], "validation_metrics": r["validation_metrics"]} for r in results
                ],
            }
        )
        step.progress(f"best of {len(results)}: {winner['candidate']['id']} ({metric}={score:.4f} on validation)")
        return namedtuple("SelectOutputs", "candidate validation_score")(winner["candidate"]["id"], score)
