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


def row_digests(frame: pd.DataFrame) -> list[bytes]:
    """sha256 of each row's canonical encoding, columns in sorted-name order."""
    columns = sorted(frame.columns)
    rows = frame[columns].astype(object).itertuples(index=False, name=None)
    return [hashlib.sha256("\x1f".join(map(_canonical_cell, row)).encode("utf-8")).digest() for row in rows]


def content_hash(frame: pd.DataFrame, digests: list[bytes] | None = None) -> str:
    """A hash of the data itself: independent of row order, column order and file format."""
    digests = row_digests(frame) if digests is None else digests
    overall = hashlib.sha256()
    overall.update(json.dumps(sorted(frame.columns)).encode("utf-8"))
    for digest in sorted(digests):
        overall.update(digest)
    return overall.hexdigest()


