"""Ingest: reading every source, clean names, deterministic splits, content hash, bad input."""

import http.server
import threading

import numpy as np
import pandas as pd
import pytest

from components.ingest import (
    SplitConfig,
    assign_splits,
    content_hash,
    ingest_frame,
    normalize_column_names,
    parse_table,
    read_and_split,
    row_digests,
)
from components.runtime import StageError


@pytest.mark.parametrize("original, expected", [
    ("od280/od315_of_diluted_wines", "od280_od315_of_diluted_wines"),
    ("Age (years)", "age_years"),
    ("  mean radius ", "mean_radius"),
    ("2nd feature", "c_2nd_feature"),   # names must not start with a digit
    ("%%%", "column_0"),                # nothing usable left
])
def test_normalize_column_names(original, expected):
    assert normalize_column_names([original]) == {original: expected}


def test_normalize_column_names_keeps_them_unique():
    assert list(normalize_column_names(["a b", "a-b", "A_B"]).values()) == ["a_b", "a_b_2", "a_b_3"]


def test_split_is_deterministic_and_independent_of_row_order_and_neighbours(wine_frame):
    config = SplitConfig()
    result = ingest_frame(wine_frame, "target", config)
    shuffled = ingest_frame(wine_frame.sample(frac=1.0, random_state=7), "target", config)
    assert result.content_hash == shuffled.content_hash
    for split in ("train", "validation", "test"):
        # the same rows in the same order: training cannot tell the file order
        pd.testing.assert_frame_equal(result.splits[split], shuffled.splits[split])
    # Dropping rows never moves the remaining rows to another split.
    subset = ingest_frame(wine_frame.iloc[:120], "target", config, min_rows_per_split=1)
    for split in ("train", "validation", "test"):
        assert set(row_digests(subset.splits[split])) <= set(row_digests(result.splits[split]))


def test_split_fractions_are_close_to_the_configuration():
    digests = [i.to_bytes(8, "big") for i in range(20000)]
    splits = assign_splits(digests, SplitConfig(validation_fraction=0.2, test_fraction=0.1))
    shares = {name: float(np.mean(splits == name)) for name in ("train", "validation", "test")}
    assert shares["test"] == pytest.approx(0.1, abs=0.01)
    assert shares["validation"] == pytest.approx(0.2, abs=0.01)


def test_salt_changes_the_split_but_not_the_content_hash(wine_frame):
    plain = ingest_frame(wine_frame, "target", SplitConfig())
    salted = ingest_frame(wine_frame, "target", SplitConfig(salt="other"))
    assert plain.content_hash == salted.content_hash
    assert set(row_digests(plain.splits["test"])) != set(row_digests(salted.splits["test"]))


def test_content_hash_ignores_column_order_and_number_spelling():
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    reordered = frame[["b", "a"]]
    as_float = frame.assign(a=[1.0, 2.0])
    assert content_hash(frame) == content_hash(reordered) == content_hash(as_float)
    assert content_hash(frame) != content_hash(frame.assign(a=[1, 3]))


def test_csv_and_parquet_of_the_same_data_have_the_same_hash(tmp_path, wine_frame):
    wine_frame.to_parquet(tmp_path / "wine.parquet", index=False)
    wine_frame.to_csv(tmp_path / "wine.csv", index=False)
    config = SplitConfig()
    assert (read_and_split(str(tmp_path / "wine.parquet"), "target", config).content_hash
            == read_and_split((tmp_path / "wine.csv").as_uri(), "target", config).content_hash)


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


def test_target_may_be_given_by_its_original_name(wine_frame):
    frame = wine_frame.rename(columns={"target": "Wine Class"})
    assert ingest_frame(frame, "Wine Class", SplitConfig()).target == "wine_class"


def test_rows_without_a_target_are_dropped_and_counted(wine_frame):
    frame = wine_frame.copy()
    frame.loc[:9, "target"] = None
    result = ingest_frame(frame, "target", SplitConfig())
    assert result.dropped_missing_target == 10
    assert sum(len(part) for part in result.splits.values()) == len(frame) - 10


# Bad input: each gets one clear line. --------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"   \n\n", "is empty"),
    (b"a,b,target\n", "header but no data rows"),
    (b"a,b\n\xff\xfe,1\n", "not UTF-8 text"),
])
def test_unreadable_files(content, message):
    with pytest.raises(StageError, match=message):
        parse_table(content, "data.csv")


def test_not_a_parquet_file():
    with pytest.raises(StageError, match="not a readable Parquet file"):
        parse_table(b"a,b\n1,2\n", "data.parquet")


def test_missing_file_and_unsupported_scheme(tmp_path):
    with pytest.raises(StageError, match="data file not found"):
        read_and_split(str(tmp_path / "nope.csv"), "target", SplitConfig())
    with pytest.raises(StageError, match="unsupported data URI"):
        read_and_split("ftp://example.invalid/x.csv", "target", SplitConfig())


def test_missing_target_names_the_columns(wine_frame):
    with pytest.raises(StageError, match="target column 'quality' not found; columns are: alcohol, malic_acid"):
        ingest_frame(wine_frame, "quality", SplitConfig())


def test_numeric_column_holding_strings(wine_frame):
    frame = wine_frame.astype({"alcohol": object})
    frame.loc[17, "alcohol"] = "n/a"
    with pytest.raises(StageError, match=r"column 'alcohol' is numeric but holds 1 non-numeric value\(s\), e.g. 'n/a' at row 18"):
        ingest_frame(frame, "target", SplitConfig())


def test_too_few_rows_for_the_split(wine_frame):
    with pytest.raises(StageError, match="too few rows for the split: 12 rows gave train="):
        ingest_frame(wine_frame.iloc[:12], "target", SplitConfig())


@pytest.mark.parametrize("kwargs, message", [
    ({"validation_fraction": 0.0}, "validation_fraction must be a number between 0 and 1"),
    ({"test_fraction": 1.5}, "test_fraction must be a number between 0 and 1"),
    ({"validation_fraction": 0.5, "test_fraction": 0.45}, "must leave at least 10% for training"),
])
def test_split_config_is_validated(kwargs, message):
    with pytest.raises(StageError, match=message):
        SplitConfig(**kwargs)
