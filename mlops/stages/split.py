"""The split stage: a data version's rows into train, validation and test by their content.

Each row's split comes from a hash of its content (its 64-bit row key, mlops.data.content),
not from its position or a random draw: the same row lands in the same split on every run
and machine, and appending rows never moves old ones between splits (no leakage into test).
:func:`split_version` is the stage (a stored version in, three Parquet files out, streamed);
:func:`split_table` the same split of a cleaned table in memory.

The CLI process of ``mlops run`` waits through the whole run and imports this module for
:class:`SplitConfig` and :func:`dataset_name`: NumPy and Arrow are imported inside the
functions that split, so that process stays small while the tasks work.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mlops import config
from mlops.errors import StageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SPLITS = ("train", "validation", "test")
SPLIT_SCHEME = "row-key-v3"  # the rows' 64-bit content keys (mlops.data.content, mlops-content-v3)
# Looks like a data version reference but may be malformed (no path separators).
_REF_LIKE = re.compile(r"^[^/\\:]+@[^/\\]*$")


@dataclass(frozen=True)
class SplitConfig:
    """Fractions for validation and test (train gets the rest) and the hash salt."""

    validation_fraction: float = config.DEFAULT_VALIDATION_FRACTION
    test_fraction: float = config.DEFAULT_TEST_FRACTION
    salt: str = ""

    def __post_init__(self):
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0.0 < value < 1.0):
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


def dataset_name(data_uri: str) -> str:
    """The data set's name: a reference's name, else the file's stem (``wine.csv`` → ``wine``)."""
    from mlops.store.datasets import REF_PATTERN

    match = REF_PATTERN.match(data_uri)
    if match:
        return match["name"]
    stem = Path(urlparse(data_uri).path or data_uri).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") or "data"


def is_version_reference(data_uri: str) -> bool:
    """``NAME@VERSION`` (well-formed or not), as opposed to a path or URL."""
    return bool(_REF_LIKE.match(data_uri)) and not Path(data_uri).exists()


# Splitting ------------------------------------------------------------


def _mix(keys: np.ndarray, salt: str) -> np.ndarray:
    """Salted keys: splitmix64 of (key XOR a hash of the salt); the keys themselves without a salt."""
    import numpy as np

    if not salt:
        return keys
    with np.errstate(over="ignore"):
        z = keys ^ np.uint64(int.from_bytes(hashlib.sha256(salt.encode("utf-8")).digest()[:8], "big"))
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def split_codes(keys: np.ndarray, split: SplitConfig) -> np.ndarray:
    """Each row's split as a code, an index into SPLITS, from where its key (salted) falls in [0, 1)."""
    import numpy as np

    positions = _mix(np.asarray(keys, dtype=np.uint64), split.salt).astype(np.float64) / 2.0**64
    codes = np.zeros(len(positions), dtype=np.int8)
    codes[positions < split.validation_fraction + split.test_fraction] = 1
    codes[positions < split.test_fraction] = 2
    return codes


def assign_splits(keys: np.ndarray, split: SplitConfig) -> np.ndarray:
    """Each row's split by name (mlops.data.content row keys; salted): :func:`split_codes` spelled out."""
    import numpy as np

    return np.array(SPLITS, dtype=object)[split_codes(keys, split)]


@dataclass
class SplitResult:
    """What :func:`split_table` made: the splits (Arrow tables) and the facts later stages need."""

    splits: dict  # split name -> pyarrow.Table, rows in canonical order
    target: str
    dropped_missing_target: int
    split: SplitConfig

    @property
    def rows(self) -> dict[str, int]:
        return {name: int(len(part)) for name, part in self.splits.items()}

    def frames(self) -> dict[str, pd.DataFrame]:
        """The splits as pandas frames: what the later stages read from the Parquet files."""
        return {name: part.to_pandas() for name, part in self.splits.items()}


