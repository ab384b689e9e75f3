"""Reading the search space (the params file) that the training stage expands.

The file is checked as a whole here (mlops.stages.train.check_search_space), in
the CLI's pre-flight, and again by the pipeline's first task, so a cluster run
gets the same one-line message as `mlops run`.
"""

import json
from pathlib import Path

import yaml

from mlops import config
from mlops.errors import MlopsError

DEFAULT_PARAMS_FILE = config.DEFAULT_PARAMS_FILE


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


def to_parameter(search_space: dict) -> str:
    """The canonical JSON string passed as the pipeline's search_space parameter."""
    return json.dumps(search_space, sort_keys=True, separators=(",", ":"))


def _default_parameter() -> str:
    """The default params file as the pipeline parameter's default (read once, at compile time)."""
    return to_parameter(yaml.safe_load(DEFAULT_PARAMS_FILE.read_text(encoding="utf-8")))


DEFAULT_SEARCH_SPACE_PARAMETER = _default_parameter()
