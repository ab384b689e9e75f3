"""The split stage streamed (split_version): the rows, order and files of the in-memory split, and its checks."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops import config
from mlops.errors import StageError
from mlops.stages.split import SPLITS, SplitConfig, split_table, split_version
from mlops.store.datasets import DataVersions, write_parquet


def _table(rows: int) -> pa.Table:
    """A cleaned table: numbers (some missing), a category, an integer column, a float target missing
    in about one row in ten (None and NaN)."""
    rng = np.random.default_rng(rows)
    target = rng.normal(size=rows)
    target[rng.random(rows) < 0.05] = np.nan
    missing = rng.random(rows) < 0.05
    return pa.table(
        {
            "x": pa.array(rng.normal(size=rows)),
            "colour": pa.array(rng.choice(["red", "green", "blue"], rows)),
            "count": pa.array(rng.integers(0, 100, rows), mask=rng.random(rows) < 0.1),
            "target": pa.array(target, mask=missing),
        }
    )


def _published(store, table: pa.Table, row_group_rows: int | None = None):
    """``table`` as a stored data version; with ``row_group_rows``, its rows file rewritten in row groups
    that small (the manifest's sha256 updated to match)."""
    versions = DataVersions(store)
    version, _ = versions.publish("data", table, source="test")
    if row_group_rows:
        prefix = store.root / "data" / "data" / "versions" / version.id
        rows_file = prefix / version.data_file
        pq.write_table(pq.read_table(rows_file), rows_file, row_group_size=row_group_rows)
        assert pq.ParquetFile(rows_file).num_row_groups > 5
        import hashlib

        record = json.loads((prefix / "manifest.json").read_text())
        record["data_sha256"] = hashlib.sha256(rows_file.read_bytes()).hexdigest()
        (prefix / "manifest.json").write_text(json.dumps(record))
    return versions, versions.resolve(version.full_ref)


def _paths(tmp_path) -> dict[str, str]:
    return {name: str(tmp_path / f"{name}.parquet") for name in SPLITS}


@pytest.mark.parametrize(
    "batch_rows, group_rows, group_bytes",
    [
        (256, 1024 * 1024, 128 * 1024 * 1024),  # small batches, one row group a split
        (300, 700, 128 * 1024 * 1024),  # row groups full by rows, batches across them
        (512, 1024 * 1024, 4096),  # row groups full by bytes
    ],
)
def test_the_streamed_split_writes_the_rows_the_in_memory_split_gives(
    tmp_path, file_store, monkeypatch, batch_rows, group_rows, group_bytes
):
    """Every split file holds the rows split_table gives for the same stored table and keys, in the same
    order and with the same types (also as pandas reads them), whatever the batches and row groups;
    rows without a target are dropped and counted."""
    monkeypatch.setattr(config, "SPLIT_BATCH_ROWS", batch_rows)
    monkeypatch.setattr(config, "SPLIT_ROW_GROUP_ROWS", group_rows)
    monkeypatch.setattr(config, "SPLIT_ROW_GROUP_BYTES", group_bytes)
    versions, version = _published(file_store, _table(4000), row_group_rows=400)
    in_memory = split_table(versions.read_table(version), "target", SplitConfig(), keys=versions.read_keys(version))
    paths = _paths(tmp_path)
    stage = split_version(file_store, version.full_ref, "target", SplitConfig(), paths)
    assert stage.rows == in_memory.rows and stage.target == "target"
    assert stage.dropped_missing_target == in_memory.dropped_missing_target > 300
    assert sum(stage.rows.values()) + stage.dropped_missing_target == 4000
    for name, path in paths.items():
        assert pq.read_table(path).equals(in_memory.splits[name])
        pd.testing.assert_frame_equal(pd.read_parquet(path), in_memory.frames()[name])
        groups = pq.ParquetFile(path).metadata
        assert all(groups.row_group(i).num_rows <= group_rows for i in range(groups.num_row_groups))


def test_a_split_in_one_row_group_is_the_file_write_parquet_writes(tmp_path, file_store):
    """Below a row group's size, a streamed split's file is byte for byte the in-memory split's file."""
    versions, version = _published(file_store, _table(3000))
    in_memory = split_table(versions.read_table(version), "target", SplitConfig(), keys=versions.read_keys(version))
    paths = _paths(tmp_path)
    split_version(file_store, version.full_ref, "target", SplitConfig(), paths)
    for name, path in paths.items():
        write_parquet(in_memory.splits[name], str(tmp_path / "expected.parquet"))
        assert (tmp_path / "expected.parquet").read_bytes() == open(path, "rb").read()


@pytest.mark.parametrize(
    "rows, target, message",
    [
        (20, "target", "too few rows for the split: "),
        (500, "empty", "target column 'empty' is empty in every row"),
        (500, "nope", "target column 'nope' not found; columns are: x, colour, count, target, empty"),
    ],
)
def test_the_streamed_split_refuses_what_the_in_memory_split_refuses_and_writes_nothing(
    tmp_path, file_store, rows, target, message
):
    table = _table(rows).append_column("empty", pa.nulls(rows, pa.float64()))
    versions, version = _published(file_store, table)
    with pytest.raises(StageError) as in_memory:
        split_table(versions.read_table(version), target, SplitConfig(), keys=versions.read_keys(version))
    paths = _paths(tmp_path)
    with pytest.raises(StageError) as streamed:
        split_version(file_store, version.full_ref, target, SplitConfig(), paths)
    assert str(streamed.value) == str(in_memory.value) and str(streamed.value).startswith(message)
    assert not any(tmp_path.joinpath(f"{name}.parquet").exists() for name in SPLITS)


def test_changed_rows_are_refused_before_any_split_is_written(tmp_path, file_store):
    """The rows file is checked against its recorded sha256 (beside the counting) before writing."""
    from mlops.store import StoreError

    versions, version = _published(file_store, _table(1000))
    rows_file = file_store.root / "data" / "data" / "versions" / version.id / version.data_file
    table = pq.read_table(rows_file)
    pq.write_table(table.set_column(0, "x", pa.array(np.zeros(len(table)))), rows_file)
    with pytest.raises(StoreError, match="do not match their recorded sha256"):
        split_version(file_store, version.full_ref, "target", SplitConfig(), _paths(tmp_path))
    assert not any(tmp_path.joinpath(f"{name}.parquet").exists() for name in SPLITS)


def test_the_preflight_of_a_data_version_reads_its_keys_and_target_column(file_store, monkeypatch):
    """stored_train_target gives train_target's answer (and errors) without reading the whole table;
    the CLI's pre-flight of NAME@ID goes through it."""
    from mlops.cli.run import preflight
    from mlops.stages.split import stored_train_target, train_target

    table = _table(3000).append_column("empty", pa.nulls(3000, pa.float64()))
    versions, version = _published(file_store, table)
    whole = train_target(versions.read_table(version), "target", SplitConfig(), keys=versions.read_keys(version))
    monkeypatch.setattr(DataVersions, "read_table", lambda *args: pytest.fail("read the whole table"))
    column, train = stored_train_target(file_store, version.full_ref, "target", SplitConfig())
    assert column == whole[0] and len(train) > 1500
    pd.testing.assert_series_equal(train, whole[1])
    assert preflight(version.full_ref, "target", "auto", SplitConfig(), file_store) == ("target", "regression")
    with pytest.raises(StageError, match="target column 'empty' is empty in every row"):
        stored_train_target(file_store, version.full_ref, "empty", SplitConfig())


def test_rows_that_are_not_parquet_any_more_are_named_by_their_checksum(tmp_path, file_store):
    """Bytes that no longer parse: the stage and the pre-flight say the store was changed (one line), not
    what the Parquet reader says."""
    from mlops.stages.split import stored_train_target
    from mlops.store import StoreError

    versions, version = _published(file_store, _table(1000))
    (file_store.root / "data" / "data" / "versions" / version.id / version.data_file).write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="do not match their recorded sha256"):
        split_version(file_store, version.full_ref, "target", SplitConfig(), _paths(tmp_path))
    with pytest.raises(StoreError, match="do not match their recorded sha256"):
        stored_train_target(file_store, version.full_ref, "target", SplitConfig())
