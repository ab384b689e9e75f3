"""Streamed ingest (a source past MLOPS_INGEST_STREAM_OVER_MB): the same data version as reading the
file whole, in record batches through an external sort (mlops.data.content_stream)."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlops.data import content
from mlops.data.content_stream import ExternalOrder
from mlops.errors import StageError
from mlops.stages import ingest
from mlops.store.datasets import DataVersions
from mlops.store.fs import FileStore


@pytest.fixture
def small_batches(monkeypatch):
    """Many batches and several buckets on a table of tens of thousands of rows."""
    monkeypatch.setattr(ingest, "STREAM_BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(ingest, "STREAM_BATCH_ROWS", 4_000)
    monkeypatch.setattr("mlops.data.content_stream.BUCKET_SOURCE_BYTES", 1 << 18)


def a_table(rows: int = 30_000) -> pd.DataFrame:
    """Every kind of column a CSV gives, including ones whose type only shows after the first blocks."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "Reading (mm)": rng.normal(size=rows).round(4),
            "colour": rng.choice(["red", "green", None], rows),
            "count": rng.integers(0, 9, rows),
            "flag": rng.choice([True, False], rows),
            "big": np.full(rows, 2**60) + rng.integers(0, 3, rows),
            "label": rng.integers(0, 2, rows),
        }
    )
    frame["empty_at_first"] = np.where(np.arange(rows) > rows - 500, 7, None)  # null, then integers
    frame["int_then_float"] = pd.Series(np.arange(rows), dtype=object).where(np.arange(rows) != rows - 3, 0.5)
    # numbers, then (in the last fifth) words: a text column, though its first blocks read as integers
    frame["int_then_text"] = pd.Series(np.arange(rows) % 5, dtype=object).where(np.arange(rows) < rows * 0.8, "x")
    return pd.concat([frame, frame.iloc[:50]])  # duplicated rows too


def published(path, tmp_path, stream: bool, monkeypatch):
    monkeypatch.setenv("MLOPS_INGEST_STREAM_OVER_MB", "0" if stream else "100000")
    assert ingest.streams(str(path)) is stream
    store = FileStore(tmp_path / f"store-{path.name}-{stream}")
    result = ingest.ingest_source(str(path), store, "t")
    versions = DataVersions(store)
    return result, versions.read_table(result.version), versions.read_keys(result.version)


def test_a_streamed_csv_is_the_version_the_whole_file_gives(tmp_path, small_batches, monkeypatch):
    path = tmp_path / "table.csv"
    a_table().to_csv(path, index=False)
    whole, whole_rows, whole_keys = published(path, tmp_path, False, monkeypatch)
    streamed, rows, keys = published(path, tmp_path, True, monkeypatch)
    assert streamed.version.id == whole.version.id
    assert rows.equals(whole_rows)  # the same types (widened as the whole read infers them), rows and order
    assert np.array_equal(keys, whole_keys)
    assert streamed.columns == whole.columns and streamed.version.columns == whole.version.columns
    assert rows.schema.field("int_then_text").type == pa.string()
    assert rows.schema.field("int_then_float").type == pa.float64()
    assert rows.schema.field("empty_at_first").type == pa.int64()


def test_a_streamed_parquet_file_in_another_row_order_is_the_same_version(tmp_path, small_batches, monkeypatch):
    csv, parquet = tmp_path / "table.csv", tmp_path / "shuffled.parquet"
    frame = a_table().drop(columns=["int_then_float", "int_then_text", "empty_at_first"])
    frame.to_csv(csv, index=False)
    frame.assign(count=frame["count"].astype(float)).sample(frac=1, random_state=1).to_parquet(parquet, index=False)
    from_csv, _, csv_keys = published(csv, tmp_path, True, monkeypatch)
    from_parquet, rows, keys = published(parquet, tmp_path, True, monkeypatch)
    assert from_parquet.version.id == from_csv.version.id  # row order, format and 1 vs 1.0 do not count
    assert np.array_equal(keys, csv_keys)
    assert rows.num_rows == len(frame)


def test_the_external_order_equals_the_in_memory_one():
    rng = np.random.default_rng(3)
    table = pa.table({"x": rng.normal(size=20_000), "s": rng.choice(["a", "b", "c"], 20_000), "n": [None] * 20_000})
    table = pa.concat_tables([table, table.slice(0, 10)])
    whole = content.keyed(table)
    parts: list = []
    order = ExternalOrder(__import__("pathlib").Path(__import__("tempfile").mkdtemp()), bits=3)
    for start in range(0, table.num_rows, 3_000):
        order.add(table.slice(start, 3_000))
    streamed = order.finish(parts.append)
    assert streamed.id == content.hash_of(whole)
    assert pa.concat_tables(parts).equals(table.take(pa.array(whole.order)))
    assert np.frombuffer(streamed.keys, ">u8").tolist() == whole.keys[whole.order].tolist()


