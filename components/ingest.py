"""Ingest: read a table from anywhere, clean its column names, split it deterministically.

The split is by a hash of each row's content, not by position or a random
draw, so the same row lands in the same split on every run and machine, and
appending rows never moves old ones between splits (no leakage into test).
"""

import hashlib
import io
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
from kfp.dsl import Dataset, Output

from components.content import content_hash, row_digests
from components.runtime import StageError

SPLITS = ("train", "validation", "test")
SPLIT_SCHEME = "sha256-row-content-v1"
HTTP_TIMEOUT_SECONDS = 60
MAX_DOWNLOAD_BYTES = 2 * 1024**3
MIN_ROWS_PER_SPLIT = 5
# Share of an object column's values that must parse as numbers before the
# rest are called out as stray strings rather than a genuine text column.
NUMERIC_MAJORITY = 0.9


@dataclass(frozen=True)
class SplitConfig:
    """Fractions for validation and test (train gets the rest) and the hash salt."""

    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    salt: str = ""

    def __post_init__(self):
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 < value < 1.0):
                raise StageError(f"{name} must be a number between 0 and 1 (exclusive), got {value!r}")
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise StageError(
                "validation_fraction + test_fraction must leave at least 10% for training, "
                f"got {self.validation_fraction} + {self.test_fraction}"
            )

    def to_json(self) -> dict:
        return {
            "scheme": SPLIT_SCHEME,
            "validation_fraction": self.validation_fraction,
            "test_fraction": self.test_fraction,
            "salt": self.salt,
        }


# Reading ----------------------------------------------------------------

