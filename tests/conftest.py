"""Shared fixtures: real demo data (from scikit-learn's bundled files) and stores."""

import os
import uuid
from pathlib import Path

import pandas as pd
import pytest

from mlops.data.demo import write_demo_data
from mlops.runners.minio_local import MinioServer, minio_binary
from mlops.store.fs import FileStore
from mlops.store.s3 import S3Store


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> dict[str, Path]:
    """demo-wine.csv (multiclass), demo-breast-cancer.csv (binary), demo-diabetes.csv (regression),
    keyed wine, breast_cancer and diabetes."""
    directory = tmp_path_factory.mktemp("demo-data")
    return {path.stem.removeprefix("demo-").replace("-", "_"): path for path in write_demo_data(directory)}


@pytest.fixture(scope="session")
def wine_frame(demo_data) -> pd.DataFrame:
    return pd.read_csv(demo_data["wine"])


def _ingested(frame: pd.DataFrame):
    """``frame`` through the ingest stage's own path: written as CSV, read, checked and renamed (Arrow)."""
    from mlops.stages.ingest import clean_table, read_table

    return clean_table(read_table(frame.to_csv(index=False).encode("utf-8"), "frame.csv"))[0]


@pytest.fixture(scope="session")
def clean_like_a_run():
    """A function: a DataFrame as the ingest stage hands it on (cleaned names, checked cells)."""
    return lambda frame: _ingested(frame).to_pandas()


@pytest.fixture(scope="session")
def split_like_a_run():
    """A function: clean and split a DataFrame as the ingest and split stages do in a run (one path,
    Arrow); the SplitResult's ``frames()`` are the splits as the later stages read them."""
    from mlops.stages.split import SplitConfig, split_table

    def split(frame: pd.DataFrame, target: str, config=None, **kwargs):
        return split_table(_ingested(frame), target, config or SplitConfig(), **kwargs)

    return split


@pytest.fixture
def file_store(tmp_path) -> FileStore:
    return FileStore(tmp_path / "store")


def _minio_binary_or_skip():
    binary = minio_binary()
    if not binary.exists():
        if os.environ.get("CI"):
            pytest.fail(f"MinIO server binary missing at {binary} (CI must run `make minio-bin`)")
        pytest.skip(f"MinIO server binary missing at {binary}: run `make minio-bin`")
    return binary


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory):
    """A real MinIO on a free loopback port, with random credentials, for the whole session."""
    binary = _minio_binary_or_skip()
    server = MinioServer.with_random_credentials(tmp_path_factory.mktemp("minio") / "data", binary=binary).start()
    server.create_bucket("test")
    yield server
    server.stop()


@pytest.fixture
def minio_env(minio_server, monkeypatch):
    """The S3 settings of the session's MinIO in the environment (as `source .minio/env` would)."""
    for key, value in minio_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLOPS_STORE_RETRIES", "2")
    return minio_server


@pytest.fixture
def minio_store(minio_env) -> S3Store:
    """An empty store: a fresh prefix in the test bucket."""
    return S3Store.from_uri(f"s3://test/{uuid.uuid4().hex}")


@pytest.fixture(params=["filesystem", "minio"])
def store(request, tmp_path):
    """Every backend of the store interface; the shared suite runs against each."""
    if request.param == "filesystem":
        return FileStore(tmp_path / "store")
    return request.getfixturevalue("minio_store")


@pytest.fixture
def overwrite():
    """A function: write bytes over a stored key behind the store's back, as a holder of its
    credential could (a raw, unconditional S3 PUT; a plain file write), never through ``put``."""

    def write(store, key: str, data: bytes) -> None:
        if isinstance(store, FileStore):
            (store.root / key).write_bytes(data)
        else:
            store.client._put_object(store.bucket, store._key(key), data, headers={})

    return write