@pytest.mark.parametrize(
    "csv, message",
    [
        (b"", "is empty"),
        (b"a,b,target\n", "header but no data rows"),
        (
            b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(3000)) + b"n/a?,y\n",
            r"column 'a' is numeric but holds 1 non-numeric value\(s\), e.g. 'n/a\?' at row 3001",
        ),
        (b"a,b\n" + b"1.5,x\n" * 3000 + b"inf,y\n", r"column 'a' holds a non-finite value \(inf\) at row 3001"),
        (b"A b,a_b\n1,2\n", "columns 'A b' and 'a_b' both clean to 'a_b'"),
        (b"a,b\n" + b"1,x\n" * 3000 + b"2,y\xff\n", r"not UTF-8 text \(byte 0xff at offset 12007\)"),
        (b"a,b\n1,x\xff\n2,y\n", r"not UTF-8 text \(byte 0xff at offset 7\)"),
    ],
)
def test_bad_input_is_refused_in_one_line_and_nothing_is_published(tmp_path, monkeypatch, csv, message):
    monkeypatch.setattr(ingest, "STREAM_BLOCK_BYTES", 4096)
    monkeypatch.setenv("MLOPS_INGEST_STREAM_OVER_MB", "0")
    path = tmp_path / "bad.csv"
    path.write_bytes(csv)
    store = FileStore(tmp_path / "store")
    with pytest.raises(StageError, match=message):
        ingest.ingest_source(str(path), store, "bad")
    assert store.list("data/") == []


def test_only_local_files_past_the_threshold_stream(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 300_000)  # 1.2 MB
    monkeypatch.setenv("MLOPS_INGEST_STREAM_OVER_MB", "1")
    assert ingest.streams(str(path)) and ingest.streams(path.as_uri())
    monkeypatch.setenv("MLOPS_INGEST_STREAM_OVER_MB", "2")
    assert not ingest.streams(str(path))
    monkeypatch.setenv("MLOPS_INGEST_STREAM_OVER_MB", "0")
    assert not ingest.streams("https://example.invalid/t.csv") and not ingest.streams("s3://bucket/t.csv")


def test_the_preflight_of_a_big_file_reads_the_target_column(tmp_path, small_batches, monkeypatch):
    from mlops.cli.run import preflight
    from mlops.stages.split import SplitConfig

    path = tmp_path / "table.csv"
    a_table().rename(columns={"label": "Label Class"}).to_csv(path, index=False)
    monkeypatch.setenv("MLOPS_INGEST_STREAM_OVER_MB", "0")
    store = FileStore(tmp_path / "store")
    assert preflight(str(path), "Label Class", "auto", SplitConfig(), store) == ("label_class", "classification")
    assert preflight(str(path), "reading_mm", "auto", SplitConfig(), store) == ("reading_mm", "regression")
    with pytest.raises(StageError, match="target column 'nope' not found"):
        preflight(str(path), "nope", "auto", SplitConfig(), store)
    with pytest.raises(StageError, match="has only one class"):
        preflight(str(path), "empty_at_first", "classification", SplitConfig(), store)
    assert store.list("data/") == []


def test_a_big_source_in_minio_streams_from_a_downloaded_file(tmp_path, small_batches, minio_store, monkeypatch):
    """An s3:// source is downloaded to a file a block at a time, then ingested as a local file is."""
    from mlops.store.s3 import S3Store

    path = tmp_path / "table.csv"
    a_table(8_000).to_csv(path, index=False)
    S3Store.from_uri("s3://test").put("raw/big-table.csv", path.read_bytes())
    local, _, _ = published(path, tmp_path, True, monkeypatch)
    streamed = ingest.ingest_source("s3://test/raw/big-table.csv", minio_store, "t")
    assert streamed.version.id == local.version.id
    assert streamed.source == "s3://test/raw/big-table.csv"
    assert (
        DataVersions(minio_store).read_keys(streamed.version).tolist()
        == DataVersions(FileStore(tmp_path / f"store-{path.name}-True")).read_keys(local.version).tolist()
    )
