"""The content hash (scheme mlops-content-v3): unambiguous, and independent of what must not matter.

The vectorised encoding (pandas and Arrow) is held to a per-cell definition written out here, in
plain Python, for every column type: the keys, the canonical order and the hash."""

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlops.data import content as content_module
from mlops.data.content import SCHEME, _cell_record, content_hash, describe, row_keys

MASK = 2**64 - 1
PINNED_ID = "388b0998e3e3440a60a03e5d0f9bcfe934904395323cca90fdfe3f8605050cee"


def _kind(series) -> str:
    values = [v for v in series if not (v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)))]
    if values and all(isinstance(v, (bool, np.bool_)) for v in values):
        return "bool"
    if values and all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return "number"
    return "text"


def reference(frame: pd.DataFrame) -> tuple[str, list[int]]:
    """The definition, cell by cell: (the table's hash, each row's key)."""
    columns = sorted(frame.columns)
    width = {"bool": 1, "number": 8, "text": 32}
    kinds = {c: _kind(frame[c].astype(object)) for c in columns}
    cells = {c: [_cell_record(v)[: 1 + width[kinds[c]]] for v in frame[c].astype(object)] for c in columns}
    keys = []
    for row in range(len(frame)):
        key = content_module._KEY_SEED
        for c in columns:
            cell = cells[c][row]
            word = int.from_bytes(cell[1:9].ljust(8, b"\0"), "little")
            key ^= word ^ ((cell[0] * content_module._TAG_MULTIPLIER) & MASK)
            key = (key * content_module._KEY_MULTIPLIER) & MASK
            key ^= key >> 32
        for shift, multiplier in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB9FE1A85EC53)):
            key ^= key >> shift
            key = (key * multiplier) & MASK
        keys.append(key ^ (key >> 33))
    order = sorted(range(len(frame)), key=lambda r: (keys[r], b"".join(cells[c][r] for c in columns)))
    overall = hashlib.sha256(SCHEME.encode("ascii") + len(frame).to_bytes(8, "big"))
    for c in columns:
        column = hashlib.sha256(bytes(cells[c][r][0] for r in order))
        payloads = [cells[c][r][1:] for r in order]
        if width[kinds[c]] == 32:  # the distinct payloads, sorted, and each row's index into them
            distinct = sorted(set(payloads))
            column.update(len(distinct).to_bytes(8, "big") + b"".join(distinct))
            payloads = [distinct.index(p).to_bytes(4, "big") for p in payloads]
        column.update(b"".join(payloads))
        overall.update(
            len(c.encode()).to_bytes(8, "big") + c.encode() + width[kinds[c]].to_bytes(2, "big") + column.digest()
        )
    return overall.hexdigest(), keys


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
def test_vectorised_hash_and_keys_equal_the_per_cell_definition(name):
    frame = FRAMES[name]
    expected_hash, expected_keys = reference(frame)
    described = describe(frame)
    assert described.id == expected_hash
    assert described.keys.tolist() == expected_keys


ARROW_TABLES = {
    "ints without nulls": pa.table({"i": pa.array([1, -2, 2**53 + 1, 0, 7], pa.int64())}),
    "ints with nulls": pa.table({"i": pa.array([1, None, 3, 2**60, 5], pa.int64())}),
    "small ints": pa.table({"i": pa.array([1, 2, 3], pa.int8()), "u": pa.array([1, 2, 3], pa.uint32())}),
    "uint64": pa.table({"u": pa.array([1, 2**63 + 5, 3], pa.uint64())}),
    "floats with nulls and NaN": pa.table({"f": pa.array([0.5, None, float("nan"), -0.0, 1e300])}),
    "float32": pa.table({"f": pa.array([0.5, None, 0.25], pa.float32())}),
    "bools with nulls": pa.table({"b": pa.array([True, None, False, True])}),
    "strings with nulls": pa.table({"s": pa.array(["a", None, "", "é", "a"])}),
    "large strings": pa.table({"s": pa.array(["a", None, "b"], pa.large_string())}),
    "an all-null column": pa.table({"n": pa.array([None, None, None]), "x": [1, 2, 3]}),
    "a dictionary column (the fallback)": pa.table({"d": pa.array(["x", "y", None, "x"]).dictionary_encode()}),
    "dates (the fallback)": pa.table({"d": pa.array([0, 1, None], pa.date32())}),
    "several chunks": pa.Table.from_batches([pa.record_batch({"x": [1.5, 2.5]}), pa.record_batch({"x": [3.5]})]),
}


