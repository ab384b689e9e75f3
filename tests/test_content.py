"""The content hash (scheme mlops-content-v2): unambiguous, and independent of what must not matter.

The vectorised encoding is held to a per-cell definition written out here, for every column type."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from components.content import SCHEME, _cell_record, content_hash, row_digests


def reference_digests(frame: pd.DataFrame) -> list[bytes]:
    """The definition, cell by cell: each column's typed records, in sorted-column order, sha256 per row."""
    columns = sorted(frame.columns)

    def kind(series):
        values = [v for v in series if not (v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)))]
        if values and all(isinstance(v, (bool, np.bool_)) for v in values):
            return "bool"
        if values and all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
            return "number"
        return "text"

    def record(value, how):
        full = _cell_record(value)
        return full[:2] if how == "bool" else full[:9] if how == "number" else full

    kinds = {c: kind(frame[c].astype(object)) for c in columns}
    rows = frame[columns].astype(object).itertuples(index=False, name=None)
    return [hashlib.sha256(b"".join(record(v, kinds[c]) for v, c in zip(row, columns))).digest() for row in rows]


FRAMES = {
    "floats with NaN": pd.DataFrame({"x": [0.1, np.nan, 1e-20, 1 / 3, -0.0, 1e300]}),
    "ints": pd.DataFrame({"i": [1, -2, 3, 0, 2**40, 7]}),
    "huge ints": pd.DataFrame({"i": [2**53 + 1, 2**60, -(2**62), 1, 2, 3]}),
    "nullable ints": pd.DataFrame({"i": pd.array([1, None, 3, 4, 5, 6], dtype="Int64")}),
    "bools": pd.DataFrame({"b": [True, False, True, True, False, False]}),
    "nullable bools": pd.DataFrame({"b": pd.array([True, None, False, True, None, False], dtype="boolean")}),
    "strings": pd.DataFrame({"s": pd.array(["a", None, "", "é", "x y", "1.0"], dtype="str")}),
    "mixed objects": pd.DataFrame({"o": pd.Series(["a", 1, 2.5, None, True, np.nan], dtype=object)}),
    "float32": pd.DataFrame({"f": np.array([0.5, 0.25, np.nan, 1, 2, 3], dtype=np.float32)}),
    "several columns": pd.DataFrame({"b": ["x", "y", None], "a": [1.5, None, 3.0], "c": [True, False, True]}),
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_vectorised_digests_equal_the_per_cell_definition(name):
    frame = FRAMES[name]
    assert [bytes(d) for d in row_digests(frame)] == reference_digests(frame)


def test_independent_of_row_order_column_order_number_spelling_and_source_type():
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    variants = [frame.iloc[::-1], frame[["b", "a"]], frame.assign(a=[1.0, 2.0, 3.0]),
                frame.assign(a=pd.Series([1, 2, 3], dtype=object)), frame.assign(b=pd.array(["x", "y", "z"],
                                                                                             dtype="str"))]
    assert {content_hash(v) for v in variants} == {content_hash(frame)}


# Pairs of different tables that a naive encoding confuses; every one must get its own hash.
ADVERSARIAL = {
    # cells joined with a separator: the separator inside a value (the v1 collision)
    "separator in a value": (pd.DataFrame({"p": ["a\x1fsb"], "q": ["c"]}), pd.DataFrame({"p": ["a"], "q": ["b\x1fsc"]})),
    # a number and its text
    "number vs text": (pd.DataFrame({"p": [1]}), pd.DataFrame({"p": ["1"]})),
    # missing vs the empty string
    "null vs empty": (pd.DataFrame({"p": [None, "x"]}), pd.DataFrame({"p": ["", "x"]})),
    # a boolean and the number it casts to
    "bool vs number": (pd.DataFrame({"p": [True]}), pd.DataFrame({"p": [1]})),
    # column names that concatenate alike
    "names run together": (pd.DataFrame({"ab": ["c"]}), pd.DataFrame({"a": ["bc"]})),
    # the same cells, paired differently across rows
    "re-paired rows": (pd.DataFrame({"p": [1, 2], "q": [3, 4]}), pd.DataFrame({"p": [1, 2], "q": [4, 3]})),
    # a duplicated row is more data
    "duplicate row": (pd.DataFrame({"p": [1, 1]}), pd.DataFrame({"p": [1]})),
    # integers float64 cannot tell apart
    "huge integers": (pd.DataFrame({"p": [2**53]}), pd.DataFrame({"p": [2**53 + 1]})),
    # a value moved between columns
    "value moved across columns": (pd.DataFrame({"p": ["x"], "q": [None]}), pd.DataFrame({"p": [None], "q": ["x"]})),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_different_data_never_shares_a_hash(name):
    left, right = ADVERSARIAL[name]
    assert content_hash(left) != content_hash(right)


def test_the_scheme_is_part_of_the_hash_and_named_in_the_manifest(file_store):
    from components.storage.datasets import DataVersions

    frame = pd.DataFrame({"p": [1, 2]})
    version, _ = DataVersions(file_store).publish("t", frame, source="x")
    assert SCHEME == "mlops-content-v2" and version.content_scheme == SCHEME
    assert version.id == content_hash(frame)
    assert row_digests(pd.DataFrame({"a": []})).shape == (0, 32)


def _large_mixed_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "x": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows)),
        "i": rng.integers(-5, 5, rows),
        "s": pd.array(rng.choice(["a", "b", "é", None], rows), dtype="str"),
        "b": rng.random(rows) < 0.5,
    })


def test_two_processes_give_the_digests_one_gives(monkeypatch):
    import components.content as content

    frame = _large_mixed_frame(2_503)
    monkeypatch.setattr(content, "_PARALLEL_MIN_ROWS", 10**9)
    alone = row_digests(frame)
    monkeypatch.setattr(content, "_PARALLEL_MIN_ROWS", 100)
    monkeypatch.setattr(content, "_BLOCK_ROWS", 400)  # several blocks on each side, a ragged last one
    monkeypatch.setattr(content, "usable_cores", lambda: 2)
    assert np.array_equal(row_digests(frame), alone)
    assert [bytes(d) for d in alone[:50]] == reference_digests(frame.iloc[:50])


def test_a_failing_child_leaves_its_half_to_the_parent(monkeypatch):
    import os

    import components.content as content

    frame = _large_mixed_frame(1_000)
    monkeypatch.setattr(content, "_PARALLEL_MIN_ROWS", 10**9)
    alone = row_digests(frame)
    parent, real = os.getpid(), content._digest_rows

    def dies_in_the_child(*args):
        if os.getpid() != parent:
            raise MemoryError("the child ran out of memory")
        real(*args)

    monkeypatch.setattr(content, "_digest_rows", dies_in_the_child)
    monkeypatch.setattr(content, "_PARALLEL_MIN_ROWS", 100)
    monkeypatch.setattr(content, "usable_cores", lambda: 2)
    assert np.array_equal(row_digests(frame), alone)
