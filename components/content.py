"""The canonical content hash of a table: the identity of a data version.

Independent of row order, column order and file format (CSV or Parquet, 1 or
1.0), so the same data always gets the same id, whatever the source file's
bytes. Row digests also drive the deterministic split.
"""

import hashlib
import json
import math

import numpy as np
import pandas as pd


def _canonical_cell(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "\x00"
    if isinstance(value, (bool, np.bool_)):
        return "b1" if value else "b0"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "n" + repr(float(value))  # 1 and 1.0 are the same number
    return "s" + str(value)


def _canonical_column(series: pd.Series) -> pd.Series:
    """``_canonical_cell`` of every value, vectorised for the common column types.

    Mixed object columns (and nullable booleans) go cell by cell; the result
    is the same either way (a test holds the two to it).
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        if series.isna().any():
            return series.map(_canonical_cell)
        return pd.Series(np.where(series.to_numpy(dtype=bool), "b1", "b0"), index=series.index, dtype=object)
    if pd.api.types.is_numeric_dtype(dtype):
        # numpy prints float64 as the shortest repr, as Python's repr does
        values = series.astype("float64").to_numpy(dtype="float64", na_value=np.nan)
        text = np.char.add("n", values.astype(str)).astype(object)
        text[np.isnan(values)] = "\x00"
        return pd.Series(text, index=series.index, dtype=object)
    if isinstance(dtype, pd.StringDtype):
        return ("s" + series).where(series.notna(), "\x00").astype(object)
    return series.map(_canonical_cell).astype(object)


def row_digests(frame: pd.DataFrame) -> list[bytes]:
    """sha256 of each row's canonical encoding, columns in sorted-name order."""
    columns = sorted(frame.columns)
    if not len(frame):
        return []
    encoded = [_canonical_column(frame[column]).reset_index(drop=True) for column in columns]
    rows = encoded[0].str.cat(encoded[1:], sep="\x1f") if len(encoded) > 1 else encoded[0]
    return [hashlib.sha256(row.encode("utf-8")).digest() for row in rows]


def content_hash(frame: pd.DataFrame, digests: list[bytes] | None = None) -> str:
    """A hash of the data itself: independent of row order, column order and file format."""
    digests = row_digests(frame) if digests is None else digests
    overall = hashlib.sha256()
    overall.update(json.dumps(sorted(frame.columns)).encode("utf-8"))
    for digest in sorted(digests):
        overall.update(digest)
    return overall.hexdigest()


