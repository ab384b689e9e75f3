"""What `mlops run` and `mlops monitor` tell the webhooks of their notify settings (mlops/reporting/notify.py)."""

from __future__ import annotations

import contextlib

import click

from mlops import config

notify_option = click.option(
    "--notify",
    "notify_file",
    type=click.Path(dir_okay=False),
    envvar=config.NOTIFY_FILE.name,
    metavar="FILE",
    help="Notify settings YAML: a `notify:` section of webhooks told when a run fails, a model is or is not "
    "blessed, the champion moves, or the monitor decides (env MLOPS_NOTIFY_FILE; default: none).",
)


def load_notifier(notify_file):
    """The notifier of ``notify_file`` (checked now: bad settings are a one-line error before any work)."""
    from mlops.cli.options import one_line_errors
    from mlops.reporting.notify import Notifier, load_settings

    with one_line_errors():
        return Notifier(load_settings(notify_file), warn=lambda line: click.echo(line, err=True))


@contextlib.contextmanager
def failures_notified(notifier, facts: dict, source: str):
    """A failure of the command (its one-line error) goes to the webhooks as ``run_failed``, then on.

    ``facts``: what is known so far (``model``, ``run``), filled in as the command learns it.
    """
    from mlops.reporting import notify

    try:
        yield
    except click.ClickException as error:
        if notifier:
            notifier.send(
                notify.run_failed(facts.get("model"), error.format_message(), run=facts.get("run", ""), source=source)
            )
        raise


def champion_before(notifier, registry, model_name: str) -> int | None:
    """The champion's version before a run (only looked up when someone is told of its moves)."""
    return registry.aliases(model_name).get(config.CHAMPION_ALIAS) if notifier else None


def notify_registration(
    notifier, version, promoted: bool, before: int | None, *, run: str = "", source: str = "mlops run"
) -> None:
    """A registered version's blessing, and the champion's move when the run made one."""
    from mlops.reporting import notify

    if not notifier:
        return
    lineage = version.lineage
    metric, blessing = lineage["params"]["metric"], lineage["blessing"]
    score = lineage["metrics"]["test"].get(metric)
    notifier.send(
        notify.blessing(
            version.name,
            version.version,
            bool(blessing["blessed"]),
            blessing["reason"],
            metric=metric,
            score=score,
            run=run,
            source=source,
        )
    )
    if promoted and before != version.version:
        notifier.send(
            notify.champion_moved(version.name, before, version.version, blessing["reason"], run=run, source=source)
        )
