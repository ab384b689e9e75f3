"""The few lines a finished training run prints, the same for `mlops run` and `mlops submit --wait`."""

from __future__ import annotations

import click

from mlops.stages.train import describe_training_rows


def print_summary(version, promoted: bool, promotion: str, report: str) -> None:
    """The data, schema, model, metrics, blessing and report of a registered model version."""
    lineage = version.lineage
    metric, blessing = lineage["params"]["metric"], lineage["blessing"]
    if not blessing["blessed"]:
        verdict = f"no: {blessing['reason']}"
    elif promoted:
        verdict = f"yes, now the champion: {blessing['reason']}"
    else:
        verdict = f"yes, but not promoted: {promotion}"
    click.echo(f"data:    {lineage['data']['ref']}")
    click.echo(f"schema:  {lineage['validation']['schema_source']} {lineage['validation']['schema_origin']}".rstrip())
    click.echo(f"model:   {version.ref} ({lineage['params']['candidate']['id']})")
    trained = describe_training_rows(lineage.get("training", {}).get("rows"))
    if trained:
        click.echo(f"trained: {trained}")
    click.echo(
        f"metrics: test {metric}={lineage['metrics']['test'][metric]:.4f} "
        f"(trivial predictor {blessing['baseline_score']:.4f}), "
        f"validation {metric}={lineage['metrics']['validation'][metric]:.4f}"
    )
    click.echo(f"blessed: {verdict}")
    click.echo(f"report:  {report}")
