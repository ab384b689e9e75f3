"""Ingest: reading every source, clean names, deterministic splits, content hash, bad input."""

import http.server
import json
import threading

import numpy as np
import pandas as pd
import pytest

from mlops.data.content import content_hash, row_keys
from mlops.errors import StageError
from mlops.stages.ingest import clean_table, ingest_source, load_table, normalize_column_names, read_table
from mlops.stages.split import SplitConfig, assign_splits, split_table, split_version
from mlops.store.datasets import DataVersions


def digest_set(frame) -> set[int]:
    """The rows of a frame, by their content keys."""
    return set(row_keys(frame).tolist())


def read_and_split(uri, target, config):
    return split_table(clean_table(load_table(uri))[0], target, config)


@pytest.mark.parametrize(
    "original, expected",
    [
        ("od280/od315_of_diluted_wines", "od280_od315_of_diluted_wines"),
        ("Age (years)", "age_years"),
        ("  mean radius ", "mean_radius"),
        ("2nd feature", "c_2nd_feature"),  # names must not start with a digit
        ("%%%", "column_0"),  # nothing usable left
    ],
)
def test_normalize_column_names(original, expected):
    assert normalize_column_names([original]) == {original: expected}


def test_two_columns_that_clean_to_the_same_name_are_refused_naming_both():
    with pytest.raises(StageError, match="columns 'Quality Class' and 'quality_class' both clean to 'quality_class'"):
        normalize_column_names(["Quality Class", "alcohol", "quality_class"])


def test_split_is_deterministic_and_independent_of_row_order_and_neighbours(wine_frame, split_like_a_run):
    config = SplitConfig()
    result = split_like_a_run(wine_frame, "target", config)
    shuffled = split_like_a_run(wine_frame.sample(frac=1.0, random_state=7), "target", config)
    for split in ("train", "validation", "test"):
        # the same rows in the same order: training cannot tell the file order
        pd.testing.assert_frame_equal(result.frames()[split], shuffled.frames()[split])
    # Dropping rows never moves the remaining rows to another split.
    subset = split_like_a_run(wine_frame.iloc[:120], "target", config, min_rows_per_split=1)
    for split in ("train", "validation", "test"):
        assert digest_set(subset.splits[split]) <= digest_set(result.splits[split])


def test_split_fractions_are_close_to_the_configuration():
    keys = np.random.default_rng(0).integers(0, 2**63, 20000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    splits = assign_splits(keys, SplitConfig(validation_fraction=0.2, test_fraction=0.1))
    shares = {name: float(np.mean(splits == name)) for name in ("train", "validation", "test")}
    assert shares["test"] == pytest.approx(0.1, abs=0.01)
    assert shares["validation"] == pytest.approx(0.2, abs=0.01)


def test_salt_changes_the_split(wine_frame, split_like_a_run):
    plain = split_like_a_run(wine_frame, "target", SplitConfig())
    salted = split_like_a_run(wine_frame, "target", SplitConfig(salt="other"))
    assert digest_set(plain.splits["test"]) != digest_set(salted.splits["test"])


def test_content_hash_ignores_column_order_and_number_spelling():
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    reordered = frame[["b", "a"]]
    as_float = frame.assign(a=[1.0, 2.0])
    assert content_hash(frame) == content_hash(reordered) == content_hash(as_float)
    assert content_hash(frame) != content_hash(frame.assign(a=[1, 3]))


def test_csv_and_parquet_of_the_same_data_are_the_same_data_version(tmp_path, wine_frame, file_store):
    wine_frame.to_parquet(tmp_path / "wine.parquet", index=False)
    wine_frame.to_csv(tmp_path / "wine.csv", index=False)
    from_parquet = ingest_source(str(tmp_path / "wine.parquet"), file_store)
    from_csv = ingest_source((tmp_path / "wine.csv").as_uri(), file_store)
    assert from_parquet.new and not from_csv.new and from_parquet.version.id == from_csv.version.id
    assert from_csv.version.source == str(tmp_path / "wine.parquet")  # the first publisher's source
    assert from_csv.source == (tmp_path / "wine.csv").as_uri()  # what this run read


def test_reads_over_http(tmp_path, wine_frame):
    wine_frame.to_csv(tmp_path / "wine.csv", index=False)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        result = read_and_split(f"{base}/wine.csv", "target", SplitConfig())
        assert sum(len(part) for part in result.splits.values()) == len(wine_frame)
        with pytest.raises(StageError, match="HTTP 404"):
            read_and_split(f"{base}/missing.csv", "target", SplitConfig())
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    "original, cleaned",
    [
        ("Wine Class", "wine_class"),  # a space and capitals
        ("Survived", "survived"),  # a capital
        ("Quality (1-10)!", "quality_1_10"),  # punctuation
    ],
)
def test_target_may_be_given_by_its_original_name(wine_frame, original, cleaned, split_like_a_run):
    frame = wine_frame.rename(columns={"target": original})
    assert split_like_a_run(frame, original, SplitConfig()).target == cleaned
    assert split_like_a_run(frame, cleaned, SplitConfig()).target == cleaned


