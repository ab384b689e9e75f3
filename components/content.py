"""The content hash of a table: the identity of a data version (scheme ``mlops-content-v2``).

Independent of row order, column order and file format (CSV or Parquet, 1 or
1.0), so the same data always gets the same id, whatever the source file's
bytes; and unambiguous, so different data never shares one.

Every cell becomes a typed, fixed-width record: a tag byte, then

    null     (None, NaN)        tag 0, zero padding
    bool                        tag 1, one byte
    number   (int or float)     tag 2, the value as a little-endian float64 (-0.0 as 0.0)
    integer  beyond 2**53       tag 4, the value as a little-endian int64 (a float64 would round it)
    text                        tag 3, the sha256 of its UTF-8 bytes

A column's width follows from its values (numbers 9 bytes, booleans 2, anything
else 33), so a column of numbers hashes alike whether it came as numbers or as
objects. A row's digest is the sha256 of its records in sorted column order;
the table's hash is the sha256 of the scheme name, the length-prefixed sorted
column names and the sorted row digests. All of it is vectorised over NumPy
columns but the final per-row sha256 (about a microsecond a row).

Row digests also drive the deterministic split (components.ingest).
"""

from __future__ import annotations

import hashlib
import mmap
import os
from pathlib import Path

import numpy as np
import pandas as pd

SCHEME = "mlops-content-v2"
DIGEST_BYTES = 32
_NULL, _BOOL, _NUMBER, _TEXT, _BIG_INTEGER = 0, 1, 2, 3, 4
_EXACT_INTEGER_LIMIT = 2**53
# Rows hashed per block: bounds the temporary record buffer (a block of 20 text columns is ~66 MB).
_BLOCK_ROWS = 100_000


