"""Data versions and pointer files, on every store backend."""

import json

import pytest

from mlops.data.pointer import PointerError, read_pointer, resolve_data_argument, write_pointer
from mlops.store import NotFound, StoreError
from mlops.store.datasets import DataVersions


def test_same_content_is_the_same_version_whatever_the_row_or_column_order(store, wine_frame):
    versions = DataVersions(store)
    first, new = versions.publish("wine", wine_frame, source="a.csv")
    shuffled = wine_frame.sample(frac=1.0, random_state=3)[list(reversed(wine_frame.columns))]
    again, new_again = versions.publish("wine", shuffled, source="b.parquet")
    assert new and not new_again and again.id == first.id
    assert len(versions.versions("wine")) == 1
    assert versions.read_frame(first).equals(versions.read_frame(again))


def test_changed_data_is_a_new_version_and_latest_follows(store, wine_frame):
    versions = DataVersions(store)
    first, _ = versions.publish("wine", wine_frame, source="v1")
    second, _ = versions.publish("wine", wine_frame.iloc[:100], source="v2")
    assert first.id != second.id
    assert versions.resolve("wine@latest").id == second.id
    assert versions.resolve(f"wine@{first.id[:8]}").id == first.id
    assert len(versions.read_frame(versions.resolve("wine@latest"))) == 100
    assert versions.names() == ["wine"]


def test_references_that_do_not_resolve(store, wine_frame):
    versions = DataVersions(store)
    with pytest.raises(NotFound, match="no data set 'wine'"):
        versions.resolve("wine@latest")
    versions.publish("wine", wine_frame, source="x")
    with pytest.raises(NotFound, match="has no version 'deadbeef'"):
        versions.resolve("wine@deadbeef")
    with pytest.raises(StoreError, match="data version reference 'wine' is malformed: use NAME@VERSION"):
        versions.resolve("wine")


def test_a_push_that_died_before_its_manifest_is_invisible_and_can_be_redone(store, wine_frame, clean_like_a_run):
    versions = DataVersions(store)
    frame = clean_like_a_run(wine_frame)
    version, _ = versions.publish("wine", frame, source="x")
    store.delete(f"data/wine/versions/{version.id}/manifest.json")  # as if the writer died here
    assert versions.versions("wine") == []
    again, new = versions.publish("wine", frame, source="x")
    assert new and again.id == version.id


def test_stored_data_is_checked_against_its_hash(file_store, wine_frame, overwrite):
    versions = DataVersions(file_store)
    version, _ = versions.publish("wine", wine_frame, source="x")
    overwrite(file_store, f"data/wine/versions/{version.id}/{version.data_file}", b"tampered")
    with pytest.raises(StoreError, match="do not match their recorded sha256 .*changed outside this tool"):
        versions.read_frame(version)


def test_on_minio_an_overwritten_data_version_is_read_as_published(minio_store, wine_frame, overwrite, capsys):
    """A raw PUT over the rows and the manifest (which names them and their sha256) changes nothing read."""
    versions = DataVersions(minio_store)
    version, _ = versions.publish("wine", wine_frame, source="x")
    prefix = f"data/wine/versions/{version.id}/"
    forged = {**{k: v for k, v in version.to_json().items() if k != "ref"}, "rows": 1, "source": "forged"}
    overwrite(minio_store, prefix + version.data_file, b"tampered")
    overwrite(minio_store, prefix + "manifest.json", json.dumps(forged).encode())
    again = versions.resolve(f"wine@{version.id}")
    assert again.source == "x" and again.rows == len(wine_frame)
    assert versions.read_frame(again).shape == wine_frame.shape
    assert "was overwritten after it was published" in capsys.readouterr().err


def test_pointer_files_round_trip(tmp_path, file_store, wine_frame):
    version, _ = DataVersions(file_store).publish("wine", wine_frame, source="x")
    path = write_pointer(tmp_path / "wine.data.yaml", version, file_store.uri)
    assert read_pointer(path)["ref"] == f"wine@{version.id}"
    assert resolve_data_argument(str(path)) == f"wine@{version.id}"
    assert resolve_data_argument("data/wine.csv") == "data/wine.csv"
    (tmp_path / "bad.data.yaml").write_text("name: wine\n")
    with pytest.raises(PointerError, match="needs 'name' and 'version'"):
        read_pointer(tmp_path / "bad.data.yaml")
    (tmp_path / "number.data.yaml").write_text("name: wine\nversion: 12345678\n")
    with pytest.raises(PointerError, match="'version' must be a quoted string"):
        read_pointer(tmp_path / "number.data.yaml")
    with pytest.raises(PointerError, match="end in .data.yaml"):
        write_pointer(tmp_path / "wine.yaml", version, file_store.uri)


def test_the_gitops_pointer_pins_the_demo_wine_data(demo_data, file_store):
    """manifests/gitops/demo-wine.data.yaml must name the version `mlops data push` gives the demo data."""
    from mlops.config import PROJECT_ROOT
    from mlops.stages.ingest import ingest_source

    pointer = read_pointer(PROJECT_ROOT / "manifests" / "gitops" / "demo-wine.data.yaml")
    version = ingest_source(str(demo_data["wine"]), file_store, "demo-wine").version
    assert pointer["ref"] == f"demo-wine@{version.id}" and pointer["rows"] == version.rows


def test_parquet_compresses_the_columns_it_shrinks_and_equal_tables_give_equal_files(tmp_path):
    """Snappy where it earns its time (not on noise-like floats), no text statistics, and the
    choice depends on the content only: equal tables, equal bytes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops.store.datasets import write_parquet

    rng = np.random.default_rng(3)
    rows = 100_000
    table = pa.table(
        {
            "noise": rng.normal(size=rows),
            "counts": rng.integers(0, 5, rows).astype(float),
            "word": rng.choice(["alpha", "beta"], rows),
            "n": rng.integers(0, 9, rows),
        }
    )
    for name in ("a", "b"):
        write_parquet(table, tmp_path / f"{name}.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert pq.read_table(tmp_path / "a.parquet").equals(table)
    group = pq.ParquetFile(tmp_path / "a.parquet").metadata.row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    assert {name: column.compression for name, column in columns.items()} == {
        "noise": "UNCOMPRESSED",
        "counts": "SNAPPY",
        "word": "SNAPPY",
        "n": "SNAPPY",
    }
    assert {name for name, column in columns.items() if column.is_stats_set} == {"noise", "counts", "n"}