def test_rows_without_a_target_are_dropped_and_counted(wine_frame, split_like_a_run):
    frame = wine_frame.copy()
    frame.loc[:9, "target"] = None
    result = split_like_a_run(frame, "target", SplitConfig())
    assert result.dropped_missing_target == 10
    assert sum(len(part) for part in result.splits.values()) == len(frame) - 10


# Bad input: each gets one clear line. --------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (b"a,b,target\n", "header but no data rows"),
        (b"a,b\n\xff\xfe,1\n", "not UTF-8 text"),
    ],
)
def test_unreadable_files(content, message):
    with pytest.raises(StageError, match=message):
        read_table(content, "data.csv")


def test_not_a_parquet_file():
    with pytest.raises(StageError, match="not a readable Parquet file"):
        read_table(b"a,b\n1,2\n", "data.parquet")


def test_missing_file_and_unsupported_scheme(tmp_path):
    with pytest.raises(StageError, match="data file not found"):
        read_and_split(str(tmp_path / "nope.csv"), "target", SplitConfig())
    with pytest.raises(StageError, match="unsupported data URI"):
        read_and_split("ftp://example.invalid/x.csv", "target", SplitConfig())


def test_a_url_with_a_port_that_is_not_a_number():
    with pytest.raises(StageError, match="invalid data URI http://host:abc/x.csv: Port could not be cast"):
        load_table("http://host:abc/x.csv")


def test_non_finite_values_are_refused_with_column_and_row(wine_frame, split_like_a_run):
    frame = wine_frame.copy()
    frame.loc[41, "magnesium"] = float("inf")
    with pytest.raises(StageError, match=r"column 'magnesium' holds a non-finite value \(inf\) at row 42"):
        split_like_a_run(frame, "target", SplitConfig())


def test_nested_parquet_columns_are_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1, 2], "tags": [[1, 2], [3]]}), tmp_path / "nested.parquet")
    with pytest.raises(StageError, match="column 'tags' is nested"):
        load_table(str(tmp_path / "nested.parquet"))
    pq.write_table(pa.table({"x": [1, 2], "tags": [{"a": 1}, {"b": 2}]}), tmp_path / "struct.parquet")
    with pytest.raises(StageError, match="column 'tags' is nested"):
        load_table(str(tmp_path / "struct.parquet"))


def test_missing_target_names_the_columns(wine_frame, split_like_a_run):
    with pytest.raises(StageError, match="target column 'quality' not found; columns are: alcohol, malic_acid"):
        split_like_a_run(wine_frame, "quality", SplitConfig())


def test_numeric_column_holding_strings(wine_frame, split_like_a_run):
    frame = wine_frame.astype({"alcohol": object})
    frame.loc[17, "alcohol"] = "12,5"  # a decimal comma ("n/a" is a missing value, as in pandas)
    with pytest.raises(
        StageError, match=r"column 'alcohol' is numeric but holds 1 non-numeric value\(s\), e.g. '12,5' at row 18"
    ):
        split_like_a_run(frame, "target", SplitConfig())


def test_too_few_rows_for_the_split(wine_frame, split_like_a_run):
    with pytest.raises(StageError, match="too few rows for the split: 12 rows gave train="):
        split_like_a_run(wine_frame.iloc[:12], "target", SplitConfig())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"validation_fraction": 0.0}, "validation_fraction must be a number between 0 and 1"),
        ({"test_fraction": 1.5}, "test_fraction must be a number between 0 and 1"),
        ({"validation_fraction": 0.5, "test_fraction": 0.45}, "must leave at least 10% for training"),
    ],
)
def test_split_config_is_validated(kwargs, message):
    with pytest.raises(StageError, match=message):
        SplitConfig(**kwargs)


