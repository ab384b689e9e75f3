"""`mlops run`: the training pipeline on this machine, via kfp.local."""

import shutil
from pathlib import Path

import click

from mlops import config
from mlops.cli.notifications import (
    champion_before,
    failures_notified,
    load_notifier,
    notify_option,
    notify_registration,
)
from mlops.cli.options import (
    beam_option_option,
    beam_runner_option,
    code_version,
    in_forked_child,
    keep_secret_out_of_parameters,
    one_line_errors,
    resolve_store,
    store_option,
    use_beam_options,
    verbose_callback,
)
from mlops.cli.summary import print_summary


def preflight(data_uri: str, target: str, task: str, split, store) -> tuple[str, str]:
    """Check the data before starting the pipeline, so bad input fails in a second with one line.

    Returns the cleaned target name and the task. The pipeline's own stages run
    the same checks again (a cluster run has no pre-flight); this only answers sooner.
    """
    from mlops.stages import ingest, prepare
    from mlops.stages.split import stored_train_target, train_target

    if ingest.is_version_reference(data_uri):  # its keys and target column, not the whole table
        column, train = stored_train_target(store, data_uri, target, split)
    elif ingest.streams(data_uri):  # too big to read whole here: the target column, all rows
        column, train = ingest.target_values(data_uri, target)
    else:
        column, train = train_target(ingest.clean_table(ingest.load_table(data_uri))[0], target, split)
    detected = prepare.detect_task(train, task)
    prepare.check_target(train, detected)
    return column, detected


def explain_cache_of(store, model_name: str, run_id: str) -> None:
    """Print which tasks of the run came from the cache, and why (mlops.reporting.cache_explain)."""
    from mlops.reporting import cache_explain
    from mlops.store import StoreError

    try:
        record = cache_explain.load_run(store, model_name, run_id)
    except StoreError as error:
        click.echo(f"cache: not explained ({error})")
        return
    for line in cache_explain.explain_lines(record):
        click.echo(line)