@pytest.mark.parametrize("name", sorted(ARROW_TABLES))
def test_an_arrow_table_hashes_as_its_pandas_conversion(name):
    """Ingest hashes Arrow columns directly; they must give what pandas (the definition) gives."""
    table = ARROW_TABLES[name]
    arrow, pandas = describe(table), describe(table.to_pandas())
    assert arrow.id == pandas.id
    assert np.array_equal(arrow.keys, pandas.keys) and np.array_equal(arrow.order, pandas.order)
    assert np.array_equal(row_keys(table), arrow.keys)


def test_rows_whose_keys_collide_are_ordered_by_their_bytes(monkeypatch):
    """A key collision between different rows must not make the hash depend on the input order."""
    monkeypatch.setattr(content_module, "_finish", lambda keys: np.zeros_like(keys))  # every key collides
    frame = pd.DataFrame({"a": [3.0, 1.0, 2.0, 1.0], "b": ["x", "y", "z", "y"]})
    ids = {describe(frame.iloc[list(order)]).id for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1])}
    assert len(ids) == 1
    described = describe(frame)
    # by bytes: the column a first, then its payload, a little-endian float64 (2.0 < 3.0 < 1.0 bytewise)
    assert frame.iloc[described.order]["a"].tolist() == [2.0, 3.0, 1.0, 1.0]


def test_the_scheme_id_of_a_fixed_table_is_pinned():
    """Changing the encoding changes every data version's id: it must be a new scheme, on purpose."""
    frame = pd.DataFrame({"a": [1, 2, None], "b": ["x", None, "z"], "c": [True, False, None]})
    assert content_hash(frame) == PINNED_ID


def test_independent_of_row_order_column_order_number_spelling_and_source_type():
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    variants = [
        frame.iloc[::-1],
        frame[["b", "a"]],
        frame.assign(a=[1.0, 2.0, 3.0]),
        frame.assign(a=pd.Series([1, 2, 3], dtype=object)),
        frame.assign(b=pd.array(["x", "y", "z"], dtype="str")),
    ]
    assert {content_hash(v) for v in variants} == {content_hash(frame)}


# Pairs of different tables that a naive encoding confuses; every one must get its own hash.
ADVERSARIAL = {
    # cells joined with a separator: the separator inside a value (the v1 collision)
    "separator in a value": (
        pd.DataFrame({"p": ["a\x1fsb"], "q": ["c"]}),
        pd.DataFrame({"p": ["a"], "q": ["b\x1fsc"]}),
    ),
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
    from mlops.store.datasets import DataVersions

    frame = pd.DataFrame({"p": [1, 2]})
    version, _ = DataVersions(file_store).publish("t", frame, source="x")
    assert SCHEME == "mlops-content-v3" and version.content_scheme == SCHEME
    assert version.id == content_hash(frame)
    empty = describe(pd.DataFrame({"a": []}))
    assert empty.keys.shape == (0,) and empty.id != content_hash(pd.DataFrame({"b": []}))


@pytest.mark.parametrize("cores", [1, 2, 3, 8])
def test_the_bucketed_argsort_sorts_as_numpy_does(monkeypatch, cores):
    """Canonical order sorts keys a bucket per core: the same sorted keys, whatever the core count."""
    monkeypatch.setattr(content_module, "usable_cores", lambda: cores)
    keys = np.random.default_rng(7).integers(0, 2**64 - 1, 300_000, dtype=np.uint64, endpoint=True)
    keys[:500] = keys[500:1000]  # equal keys
    keys[-4:] = [0, 2**64 - 1, 2**63, 2**63 - 1]  # the buckets' edges
    order = content_module._argsort(keys)
    assert np.array_equal(np.sort(order), np.arange(len(keys)))  # a permutation
    assert np.array_equal(keys[order], np.sort(keys))


def test_a_large_table_has_one_id_and_order_whatever_its_row_order_and_core_count(monkeypatch):
    """Above the sizes that go parallel (keys, cells, sort): still one id, one stored order."""
    rng = np.random.default_rng(11)
    rows = 250_000
    # + 0.0: no -0.0, which equals 0.0 in content, so the two may come out in either order
    table = pa.table(
        {
            "x": rng.normal(size=rows).round(2) + 0.0,
            "k": rng.choice(["a", "b", "c"], rows),
            "n": rng.integers(0, 3, rows),
        }
    )  # many duplicated rows: equal keys
    shuffled = table.take(rng.permutation(rows))
    seen = set()
    for cores, source in ((1, table), (2, shuffled), (4, table)):
        monkeypatch.setattr(content_module, "usable_cores", lambda cores=cores: cores)
        described = describe(source)
        seen.add((described.id, source.take(described.order).to_pandas().to_csv(index=False)))
    assert len(seen) == 1
