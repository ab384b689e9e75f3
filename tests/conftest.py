"""Shared fixtures: real demo data (from scikit-learn's bundled files) and stores."""

from pathlib import Path

import pandas as pd
import pytest

from components.storage.fs import FileStore
from pipelines.demo_data import write_demo_data



@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> dict[str, Path]:
    """wine.csv (multiclass), breast_cancer.csv (binary), diabetes.csv (regression)."""
    directory = tmp_path_factory.mktemp("demo-data")
    return {path.stem: path for path in write_demo_data(directory)}


@pytest.fixture(scope="session")
def wine_frame(demo_data) -> pd.DataFrame:
    return pd.read_csv(demo_data["wine"])


@pytest.fixture
def file_store(tmp_path) -> FileStore:
    return FileStore(tmp_path / "store")


@pytest.fixture(params=["filesystem"])
def store(request, tmp_path):
    """Every backend of the store interface (MinIO joins in test_store_minio)."""
    return FileStore(tmp_path / "store")
