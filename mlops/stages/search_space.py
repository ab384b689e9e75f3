"""Reading the search space (the params file) that the training stage expands.

The file is checked as a whole here (mlops.stages.train.check_search_space), in
the CLI's pre-flight, and again by the pipeline's first task, so a cluster run
gets the same one-line message as `mlops run`. A search space that says
``size_aware: true`` (the default one does) is trimmed on large tables
(:func:`size_aware`) when the candidates are expanded, once prepare knows the size.
"""

import json
from pathlib import Path

import yaml

from mlops import config
from mlops.errors import MlopsError

DEFAULT_PARAMS_FILE = config.DEFAULT_PARAMS_FILE
# size_aware: the grid is searched as listed up to this many training rows x model inputs ...
FULL_SEARCH_CELLS = 5_000_000
# ... and each random forest tree is fitted on a bootstrap sample of at most this many rows.
FOREST_SAMPLE_ROWS = 100_000


class ParamsError(MlopsError):
    """The params file is missing, malformed or names something unknown."""


def load_search_space(path: str | Path | None = None) -> dict:
    """Read and check a params YAML/JSON file (the default one when ``path`` is None)."""
    from mlops.stages.train import check_search_space

    path = Path(path) if path else DEFAULT_PARAMS_FILE
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ParamsError(f"cannot read params file {path}: {error}") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"params file {path} is not valid YAML: {error}") from None
    try:
        check_search_space(loaded)
    except MlopsError as error:
        raise ParamsError(f"params file {path}: {error}") from None
    return loaded


def size_aware(search_space: dict, task: str, train_rows: int, model_inputs: int) -> tuple[dict, str]:
    """The search space for a table of ``train_rows`` x ``model_inputs``, and a line saying what was trimmed.

    The rule, applied only when the search space says ``size_aware: true`` (the default one does): while
    training rows x model inputs (after prepare: one-hot, hashed and calendar columns counted) is at most
    FULL_SEARCH_CELLS (5M, about 100,000 rows of 50 inputs), every listed combination is a candidate.
    Above it each family keeps one candidate, the first value listed for each hyperparameter, and a
    random forest fits each tree on a bootstrap sample of FOREST_SAMPLE_ROWS (100,000) rows once the
    training split is larger (``max_samples``, unless the file sets it). Every default family then
    trains in time linear in the rows (the forest's levels off), not in rows x grid size: the forest
    on all rows was the slowest candidate on a 337k-row flights table. The line is empty when nothing
    was trimmed.
    """
    from mlops.stages.train import check_search_space

    check_search_space(search_space)
    cells = int(train_rows) * int(model_inputs)
    families = (search_space.get("candidates") or {}).get(task)
    if not search_space.get("size_aware") or not isinstance(families, dict) or cells <= FULL_SEARCH_CELLS:
        return search_space, ""
    trimmed = {}
    for family, grid in families.items():
        grid = dict(grid or {})
        kept = {name: (values[:1] if isinstance(values, list) else values) for name, values in grid.items()}
        if family == "random_forest" and train_rows > FOREST_SAMPLE_ROWS and "max_samples" not in kept:
            kept["max_samples"] = [FOREST_SAMPLE_ROWS]
        trimmed[family] = kept
    space = {**search_space, "candidates": {**search_space["candidates"], task: trimmed}}
    note = (
        f"size-aware search space: {train_rows:,} training rows x {model_inputs} model inputs is over "
        f"{FULL_SEARCH_CELLS:,}: one candidate per family (the first value listed)"
    )
    if "random_forest" in trimmed and "max_samples" not in (families.get("random_forest") or {}):
        if train_rows > FOREST_SAMPLE_ROWS:
            note += f", random forest trees on {FOREST_SAMPLE_ROWS:,}-row samples"
    return space, note


def to_parameter(search_space: dict) -> str:
    """The canonical JSON string passed as the pipeline's search_space parameter."""
    return json.dumps(search_space, sort_keys=True, separators=(",", ":"))


def _default_parameter() -> str:
    """The default params file as the pipeline parameter's default (read once, at compile time)."""
    return to_parameter(yaml.safe_load(DEFAULT_PARAMS_FILE.read_text(encoding="utf-8")))


DEFAULT_SEARCH_SPACE_PARAMETER = _default_parameter()
