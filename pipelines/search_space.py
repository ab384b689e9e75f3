"""Loading the search space (params file) that the training stage expands."""

import json
from pathlib import Path

import yaml

DEFAULT_PARAMS_FILE = Path(__file__).with_name("params") / "default.yaml"


class ParamsError(ValueError):
    """The params file is missing or malformed."""


def load_search_space(path: str | Path | None = None) -> dict:
    """Read a params YAML/JSON file (the default one when ``path`` is None)."""
    path = Path(path) if path else DEFAULT_PARAMS_FILE
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {path}") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"params file {path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("candidates"), dict):
        raise ParamsError(f"params file {path} needs a 'candidates' mapping (see {DEFAULT_PARAMS_FILE.name})")
    return loaded


def to_parameter(search_space: dict) -> str:
    """The canonical JSON string passed as the pipeline's search_space parameter."""
    return json.dumps(search_space, sort_keys=True, separators=(",", ":"))