def _checked_splits(
    keys: np.ndarray, has_target: np.ndarray, target: str, split: SplitConfig, min_rows_per_split: int
) -> np.ndarray:
    """The split code (an index into SPLITS) of every row that has a target (the others are dropped),
    or a StageError."""
    import numpy as np

    if not has_target.any():
        raise StageError(f"target column '{target}' is empty in every row")
    code_of_row = split_codes(keys[has_target], split)
    counts = dict(zip(SPLITS, np.bincount(code_of_row, minlength=len(SPLITS)).tolist()))
    if min(counts.values()) < min_rows_per_split:
        raise StageError(
            f"too few rows for the split: {int(has_target.sum())} rows gave "
            + ", ".join(f"{name}={count}" for name, count in counts.items())
            + f"; each split needs at least {min_rows_per_split} (add rows or change the split fractions)"
        )
    return code_of_row


# The stage ------------------------------------------------------------


@dataclass(frozen=True)
class SplitFiles:
    """What :func:`split_version` wrote: each split's row count, and the facts later stages need (the rows
    themselves are in the files)."""

    rows: dict[str, int]
    target: str
    dropped_missing_target: int
    split: SplitConfig


def split_version(store, data_version: str, target: str, split: SplitConfig, paths: dict[str, str]) -> SplitFiles:
    """Split the data version ``NAME@ID`` and write each split as Parquet to ``paths[split]``, with
    the stored schema (pandas reads them back with the same types).

    Streamed: the stored rows are in canonical order beside their keys, so the split checks need only
    the keys and the target column, and then each record batch's rows go to their splits' files in
    order (the rows and order :func:`split_table` gives, never the whole table in memory). A version
    stored before split keys were (keys None) is keyed and ordered again in memory, as a new table is.
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import pyarrow.parquet as pq

    from mlops.store import StoreError
    from mlops.store.datasets import DataVersions

    versions = DataVersions(store)
    version = versions.resolve(data_version)
    keys = versions.read_keys(version)
    if keys is None:
        return _split_in_memory(versions.read_table(version), target, split, paths)
    with versions.rows_file(version) as path, ThreadPoolExecutor(1) as pool:
        checked = pool.submit(versions.check_rows_file, version, path)  # beside the counting, a core each
        try:
            # No pre-buffering: with it, pyarrow's batch reader keeps every row group it has read (1.4 GB
            # of a 10M-row file, measured); without, one row group's pages at a time (0.07 GB), and faster.
            parquet = pq.ParquetFile(path, pre_buffer=False)
            target = _stored_target(parquet.schema_arrow.names, target)
            has_target = _present(parquet.read(columns=[target], use_threads=False)[target])
            if len(keys) != len(has_target):
                raise StoreError(
                    f"data version {version.ref} has {len(keys)} row keys for {len(has_target)} rows: "
                    "the store was changed outside this tool"
                )
            code_of_row = _checked_splits(keys, has_target, target, split, config.MIN_ROWS_PER_SPLIT)
        except Exception:  # noqa: BLE001 - changed rows first (their checksum says why), as read_table
            checked.result()
            raise
        checked.result()
        codes = np.full(len(keys), -1, dtype=np.int8)  # -1: no target, dropped
        codes[has_target] = code_of_row
        rows = _write_splits(parquet, codes, paths)
    return SplitFiles(rows=rows, target=target, dropped_missing_target=int((~has_target).sum()), split=split)


def _split_in_memory(table, target: str, split: SplitConfig, paths: dict[str, str]) -> SplitFiles:
    """:func:`split_table` of a whole table, its three files written at once (Arrow's Parquet writer lets
    go of the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from mlops.data.content import usable_cores
    from mlops.store.datasets import write_parquet

    result = split_table(table, target, split)
    with ThreadPoolExecutor(min(len(SPLITS), usable_cores())) as pool:
        list(pool.map(lambda name: write_parquet(result.splits[name], paths[name]), SPLITS))
    return SplitFiles(
        rows=result.rows, target=result.target, dropped_missing_target=result.dropped_missing_target, split=split
    )


def _write_splits(parquet, codes: np.ndarray, paths: dict[str, str]) -> dict[str, int]:
    """Each row of ``parquet`` (a ParquetFile) to the file of its split (``codes``: an index into SPLITS
    per row, -1 for none), a record batch at a time; the rows each split got."""
    import numpy as np
    import pyarrow as pa

    writers = {name: _SplitWriter(paths[name], parquet.schema_arrow) for name in SPLITS}
    start = 0
    for batch in parquet.iter_batches(batch_size=config.SPLIT_BATCH_ROWS):
        here = codes[start : start + batch.num_rows]
        start += batch.num_rows
        for code, name in enumerate(SPLITS):
            rows = np.flatnonzero(here == code)
            if len(rows):
                writers[name].append(batch.take(pa.array(rows)))
    return {name: writer.close() for name, writer in writers.items()}


class _SplitWriter:
    """One split's Parquet file, written as it comes: rows are buffered until a row group is full
    (config.SPLIT_ROW_GROUP_ROWS or config.SPLIT_ROW_GROUP_BYTES), and the first group decides the
    write options (mlops.store.datasets.parquet_write_options, as write_parquet on the whole split: its
    codecs look at a column's first 65,536 rows)."""

    def __init__(self, path: str, schema):
        self.path, self.schema = path, schema
        self.batches: list = []
        self.buffered_rows = self.buffered_bytes = self.rows = 0
        self.writer: Any = None  # a pyarrow.parquet.ParquetWriter once the first row group is known

    def append(self, batch) -> None:
        self.batches.append(batch)
        self.buffered_rows += batch.num_rows
        self.buffered_bytes += batch.nbytes
        while self.buffered_rows >= config.SPLIT_ROW_GROUP_ROWS or (
            self.buffered_bytes >= config.SPLIT_ROW_GROUP_BYTES and self.buffered_rows
        ):
            self._flush(min(self.buffered_rows, config.SPLIT_ROW_GROUP_ROWS))

    def _flush(self, rows: int) -> None:
        """Write the first ``rows`` buffered rows as one row group."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from mlops.store.datasets import parquet_write_options

        table = pa.Table.from_batches(self.batches, schema=self.schema)
        group, rest = table.slice(0, rows), table.slice(rows)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema, **parquet_write_options(group))
        self.writer.write_table(group, row_group_size=max(rows, 1))
        self.rows += rows
        self.batches = rest.to_batches()
        self.buffered_rows = rest.num_rows
        self.buffered_bytes = rest.nbytes

    def close(self) -> int:
        """Write what is buffered (an empty file for a split without rows) and close; the rows written."""
        if self.buffered_rows or self.writer is None:
            self._flush(self.buffered_rows)
        self.writer.close()
        return self.rows


def split_table(
    table,
    target: str,
    split: SplitConfig,
    keys: np.ndarray | None = None,
    min_rows_per_split: int = config.MIN_ROWS_PER_SPLIT,
) -> SplitResult:
    """Split a cleaned Arrow table by row content; rows without a target are dropped first.

    ``keys``: the rows' split keys when ``table`` is in canonical order already (a stored
    data version); otherwise they are computed here and the rows put in canonical order, so
    training (e.g. a random forest's bootstrap) sees the same sequence whether the data came
    from a CSV, a Parquet file or a stored data version, and models reproduce bit for bit.
    Never converted to pandas.
    """
    import numpy as np

    from mlops.store.datasets import take_rows

    target, has_target = _target_rows(table, target)
    if keys is None:
        from mlops.data.content import keyed

        content = keyed(table)
        table, keys = take_rows(table, content.order), content.keys[content.order]
        has_target = has_target[content.order]
    code_of_row = _checked_splits(keys, has_target, target, split, min_rows_per_split)
    # One gather puts each split's rows together in canonical order, then each split is a zero-copy
    # slice: a third of the time of three boolean filters.
    with_target = np.flatnonzero(has_target)
    groups = [with_target[code_of_row == code] for code in range(len(SPLITS))]
    ordered = take_rows(table, np.concatenate(groups))
    splits, start = {}, 0
    for name, group in zip(SPLITS, groups):
        splits[name] = ordered.slice(start, len(group))
        start += len(group)
    return SplitResult(splits=splits, target=target, dropped_missing_target=int((~has_target).sum()), split=split)


def _target_rows(table, target: str) -> tuple[str, np.ndarray]:
    """The cleaned target name and which rows of an Arrow table have it (pandas' notna: NaN is missing)."""
    target = _stored_target(table.column_names, target)
    return target, _present(table[target])


def _stored_target(columns: list[str], target: str) -> str:
    """The cleaned name of ``target`` among a cleaned table's ``columns``, which need a feature too."""
    from mlops.stages.ingest import resolve_target

    target = resolve_target(columns, target)
    if len(columns) < 2:
        raise StageError("the data has only the target column; at least one feature is needed")
    return target


def _present(column) -> np.ndarray:
    """Which values of an Arrow column are there (pandas' notna: NaN is missing), as booleans."""
    import pyarrow as pa
    import pyarrow.compute as pc

    present = pc.is_valid(column)
    if pa.types.is_floating(column.type):
        present = pc.and_(present, pc.invert(pc.is_nan(column)))
    return present.to_numpy(zero_copy_only=False).astype(bool)


class SplitColumns:
    """A split's Parquet file as the parts of a DataFrame that column-wise readers use (``columns``,
    ``len()``, ``in``, ``[name]``), each column read when asked: ``[name]`` is ``pd.read_parquet(path)[name]``
    with no other column in memory. What the drift profile and comparison (mlops.stages.drift) and the
    report's charts read a split through, however many rows it has: all of them, a column at a time."""

    def __init__(self, path: str):
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        index = (parquet.schema_arrow.pandas_metadata or {}).get("index_columns", [])
        self.path, self.rows = path, parquet.metadata.num_rows
        self.columns = [name for name in parquet.schema_arrow.names if name not in index]

    def __len__(self) -> int:
        return self.rows

    def __contains__(self, name) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> pd.Series:
        import pandas as pd

        if name not in self.columns:
            raise KeyError(name)
        return pd.read_parquet(self.path, columns=[name])[name]


def train_target(table, target: str, split: SplitConfig, keys: np.ndarray | None = None) -> tuple[str, pd.Series]:
    """The cleaned target name and the training split's target values of an Arrow table (its keys:
    a stored version's, else computed): what the CLI's pre-flight checks, without splitting the rest."""
    from mlops.data.content import row_keys

    keys = row_keys(table) if keys is None else keys
    target = _stored_target(table.column_names, target)
    return target, _train_values(table[target], keys, target, split)


def stored_train_target(store, data_version: str, target: str, split: SplitConfig) -> tuple[str, pd.Series]:
    """:func:`train_target` of the data version ``NAME@ID``, reading its keys and its target column only
    (a version stored before split keys were: the whole table). For the CLI's pre-flight: the rows
    file's sha256 is left to the split stage, which checks it before it writes anything."""
    import pyarrow.parquet as pq

    from mlops.store.datasets import DataVersions

    versions = DataVersions(store)
    version = versions.resolve(data_version)
    keys = versions.read_keys(version)
    if keys is None:
        return train_target(versions.read_table(version), target, split)
    with versions.rows_file(version) as path:
        try:
            parquet = pq.ParquetFile(path)
            target = _stored_target(parquet.schema_arrow.names, target)
            column = parquet.read(columns=[target], use_threads=False)[target]
        except Exception:  # noqa: BLE001 - bytes that are not Parquet: the checksum says why
            versions.check_rows_file(version, path)
            raise
    return target, _train_values(column, keys, target, split)


def _train_values(column, keys: np.ndarray, target: str, split: SplitConfig) -> pd.Series:
    """The training split's values of the target ``column`` (Arrow), checked as the split stage checks."""
    has_target = _present(column)
    code_of_row = _checked_splits(keys, has_target, target, split, config.MIN_ROWS_PER_SPLIT)
    values = column.filter(has_target).filter(code_of_row == SPLITS.index("train"))
    return values.to_pandas().rename(target)