def _numeric_records(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """(n, 9) records of a numeric column."""
    records = np.zeros((len(values), 9), dtype=np.uint8)
    if values.dtype.kind in "iu":
        big = np.abs(values.astype(np.float64)) >= _EXACT_INTEGER_LIMIT
        numbers = values.astype("<f8")
        if big.any():
            records[big, 1:] = values[big].astype("<i8").view(np.uint8).reshape(-1, 8)
    else:
        numbers = values.astype("<f8", copy=True)
        big = np.zeros(len(values), dtype=bool)
    numbers[numbers == 0] = 0.0  # -0.0 and 0.0 are the same number
    if not missing.any() and not big.any():  # every cell a plain number: no masks (a third of the time)
        records[:, 0] = _NUMBER
        records[:, 1:] = numbers.view(np.uint8).reshape(-1, 8)
        return records
    plain = ~big & ~missing
    records[plain, 1:] = numbers[plain].view(np.uint8).reshape(-1, 8)
    records[plain, 0] = _NUMBER
    records[big & ~missing, 0] = _BIG_INTEGER
    return records


def _cell_record(value) -> bytes:
    """The 33-byte record of one cell of a mixed column."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return bytes(33)
    if isinstance(value, (bool, np.bool_)):
        return bytes([_BOOL, int(value)]) + bytes(31)
    if isinstance(value, (int, np.integer)) and abs(int(value)) >= _EXACT_INTEGER_LIMIT:
        return bytes([_BIG_INTEGER]) + int(value).to_bytes(8, "little", signed=True) + bytes(24)
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value) or 0.0
        return bytes([_NUMBER]) + np.float64(number).astype("<f8").tobytes() + bytes(24)
    return bytes([_TEXT]) + hashlib.sha256(str(value).encode("utf-8")).digest()


def _all_numbers(values) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
               for v in values)


def column_records(series: pd.Series) -> np.ndarray:
    """The (n, width) uint8 records of one column (see the module docstring)."""
    missing = series.isna().to_numpy()
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        records = np.zeros((len(series), 2), dtype=np.uint8)
        records[~missing, 0] = _BOOL
        records[~missing, 1] = series[~missing].to_numpy(dtype=bool)
        return records
    if pd.api.types.is_numeric_dtype(dtype):
        if dtype.kind in "iu" and not missing.any():
            values = series.to_numpy()  # exact, also beyond 2**53
        else:
            values = series.to_numpy(dtype="float64", na_value=np.nan)
        return _numeric_records(values, missing)
    present = series[~missing]
    if pd.api.types.is_object_dtype(dtype):
        # Mixed values: True and 1 are equal (and hash alike) in Python, so tell them apart by type.
        keyed = pd.Series([(type(v).__name__, v) for v in present], dtype=object)
        codes, unique_keys = pd.factorize(keyed, sort=False)
        uniques = [value for _, value in unique_keys]
    else:
        codes, uniques = pd.factorize(present, sort=False)
    if len(uniques) and _all_numbers(uniques):
        return column_records(pd.to_numeric(series, errors="raise"))
    if len(uniques) and all(isinstance(v, (bool, np.bool_)) for v in uniques):
        return column_records(series.astype("boolean"))
    table = np.frombuffer(b"".join(_cell_record(v) for v in uniques), dtype=np.uint8).reshape(-1, 33)
    records = np.zeros((len(series), 33), dtype=np.uint8)
    if len(uniques):
        records[~missing] = table[codes]
    return records


def row_digests(frame: pd.DataFrame) -> np.ndarray:
    """The sha256 of each row's records, columns in sorted-name order: an (n, 32) uint8 array.

    The per-row sha256 is a Python loop that holds the GIL (hashlib only lets go of it
    for inputs over 2 KiB), so a large table is hashed by two processes: a forked child
    takes the second half and writes into shared memory. Any failure in the child and
    the parent hashes that half itself: the digests never depend on how they were made.
    """
    columns = sorted(map(str, frame.columns))
    renamed = frame.set_axis([str(c) for c in frame.columns], axis=1)
    digests = np.empty((len(frame), DIGEST_BYTES), dtype=np.uint8)
    if not len(frame):
        return digests
    if len(frame) >= _PARALLEL_MIN_ROWS and hasattr(os, "fork") and usable_cores() > 1:
        _digest_in_two_processes(renamed, columns, digests)
    else:
        _digest_rows(renamed, columns, 0, len(frame), digests)
    return digests


# Below this, forking costs more than it saves (about 1 µs a row on one core).
_PARALLEL_MIN_ROWS = 200_000


def _digest_rows(frame: pd.DataFrame, columns: list[str], start: int, stop: int, out: np.ndarray) -> None:
    """Digests of rows [start, stop) into ``out`` (indexed from ``start``), a block at a time."""
    sha256 = hashlib.sha256
    for first in range(start, stop, _BLOCK_ROWS):
        block = frame.iloc[first:min(first + _BLOCK_ROWS, stop)]
        records = np.ascontiguousarray(np.hstack([column_records(block[column]) for column in columns]))
        width = records.shape[1]
        buffer = memoryview(records).cast("B")
        out[first - start:first - start + len(block)] = np.frombuffer(
            b"".join([sha256(buffer[i:i + width]).digest() for i in range(0, len(block) * width, width)]),
            dtype=np.uint8).reshape(-1, DIGEST_BYTES)


def _digest_in_two_processes(frame: pd.DataFrame, columns: list[str], digests: np.ndarray) -> None:
    rows = len(frame)
    half = (rows // 2 // _BLOCK_ROWS) * _BLOCK_ROWS or rows // 2  # whole blocks on the parent's side
    shared = mmap.mmap(-1, (rows - half) * DIGEST_BYTES)  # anonymous and shared: the child writes, we read
    child = os.fork()
    if child == 0:  # pragma: no cover - measured by the parent's result; a child never returns
        status = 1
        try:
            _digest_rows(frame, columns, half, rows,
                         np.frombuffer(shared, dtype=np.uint8).reshape(rows - half, DIGEST_BYTES))
            status = 0
        finally:
            os._exit(status)  # no atexit handlers, no flushing of the parent's buffers
    try:
        _digest_rows(frame, columns, 0, half, digests[:half])
    finally:
        _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        digests[half:] = np.frombuffer(shared, dtype=np.uint8).reshape(rows - half, DIGEST_BYTES)
    else:
        _digest_rows(frame, columns, half, rows, digests[half:])
    shared.close()


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a pod's limit)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cores


def digest_order(digests: np.ndarray) -> np.ndarray:
    """The permutation that sorts rows by digest (bytewise): the canonical row order."""
    if not len(digests):
        return np.arange(0)
    keys = digests.view(">u8").reshape(len(digests), DIGEST_BYTES // 8)
    order = np.argsort(keys[:, 0], kind="stable")
    first = keys[order, 0]
    ties = np.flatnonzero(first[1:] == first[:-1])
    if len(ties) and (keys[order[ties]] != keys[order[ties + 1]]).any():
        return np.lexsort(keys.T[::-1])  # two different rows share 8 leading bytes: order by all 32
    return order


def content_hash(frame: pd.DataFrame, digests: np.ndarray | None = None, order: np.ndarray | None = None) -> str:
    """The table's identity: independent of row order, column order and file format.

    ``digests`` and ``order`` (:func:`digest_order` of them) when the caller has them already.
    """
    digests = row_digests(frame) if digests is None else digests
    order = digest_order(digests) if order is None else order
    overall = hashlib.sha256(SCHEME.encode("ascii"))
    for name in sorted(map(str, frame.columns)):
        encoded = name.encode("utf-8")
        overall.update(len(encoded).to_bytes(8, "big") + encoded)
    overall.update(len(digests).to_bytes(8, "big"))
    overall.update(np.ascontiguousarray(digests[order]).tobytes())
    return overall.hexdigest()


def row_keys(digests: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each digest as an unsigned integer: what the split is drawn from."""
    return digests[:, :8].copy().view(">u8").reshape(-1).astype(np.uint64)