@click.command()
@click.option(
    "--data",
    "data_uri",
    required=True,
    metavar="URI",
    help="CSV or Parquet (a path, file://, http(s):// or s3:// URI), a data version NAME@VERSION "
    "or NAME@latest, or a pointer file NAME.data.yaml.",
)
@click.option("--target", required=True, help="The column to predict, as named in the data.")
@click.option("--model-name", help="Registry name (default: the data set's name, i.e. the file's stem).")
@click.option(
    "--task",
    type=click.Choice(("auto", "classification", "regression")),
    default=config.DEFAULT_TASK,
    show_default=True,
)
@click.option(
    "--params",
    "params_file",
    type=click.Path(dir_okay=False),
    help="Search space YAML (default: pipelines/params/default.yaml).",
)
@click.option(
    "--schema",
    "schema_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Validate against this TFDV schema (.pbtxt) instead of the curated/baseline one.",
)
@store_option
@click.option("--seed", type=int, default=config.DEFAULT_SEED, show_default=True)
@click.option("--validation-fraction", type=float, default=config.DEFAULT_VALIDATION_FRACTION, show_default=True)
@click.option("--test-fraction", type=float, default=config.DEFAULT_TEST_FRACTION, show_default=True)
@click.option(
    "--min-skill",
    type=float,
    default=config.DEFAULT_MIN_SKILL,
    show_default=True,
    help="Share of the gap between a trivial predictor and a perfect test score the model must close.",
)
@click.option("--min-score", type=float, default=None, help="An absolute floor on the test metric (default: none).")
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MLOPS_RUNS_DIR",
    help="Where run outputs and reports go (env MLOPS_RUNS_DIR; default ./runs).",
)
@click.option(
    "--runner",
    type=click.Choice(("subprocess", "docker")),
    default="subprocess",
    show_default=True,
    help="subprocess: each task a process of this Python; docker: each task in its image, as on a "
    "cluster (needs `make engine-up images`).",
)
@click.option(
    "--cache/--no-cache",
    default=True,
    show_default=True,
    help="Reuse task outputs whose inputs are unchanged (keyed by the data version's content).",
)
@click.option(
    "--explain-cache",
    is_flag=True,
    help="Say for each task whether it came from the cache and, if not, what changed in its key (data version, "
    "a parameter, code, image) since the last run of this pipeline and model.",
)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    callback=verbose_callback,
    help="Debug logging to stderr (credentials scrubbed), and kfp.local's task logs shown instead of written to "
    "run.log.",
)
@beam_runner_option
@beam_option_option
@notify_option
def run(
    data_uri,
    target,
    model_name,
    task,
    params_file,
    schema_file,
    store_uri,
    seed,
    validation_fraction,
    test_fraction,
    min_skill,
    min_score,
    runs_dir,
    runner,
    cache,
    explain_cache,
    verbose,
    beam_runner,
    beam_option_values,
    notify_file,
):
    """Run the training pipeline locally (kfp.local) and register the model."""
    from mlops.data.pointer import resolve_data_argument
    from mlops.runners.local import release_memory, run_pipeline, warm_processes
    from mlops.stages.search_space import load_search_space, to_parameter
    from mlops.stages.split import SplitConfig, dataset_name
    from mlops.store.registry import ModelRegistry, validate_name

    notifier = load_notifier(notify_file)
    beam = use_beam_options(beam_runner, beam_option_values)
    facts = {"model": model_name}  # what a run_failed notification can say, filled in as it is known
    with failures_notified(notifier, facts, "mlops run"):
        with one_line_errors():
            for setting in config.SETTINGS:  # a bad MLOPS_* value fails now, not in the middle of the run
                setting.get()
        store = resolve_store(store_uri)
    # The TFDV sidecar and the task server start now: they import while the pre-flight reads the data.
    with failures_notified(notifier, facts, "mlops run"), warm_processes(runner):
        # The pipeline graph, built before the pre-flight imports scikit-learn: building it calls
        # inspect.stack() dozens of times (kfp), which costs twice as much with thousands more modules loaded.
        import pipelines.training  # noqa: F401

        with one_line_errors():
            data_uri = resolve_data_argument(data_uri)
            if Path(data_uri).is_file():  # tasks may run elsewhere (a container): name the file absolutely
                data_uri = str(Path(data_uri).resolve())
            data_name = dataset_name(data_uri)
            model_name = model_name or data_name
            validate_name("model", model_name)
            facts["model"] = model_name
            before = champion_before(notifier, ModelRegistry(store), model_name)
            split = SplitConfig(validation_fraction=validation_fraction, test_fraction=test_fraction)
            # In a child process: this one waits through the whole run and stays small (no pandas,
            # Arrow or scikit-learn, nor the data the pre-flight read).
            search_space, (column, detected) = in_forked_child(
                lambda: (load_search_space(params_file), preflight(data_uri, target, task, split, store))
            )
        release_memory()
        data_uri = keep_secret_out_of_parameters(data_uri)

        click.echo(
            f"run: {model_name} ({detected} of '{column}') from {data_uri} -> {store.uri}"
            + (" (each task in its container)" if runner == "docker" else "")
        )
        arguments = dict(
            data_uri=data_uri,
            target=target,
            model_name=model_name,
            data_name=data_name,
            store_uri=store.uri,
            task=task,
            search_space=to_parameter(search_space),
            schema_uri=str(schema_file.resolve()) if schema_file else "",
            seed=seed,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            min_skill=min_skill,
            min_score="" if min_score is None else repr(min_score),
            code_version=code_version(),
            train_memory_budget_mb=config.TRAIN_MEMORY_BUDGET_MB.get(),
            **beam,
        )
        with one_line_errors():
            result = run_pipeline(arguments, runs_dir=runs_dir, verbose=verbose, runner=runner, cache=cache)
            version = ModelRegistry(store).get(model_name, result.model_version)

    report = result.run_dir / "report.html"
    shutil.copyfile(result.report_path, report)
    if explain_cache:
        explain_cache_of(store, model_name, result.run_dir.name)
    print_summary(version, result.promoted, result.promotion, str(report))
    notify_registration(notifier, version, result.promoted, before, run=result.run_dir.name)
