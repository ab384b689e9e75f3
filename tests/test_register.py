"""Register's baseline and the report's split views, read from the split files a column or a batch at a
time: the same bytes as from the whole splits in memory."""

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlops.reporting import charts
from mlops.reporting import report as report_stage
from mlops.stages import metrics
from mlops.stages.prepare import fit_preprocessor
from mlops.stages.register import baseline_files
from mlops.stages.split import SPLITS, SplitColumns, SplitConfig, split_table
from mlops.stages.train import train_candidate
from mlops.store.datasets import write_parquet


@pytest.fixture(scope="module")
def split_files(tmp_path_factory):
    """A cleaned table split as the stage splits it, its files written as the stage writes them, and the
    splits as pandas reads them whole."""
    rows = 6000
    rng = np.random.default_rng(3)
    x = rng.normal(size=rows)
    x[rng.random(rows) < 0.05] = np.nan
    colour = rng.choice(["red", "green", "blue"], rows)
    label = np.where(np.nan_to_num(x) + (colour == "red") + rng.normal(0, 1, rows) > 0.5, "yes", "no")
    table = pa.table(
        {
            "x": x,
            "count": pa.array(rng.integers(0, 50, rows), mask=rng.random(rows) < 0.1),
            "colour": colour,
            "label": label,
        }
    )
    result = split_table(table, "label", SplitConfig())
    folder = tmp_path_factory.mktemp("splits")
    paths = {name: str(folder / f"{name}.parquet") for name in SPLITS}
    for name in SPLITS:
        write_parquet(result.splits[name], paths[name])
    return paths, {name: pd.read_parquet(path) for name, path in paths.items()}


def test_a_split_read_a_column_at_a_time_is_the_split_pandas_reads(split_files):
    paths, frames = split_files
    for name, path in paths.items():
        columns = SplitColumns(path)
        assert list(columns.columns) == list(frames[name].columns) and len(columns) == len(frames[name])
        assert "colour" in columns and "nope" not in columns
        for column in frames[name].columns:
            pd.testing.assert_series_equal(columns[column], frames[name][column])
        with pytest.raises(KeyError):
            columns["nope"]


@pytest.mark.parametrize("family", ["random_forest", "logistic_regression"])
def test_the_baseline_from_the_split_files_is_the_baseline_from_the_whole_splits(split_files, monkeypatch, family):
    """The training split profiled a column at a time and the test split predicted a batch at a time
    (several batches here) give the bytes the whole frames give."""
    paths, frames = split_files
    transform, info = fit_preprocessor(frames["train"], "label")
    model, _ = train_candidate(
        {"id": "c01", "family": family, "params": {}},
        transform,
        frames["train"],
        frames["validation"],
        "label",
        info["task"],
        seed=1,
    )
    monkeypatch.setattr(metrics, "BATCH_ROWS", 150)
    assert len(frames["test"]) > 3 * metrics.BATCH_ROWS
    whole = baseline_files(model, frames["train"], frames["test"], "label", b"schema", b"statistics")
    streamed = baseline_files(model, SplitColumns(paths["train"]), paths["test"], "label", b"schema", b"statistics")
    assert streamed == whole


def test_the_report_from_the_split_files_shows_what_the_whole_splits_show(split_files):
    """The shift rows and the distribution charts from split_columns equal those from the whole frames."""
    paths, frames = split_files
    columns = report_stage.split_columns(paths)
    assert report_stage.train_validation_shift(columns) == report_stage.train_validation_shift(frames)

    def chart(views) -> str:
        return re.sub(r"chart\d+-", "chart-", charts.split_distributions(views, target="label"))

    assert chart(columns) == chart(frames)
