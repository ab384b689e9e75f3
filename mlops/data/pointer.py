"""Pointer files: a few lines in git that pin the exact data a pipeline uses (like a .dvc file).

    # data/wine.data.yaml, written by `mlops data push wine.csv --name wine --pointer data/wine.data.yaml`
    name: wine
    version: 6acdb773457c181f4418ee965a432bfb20e0705429fa4069a13531ea5cf80246
    rows: 178
    store: s3://mlops/store

`mlops run --data data/wine.data.yaml` (and the cluster submitter) turn it into
the reference ``wine@<version>``; the data itself stays in the store.
"""

from pathlib import Path

import yaml

from mlops.errors import MlopsError
from mlops.store.datasets import REF_PATTERN, DataVersion

POINTER_SUFFIX = ".data.yaml"


class PointerError(MlopsError):
    """A pointer file is missing fields or malformed."""


def write_pointer(path: str | Path, version: DataVersion, store_uri: str) -> Path:
    path = Path(path)
    if not path.name.endswith(POINTER_SUFFIX):
        raise PointerError(f"pointer file names end in {POINTER_SUFFIX}, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"name": version.name, "version": version.id, "rows": version.rows, "store": store_uri}
    path.write_text(
        f"# Pins data set {version.name!r}; written by `mlops data push`. Commit this file.\n"
        + yaml.safe_dump(body, sort_keys=False),
        encoding="utf-8",
    )
    return path


def read_pointer(path: str | Path) -> dict:
    """The pointer's fields, with ``ref`` = ``NAME@VERSION``."""
    path = Path(path)
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PointerError(f"cannot read pointer file {path}: {' '.join(str(error).split())}") from None
    if not isinstance(body, dict) or not {"name", "version"} <= set(body):
        raise PointerError(f"pointer file {path} needs 'name' and 'version'")
    if not isinstance(body["version"], str):
        # YAML reads an all-digit (or "12e3...") hash as a number: insist on a string.
        raise PointerError(f"pointer file {path}: 'version' must be a quoted string, got {body['version']!r}")
    ref = f"{body['name']}@{body['version']}"
    if not REF_PATTERN.match(ref):
        raise PointerError(f"pointer file {path} names an invalid version {ref!r}")
    return {**body, "ref": ref}


def resolve_data_argument(text: str) -> str:
    """``--data`` as given, or the reference inside a pointer file."""
    if text.endswith(POINTER_SUFFIX):
        return read_pointer(text)["ref"]
    return text
