"""`mlops monitor`: live data against a model's baseline, and retraining when the policy says so."""

import json
import shutil
import sys
from pathlib import Path

import click

from mlops.cli.notifications import (
    champion_before,
    failures_notified,
    load_notifier,
    notify_option,
    notify_registration,
)
from mlops.cli.options import (
    code_version,
    keep_secret_out_of_parameters,
    one_line_errors,
    print_listing,
    resolve_store,
    store_option,
)

# Exit status of a blocked batch: neither success (0) nor an input error (1).
BLOCKED_EXIT = 3
# Exit status of --retrain when the decision is retrain but no retrain happened (no new labelled data, cool-down).
RETRAIN_HELD_EXIT = 4
# Exit status of "too little data": the batch cannot tell drift from none (not a success, not an error).
TOO_LITTLE_DATA_EXIT = 5


@click.group(invoke_without_command=True)
@click.option(
    "--data",
    "data_uri",
    metavar="URI",
    help="The live batch: a path, file://, http(s):// or s3:// URI, NAME@VERSION, or a pointer file. "
    "The label column may be absent.",
)
@click.option("--model-name", help="The model whose baseline the batch is held to.")
@click.option(
    "--against",
    default="",
    metavar="NAME@VERSION",
    help="Compare with this version's baseline instead of the current champion's.",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    help="Monitor policy YAML (thresholds, severities, cool-down; default: retrain on any drift).",
)
@click.option(
    "--retrain",
    is_flag=True,
    help="When the decision is retrain, retrain now (the training pipeline, through the same blessing gate).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision record as JSON.")
