"""The content hash: vectorised encoding equals the per-cell definition, for every column type."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from components.content import _canonical_cell, content_hash, row_digests


def reference_digests(frame: pd.DataFrame) -> list[bytes]:
    """The definition: each cell through _canonical_cell, joined in sorted-column order."""
    rows = frame[sorted(frame.columns)].astype(object).itertuples(index=False, name=None)
    return [hashlib.sha256("\x1f".join(map(_canonical_cell, row)).encode("utf-8")).digest() for row in rows]


FRAMES = {
    "floats with NaN": pd.DataFrame({"x": [0.1, np.nan, 1e-20, 1 / 3, -0.0, 1e300]}),
    "ints": pd.DataFrame({"i": [1, -2, 3, 0, 2**40, 7]}),
    "nullable ints": pd.DataFrame({"i": pd.array([1, None, 3, 4, 5, 6], dtype="Int64")}),
    "bools": pd.DataFrame({"b": [True, False, True, True, False, False]}),
    "nullable bools": pd.DataFrame({"b": pd.array([True, None, False, True, None, False], dtype="boolean")}),
    "strings": pd.DataFrame({"s": pd.array(["a", None, "", "é", "x y", "1.0"], dtype="str")}),
    "mixed objects": pd.DataFrame({"o": pd.Series(["a", 1, 2.5, None, True, np.nan], dtype=object)}),
    "float32": pd.DataFrame({"f": np.array([0.1, 0.2, np.nan, 1, 2, 3], dtype=np.float32)}),
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_vectorised_digests_match_the_definition(name):
    frame = FRAMES[name].assign(other=["p", "q", "r", "s", "t", "u"])
    assert row_digests(frame) == reference_digests(frame)


def test_real_data_and_a_non_default_index(wine_frame):
    shuffled = wine_frame.sample(frac=1.0, random_state=1)  # index no longer 0..n-1
    assert row_digests(shuffled) == reference_digests(shuffled)
    assert content_hash(wine_frame) == content_hash(shuffled)


def test_empty_and_single_column_frames():
    assert row_digests(pd.DataFrame({"a": []})) == []
    single = pd.DataFrame({"a": [1.0, 2.0]})
    assert row_digests(single) == reference_digests(single)
