"""`mlops run`: the training pipeline on this machine, via kfp.local."""

import shutil
import subprocess
import sys
from pathlib import Path

import click

from components import prepare
from components.ingest import SplitConfig, dataset_name, read_and_split
from components.runtime import PROJECT_ROOT
from components.storage.registry import validate_name
from pipelines.commands.options import one_line_errors, resolve_store, store_option
from pipelines.data_pointer import PointerError, resolve_data_argument
from pipelines.search_space import ParamsError, load_search_space, to_parameter


def code_version() -> str:
    """The git commit of this code, with ``-dirty`` when the work tree has changes."""
    try:
        commit = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def preflight(data_uri: str, target: str, task: str, config: SplitConfig, store) -> str:
    """Check the input before starting the pipeline, so bad input fails in a second with one line.

    The ingest and prepare stages run the same checks again inside the
    pipeline (a cluster run has no pre-flight); this only answers sooner.
    """
    result = read_and_split(data_uri, target, config, store)
    train = result.splits["train"]
    detected = prepare.detect_task(train[result.target], task)
    prepare.check_target(train[result.target], detected)
    return detected


@click.command()
@click.option("--data", "data_uri", required=True, metavar="URI",
              help="CSV or Parquet (a path, file://, http(s):// or s3:// URI), a data version NAME@VERSION "
                   "or NAME@latest, or a pointer file NAME.data.yaml.")
@click.option("--target", required=True, help="The column to predict.")
@click.option("--model-name", help="Registry name (default: the data set's name or the file's stem).")
@click.option("--task", type=click.Choice(prepare.TASKS), default="auto", show_default=True)
@click.option("--params", "params_file", type=click.Path(dir_okay=False), help="Search space YAML (default: pipelines/params/default.yaml).")
@store_option
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--validation-fraction", type=float, default=0.15, show_default=True)
@click.option("--test-fraction", type=float, default=0.15, show_default=True)
@click.option("--min-score", type=float, default=0.0, show_default=True,
              help="Absolute threshold on the test metric for the model to be blessed.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MLOPS_RUNS_DIR",
              help="Where run outputs and reports go (env MLOPS_RUNS_DIR; default ./runs).")
@click.option("--verbose", is_flag=True, help="Show kfp.local's task logs instead of writing them to run.log.")
def run(data_uri, target, model_name, task, params_file, store_uri, seed, validation_fraction, test_fraction,
        min_score, runs_dir, verbose):
    """Run the training pipeline locally (kfp.local) and register the model."""
    from pipelines.local import RunFailed, run_pipeline

    store = resolve_store(store_uri)
    with one_line_errors(ParamsError, PointerError):
        data_uri = resolve_data_argument(data_uri)
        model_name = model_name or dataset_name(data_uri)
        validate_name("model", model_name)
        search_space = load_search_space(params_file)
        config = SplitConfig(validation_fraction=validation_fraction, test_fraction=test_fraction)
        detected = preflight(data_uri, target, task, config, store)

    click.echo(f"run: {model_name} ({detected}) from {data_uri} -> {store.uri}")
    arguments = dict(data_uri=data_uri, target=target, model_name=model_name, store_uri=store.uri, task=task,
                     search_space=to_parameter(search_space), seed=seed, validation_fraction=validation_fraction,
                     test_fraction=test_fraction, min_score=min_score, code_version=code_version())
    with one_line_errors(RunFailed):
        result = run_pipeline(arguments, runs_dir=runs_dir, verbose=verbose)

    report = result.run_dir / "report.html"
    shutil.copyfile(result.report_path, report)
    registration = result.registration
    lineage = registration["lineage"]
    metric = lineage["params"]["metric"]
    blessing = lineage["blessing"]
    click.echo(f"data:    {lineage['data']['ref']}")
    click.echo(f"model:   {registration['ref']} ({lineage['params']['candidate']['id']})")
    click.echo(f"metrics: test {metric}={lineage['metrics']['test'][metric]:.4f}, "
               f"validation {metric}={lineage['metrics']['validation'][metric]:.4f}")
    click.echo(f"blessed: {'yes, now the champion' if blessing['blessed'] else 'no'} ({blessing['reason']})")
    click.echo(f"report:  {report}")
    sys.stdout.flush()