@store_option
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MLOPS_RUNS_DIR",
    help="Where run outputs and reports go (env MLOPS_RUNS_DIR; default ./runs).",
)
@notify_option
@click.pass_context
def monitor(ctx, data_uri, model_name, against, policy_file, retrain, as_json, store_uri, runs_dir, notify_file):
    """Hold a live batch to a model's baseline: decide none, retrain, too little data or blocked.

    "too little data": no feature drifts, but the batch (or the baseline) is too small to see a drift of
    the threshold's size on some feature: each feature's minimum detectable effect (at the policy's alpha
    and power) is in the JSON and the report, and the reason says how many rows would tell.

    Exit status: 0 for none or retrain, 5 for too little data, 3 for blocked (the anomalies are listed),
    1 for bad input, and, with --retrain, 4 when the decision is retrain but nothing was retrained:
    "retrain needed: no new labelled data" (the batch has no labels and the champion already learnt from
    the data set's newest version; nothing is registered) or a cool-down. The reason is printed, in the
    JSON as retrain_held, and in `mlops monitor history NAME`, which lists earlier decisions.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not data_uri or not model_name:
        raise click.UsageError("--data and --model-name are required (or use `mlops monitor history NAME`)")
    notifier = load_notifier(notify_file)
    facts = {"model": model_name}
    with failures_notified(notifier, facts, "mlops monitor"):
        record, report, retrained = _watch(
            notifier, data_uri, model_name, against, policy_file, retrain, as_json, store_uri, runs_dir
        )
    if as_json:
        click.echo(json.dumps(record, indent=2, sort_keys=True))
    else:
        click.echo(f"decision: {record['decision']}")
        for reason in record["reasons"]:
            click.echo(f"  - {reason}")
        for warning in record["warnings"]:
            click.echo(f"  ! {warning}")
        if record.get("retrain_held"):
            click.echo(f"  {record['retrain_held']}")
        elif record["decision"] == "retrain" and not retrain:
            click.echo("  (run with --retrain to retrain now)")
        click.echo(f"report:   {report}")
    sys.stdout.flush()
    if notifier:
        from mlops.reporting.notify import drift_decision

        run = Path(report).parent.name
        notifier.send(drift_decision(record, retrained_version=retrained and retrained[0].version, run=run))
        if retrained:
            notify_registration(notifier, *retrained, run=run, source="mlops monitor")
    if record["decision"] == "blocked":
        sys.exit(BLOCKED_EXIT)
    if record["decision"] == "too little data":
        sys.exit(TOO_LITTLE_DATA_EXIT)
    if retrain and record["decision"] == "retrain" and record.get("retrain_held"):
        sys.exit(RETRAIN_HELD_EXIT)


def _watch(notifier, data_uri, model_name, against, policy_file, retrain, as_json, store_uri, runs_dir):
    """Run the monitor pipeline: the decision record, its report, and (with notify settings) what a
    retrain registered: (version, promoted, the champion before), or None."""
    from mlops.data.pointer import resolve_data_argument
    from mlops.runners.local import run_monitor
    from mlops.stages import ingest
    from mlops.stages.monitor import load_baseline, load_policy
    from mlops.store.registry import ModelRegistry, validate_name

    store = resolve_store(store_uri)
    with one_line_errors():
        validate_name("model", model_name)
        load_policy(policy_file)  # checked now; the pipeline gets the file's text
        data_uri = resolve_data_argument(data_uri)
        if Path(data_uri).is_file():
            data_uri = str(Path(data_uri).resolve())
        # fails now, in one line, if there is nothing to compare with (the model is loaded by the run)
        load_baseline(store, model_name, against, check_model=False)
        if not ingest.is_version_reference(data_uri):
            ingest.clean_table(ingest.load_table(data_uri))  # the checks the ingest stage makes
    data_uri = keep_secret_out_of_parameters(data_uri)
    arguments = dict(
        data_uri=data_uri,
        model_name=model_name,
        data_name=ingest.dataset_name(data_uri),
        against=against,
        policy=Path(policy_file).read_text(encoding="utf-8") if policy_file else "",
        allow_retrain=retrain,
        store_uri=store.uri,
        code_version=code_version(),
    )
    with one_line_errors():
        before = champion_before(notifier, ModelRegistry(store), model_name)
    click.echo(f"monitor: {data_uri} against {against or model_name + '@champion'} in {store.uri}", err=as_json)
    with one_line_errors():
        result = run_monitor(
            arguments, runs_dir=runs_dir, emit=(lambda line: click.echo(line, err=True)) if as_json else None
        )
    report = result.run_dir / "monitor.html"
    shutil.copyfile(result.report_path, report)
    record = {**result.record, "report": str(report)}
    retrained = None
    if notifier and result.action == "retrain":
        from mlops.stages.monitor import history

        with one_line_errors():
            rows = [
                r
                for r in history(store, model_name)
                if (r["time"], r["data_version"]) == (record["time"], record["data_version"])
            ]
            row = rows[-1] if rows else {"retrained_version": None}
            if row["retrained_version"]:
                registry = ModelRegistry(store)
                version = registry.get(model_name, row["retrained_version"])
                retrained = (version, bool(row["promoted"]), before)
    return record, report, retrained


@monitor.command()
@click.argument("name")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def history(name, store_uri, as_json):
    """Every monitor decision for model NAME, oldest first."""
    from mlops.stages.monitor import history as monitor_history
    from mlops.store.registry import validate_name

    store = resolve_store(store_uri)
    with one_line_errors():
        validate_name("model", name)
        rows = monitor_history(store, name)

    def row(entry):
        retrained = (
            f"v{entry['retrained_version']}"
            if entry["retrained_version"]
            else "held"
            if entry.get("retrain_held")
            else "-"
        )
        return (
            f"{entry['time']:<26} v{entry['model']['version']:<6} {entry['decision']:<15} {retrained:<9} "
            f"{entry['data_version'].split('@')[0]}@{entry['data_version'].split('@')[1][:12]}  "
            f"{'; '.join(entry['reasons'] + ([entry['retrain_held']] if entry.get('retrain_held') else []))[:160]}"
        )

    print_listing(
        rows,
        as_json,
        empty=f"no monitor decisions for {name!r} in {store.uri}",
        header=f"{'TIME':<26} {'MODEL':<7} {'DECISION':<15} {'RETRAINED':<9} BATCH",
        row=row,
    )