@pytest.mark.parametrize(
    "csv, message",
    [
        (
            b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(30)) + b"n/a?,y\n",
            r"column 'a' is numeric but holds 1 non-numeric value\(s\), e.g. 'n/a\?' at row 31",
        ),
        (b"a,b\n1.5,x\ninf,y\n2.5,z\n", r"column 'a' holds a non-finite value \(inf\) at row 2"),
        (b"A b,a_b\n1,2\n", "columns 'A b' and 'a_b' both clean to 'a_b'"),
        (b"a,b\n1,x\xff\n2,y\n", r"not UTF-8 text \(byte 0xff at offset 7\)"),
    ],
)
def test_bad_input_is_refused_by_the_stage_and_publishes_nothing(tmp_path, csv, message):
    """ingest_source refuses what clean_table and read_table refuse, with the same line."""
    from mlops.store.fs import FileStore

    path = tmp_path / "bad.csv"
    path.write_bytes(csv)
    with pytest.raises(StageError, match=message):
        ingest_source(str(path), FileStore(tmp_path / "store"), "bad")
    assert not (tmp_path / "store" / "data").exists()  # nothing published
    with pytest.raises(StageError, match=message):
        clean_table(read_table(csv, "bad.csv"))


def test_ingest_of_a_csv_gives_the_version_the_pandas_frame_gives(tmp_path, wine_frame):
    """A CSV ingested (Arrow) and the same rows published as a DataFrame are one data version."""
    from mlops.store.fs import FileStore

    wine_frame.to_csv(tmp_path / "wine.csv", index=False)
    store = FileStore(tmp_path / "store")
    ingested = ingest_source(str(tmp_path / "wine.csv"), store, "wine")
    cleaned = wine_frame.rename(columns=ingested.columns)
    again, new = DataVersions(store).publish("wine", cleaned, source="frame")
    assert again.id == ingested.version.id and not new


def test_the_split_stage_writes_the_splits_an_in_memory_split_gives(tmp_path, wine_frame):
    """split_version (the stage: a stored version, its stored keys) and split_table of the cleaned
    table (keys computed, rows ordered) give the same rows in the same order, also as pandas reads
    the stage's Parquet files; so does a version stored before split keys were."""
    import pyarrow.parquet as pq

    from mlops.store.fs import FileStore

    wine_frame.to_csv(tmp_path / "wine.csv", index=False)
    store = FileStore(tmp_path / "store")
    version = ingest_source(str(tmp_path / "wine.csv"), store, "wine").version
    in_memory = split_table(clean_table(load_table(str(tmp_path / "wine.csv")))[0], "target", SplitConfig())
    paths = {name: str(tmp_path / f"{name}.parquet") for name in ("train", "validation", "test")}
    stage = split_version(store, version.full_ref, "target", SplitConfig(), paths)
    assert stage.rows == in_memory.rows and sum(stage.rows.values()) == len(wine_frame)
    for name, path in paths.items():
        assert pq.read_table(path).equals(in_memory.splits[name])
        pd.testing.assert_frame_equal(pd.read_parquet(path), in_memory.frames()[name])
    # A manifest without keys (written before split keys were): keyed and ordered again, the same split.
    manifest = tmp_path / "store" / "data" / "wine" / "versions" / version.id / "manifest.json"
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "keys_file": None, "keys_sha256": None}))
    old = split_version(store, version.full_ref, "target", SplitConfig(), paths)
    assert old.rows == in_memory.rows
    for name, path in paths.items():
        assert pq.read_table(path).equals(in_memory.splits[name])


def test_columns_checked_in_parallel_report_the_first_bad_column_in_file_order(monkeypatch):
    """Large tables are checked a column per core: the error must still name the first bad column."""
    import pyarrow as pa

    from mlops.data import content

    monkeypatch.setattr(content, "usable_cores", lambda: 2)
    rows = 120_000
    infinite = pa.array(np.r_[np.ones(rows - 1), np.inf])
    stray = pa.array(["1"] * (rows - 1) + ["oops"])
    with pytest.raises(StageError, match="column 'a' holds a non-finite value"):
        clean_table(pa.table({"a": infinite, "b": stray}))
    with pytest.raises(StageError, match="column 'b' is numeric but holds 1 non-numeric value"):
        clean_table(pa.table({"b": stray, "a": infinite}))