def fetch_bytes(uri: str) -> tuple[bytes, str]:
    """Return the raw bytes behind ``uri`` and the file name used to pick a format.

    Accepts a local path, file://, http(s):// and s3:// (credentials from the
    usual AWS_* variables; see components.storage.s3).
    """
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] == ":\\"):
        path = Path(unquote(parsed.path) if scheme == "file" else uri)
        if not path.is_file():
            raise StageError(f"data file not found: {path}")
        return path.read_bytes(), path.name
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri, timeout=HTTP_TIMEOUT_SECONDS) as response:
                data = response.read(MAX_DOWNLOAD_BYTES + 1)
        except urllib.error.HTTPError as error:
            raise StageError(f"could not download {uri}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            raise StageError(f"could not download {uri}: {getattr(error, 'reason', error)}") from None
        if len(data) > MAX_DOWNLOAD_BYTES:
            raise StageError(f"{uri} is larger than {MAX_DOWNLOAD_BYTES} bytes")
        return data, Path(parsed.path).name
    if scheme == "s3":
        from components.storage.s3 import read_s3_uri

        return read_s3_uri(uri), Path(parsed.path).name
    raise StageError(f"unsupported data URI {uri!r}: use a path, file://, http(s):// or s3://")


def parse_table(data: bytes, filename: str) -> pd.DataFrame:
    """Parse CSV or Parquet bytes into a DataFrame with a clear error for each bad case."""
    label = filename or "data"
    if filename.lower().endswith((".parquet", ".pq")):
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as error:  # pyarrow raises several unrelated types
            raise StageError(f"{label} is not a readable Parquet file: {error}") from None
    else:
        if not data.strip():
            raise StageError(f"{label} is empty")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise StageError(
                f"{label} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
                "re-save it as UTF-8"
            ) from None
        try:
            frame = pd.read_csv(io.StringIO(text), skipinitialspace=True)
        except pd.errors.EmptyDataError:
            raise StageError(f"{label} is empty") from None
        except pd.errors.ParserError as error:
            raise StageError(f"{label} is not a readable CSV file: {' '.join(str(error).split())}") from None
    if frame.shape[1] == 0:
        raise StageError(f"{label} has no columns")
    if frame.shape[0] == 0:
        raise StageError(f"{label} has a header but no data rows")
    return frame


# Cleaning ---------------------------------------------------------------

def normalize_column_names(columns) -> dict[str, str]:
    """Map each original column name to a safe, unique snake_case name.

    Real data has names like ``od280/od315_of_diluted_wines`` or ``Age (years)``;
    TFDV feature names, Parquet columns and KFP metadata all want plain ones.
    """
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for position, original in enumerate(columns):
        name = re.sub(r"[^0-9a-zA-Z]+", "_", str(original)).strip("_").lower()
        if not name:
            name = f"column_{position}"
        if name[0].isdigit():
            name = f"c_{name}"
        unique, counter = name, 2
        while unique in used:
            unique, counter = f"{name}_{counter}", counter + 1
        used.add(unique)
        mapping[str(original)] = unique
    return mapping


def find_stray_strings(frame: pd.DataFrame) -> None:
    """Stop when a mostly numeric column holds a few non-numeric values.

    That is nearly always a data error (``"n/a"``, ``"12,5"``, a shifted row),
    and training would silently treat the whole column as categories.
    """
    for column in frame.columns:
        series = frame[column]
        if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
            continue
        values = series.dropna()
        if values.empty:
            continue
        numeric = pd.to_numeric(values, errors="coerce")
        parsed = numeric.notna()
        if parsed.mean() >= NUMERIC_MAJORITY and not parsed.all():
            bad = values[~parsed]
            raise StageError(
                f"column '{column}' is numeric but holds {len(bad)} non-numeric value(s), "
                f"e.g. {bad.iloc[0]!r} at row {bad.index[0] + 1}"
            )


# Splitting ------------------------------------------------------------

def assign_splits(digests: list[bytes], config: SplitConfig) -> np.ndarray:
    """Map each row digest (salted) to a split name by where it falls in [0, 1)."""
    salt = config.salt.encode("utf-8")
    positions = np.array(
        [int.from_bytes(hashlib.sha256(salt + digest).digest()[:8], "big") / 2**64 for digest in digests]
    )
    splits = np.full(len(digests), "train", dtype=object)
    splits[positions < config.validation_fraction + config.test_fraction] = "validation"
    splits[positions < config.test_fraction] = "test"
    return splits


# The stage --------------------------------------------------------------

@dataclass
class IngestResult:
    splits: dict[str, pd.DataFrame]
    target: str
    columns: dict[str, str]
    content_hash: str
    dropped_missing_target: int
    split_config: SplitConfig

    def summary(self) -> dict:
        return {
            "rows": {name: int(len(frame)) for name, frame in self.splits.items()},
            "total_rows": int(sum(len(frame) for frame in self.splits.values())),
            "target": self.target,
            "columns": self.columns,
            "content_hash": self.content_hash,
            "dropped_missing_target": self.dropped_missing_target,
            "split": self.split_config.to_json(),
        }


def normalize_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rename columns to safe names and reject numeric columns with stray strings."""
    mapping = normalize_column_names(frame.columns)
    frame = frame.rename(columns=lambda column: mapping[str(column)])
    find_stray_strings(frame)
    return frame, mapping


def ingest_frame(frame: pd.DataFrame, target: str, config: SplitConfig,
                 min_rows_per_split: int = MIN_ROWS_PER_SPLIT) -> IngestResult:
    """Clean ``frame`` and split it; the pure core of the ingest stage."""
    mapping = normalize_column_names(frame.columns)
    target_name = mapping.get(target) or normalize_column_names([target])[target]
    if target_name not in mapping.values():
        raise StageError(
            f"target column '{target}' not found; columns are: {', '.join(map(str, mapping))}"
        )
    if frame.shape[1] < 2:
        raise StageError("the data has only the target column; at least one feature is needed")
    frame, mapping = normalize_frame(frame)
    digests = row_digests(frame)
    identity = content_hash(frame, digests)  # of the data as given, before any row is dropped
    has_target = frame[target_name].notna().to_numpy()
    frame = frame.loc[has_target].reset_index(drop=True)
    if frame.empty:
        raise StageError(f"target column '{target}' is empty in every row")
    digests = [digest for digest, keep in zip(digests, has_target) if keep]
    # Rows in content order, not file order: training (e.g. a random forest's
    # bootstrap) then sees the same sequence whether the data came from a CSV,
    # a Parquet file or a stored data version, so models reproduce bit for bit.
    order = sorted(range(len(digests)), key=digests.__getitem__)
    frame = frame.iloc[order].reset_index(drop=True)
    digests = [digests[index] for index in order]
    split_of_row = assign_splits(digests, config)
    splits = {name: frame.loc[split_of_row == name].reset_index(drop=True) for name in SPLITS}
    counts = {name: len(part) for name, part in splits.items()}
    if min(counts.values()) < min_rows_per_split:
        raise StageError(
            f"too few rows for the split: {len(frame)} rows gave "
            + ", ".join(f"{name}={count}" for name, count in counts.items())
            + f"; each split needs at least {min_rows_per_split} (add rows or change the split fractions)"
        )
    return IngestResult(
        splits=splits,
        target=target_name,
        columns=mapping,
        content_hash=identity,
        dropped_missing_target=int((~has_target).sum()),
        split_config=config,
    )


def dataset_name(data_uri: str) -> str:
    """The data set's name: a reference's name, else the file's stem (``wine.csv`` → ``wine``)."""
    from components.storage.datasets import REF_PATTERN

    match = REF_PATTERN.match(data_uri)
    if match:
        return match["name"]
    stem = Path(urlparse(data_uri).path or data_uri).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") or "data"


def load_table(data_uri: str, store=None) -> pd.DataFrame:
    """The table behind ``data_uri``: a file/URL, or a data version ``NAME@VERSION`` in ``store``."""
    from components.storage import StoreError
    from components.storage.datasets import DataVersions, is_data_ref

    if is_data_ref(data_uri) and not Path(data_uri).exists():
        if store is None:
            raise StageError(f"{data_uri} is a data version reference, but no store was given")
        try:
            versions = DataVersions(store)
            return versions.read_frame(versions.resolve(data_uri))
        except StoreError as error:
            raise StageError(str(error)) from None
    data, filename = fetch_bytes(data_uri)
    return parse_table(data, filename)


def read_and_split(data_uri: str, target: str, config: SplitConfig, store=None) -> IngestResult:
    """Read ``data_uri`` and split it (what the component and the CLI pre-flight call)."""
    return ingest_frame(load_table(data_uri, store), target, config)


def ingest_to_files(data_uri: str, target: str, config: SplitConfig, paths: dict[str, str], store=None) -> dict:
    """Run ingest, write each split to Parquet at ``paths[split]`` and, given a store,
    publish the data as a content-addressed version; return the summary."""
    from components.storage.datasets import DataVersions

    frame = load_table(data_uri, store)
    result = ingest_frame(frame, target, config)
    for name, part in result.splits.items():
        part.to_parquet(paths[name], index=False)
    summary = result.summary()
    if store is not None:
        normalized, _ = normalize_frame(frame)
        version, new = DataVersions(store).publish(dataset_name(data_uri), normalized, source=data_uri)
        summary["data_version"] = {"name": version.name, "id": version.id, "ref": version.ref, "new": new}
    return summary


def ingest(
    data_uri: str,
    target: str,
    validation_fraction: float,
    test_fraction: float,
    split_salt: str,
    store_uri: str,
    train: Output[Dataset],
    validation: Output[Dataset],
    test: Output[Dataset],
) -> str:
    """KFP component: ingest and split; returns the ingest summary as JSON."""
    import json

    from components import runtime
    from components import ingest as stage
    from components.storage import open_store

    config = runtime.run_stage("ingest", stage.SplitConfig, validation_fraction=validation_fraction,
                               test_fraction=test_fraction, salt=split_salt)
    paths = {"train": train.path, "validation": validation.path, "test": test.path}
    store = runtime.run_stage("ingest", open_store, uri=store_uri)
    summary = runtime.run_stage("ingest", stage.ingest_to_files, data_uri=data_uri, target=target,
                                config=config, paths=paths, store=store)
    for split, artifact in (("train", train), ("validation", validation), ("test", test)):
        artifact.metadata.update({"rows": summary["rows"][split], "content_hash": summary["content_hash"],
                                  "format": "parquet"})
    rows = summary["rows"]
    runtime.report_progress("ingest", f"{summary['total_rows']} rows -> train {rows['train']}, "
                            f"validation {rows['validation']}, test {rows['test']}; "
                            f"data version {summary['data_version']['ref']}"
                            f"{' (new)' if summary['data_version']['new'] else ''}")
    return json.dumps(summary)
