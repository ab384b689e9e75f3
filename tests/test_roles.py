"""Least privilege on a real MinIO: each role can do its job and is refused the rest."""

import json
import uuid

import pytest

from mlops.runners.minio_local import random_role_credentials
from mlops.store import StoreError
from mlops.store.datasets import DataVersions
from mlops.store.registry import ModelRegistry
from mlops.store.roles import ARTIFACTS_ROLE, KFP_ARTIFACT_BUCKET, bootstrap, policies, role_environment
from mlops.store.s3 import S3Store

pytestmark = pytest.mark.minio
BUCKET = "roles"


@pytest.fixture(scope="module")
def roles(minio_server):
    """Role users on the session's MinIO (made with its root credential, as `make minio-up` does)."""
    credentials = random_role_credentials()
    credentials[ARTIFACTS_ROLE] = (f"mlops-artifacts-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex)
    bootstrap(minio_server.endpoint, minio_server.access_key, minio_server.secret_key, credentials, bucket=BUCKET)
    return credentials


@pytest.fixture
def as_roles(roles, minio_server, monkeypatch):
    """The environment a task sees locally: the endpoint and every role's credential, no root."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", minio_server.endpoint)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("MLOPS_STORE_RETRIES", "0")
    for key, value in role_environment(roles).items():
        monkeypatch.setenv(key, value)
    return lambda role: S3Store.from_uri(f"s3://{BUCKET}/store", role=role)


@pytest.fixture
def name():
    """A model or data set name of this test's own (the policies cover the whole store prefix)."""
    return f"m{uuid.uuid4().hex[:8]}"


def _refused(action, role):
    with pytest.raises(StoreError, match=f"refused the {role} role while .* \\(AccessDenied\\)"):
        action()


def test_the_pipeline_role_writes_data_schemas_and_the_log_but_never_models(as_roles, wine_frame, name):
    store = as_roles("pipeline")
    version, _ = DataVersions(store).publish(name, wine_frame, source="x")
    store.create(f"schemas/{name}/baseline.pbtxt", b"feature {}")
    store.create(f"monitor/{name}/log/1.json", b"{}")
    assert DataVersions(store).read_frame(version).shape == wine_frame.shape
    _refused(lambda: ModelRegistry(store).register(name, {"model.skops": b"m"}, metrics={}, lineage={}), "pipeline")
    _refused(lambda: store.delete(f"data/{name}/versions/{version.id}/manifest.json"), "pipeline")


def test_the_registry_role_writes_models_and_aliases_only(as_roles, wine_frame, name):
    registry_store = as_roles("registry")
    registry = ModelRegistry(registry_store)
    version = registry.register(name, {"model.skops": b"m"}, metrics={}, lineage={})
    registry.set_alias(name, "champion", version.version)
    assert registry.champion(name).version == 1
    _refused(lambda: DataVersions(registry_store).publish(name, wine_frame, source="x"), "registry")
    _refused(lambda: registry_store.create(f"schemas/{name}/baseline.pbtxt", b"x"), "registry")


def test_the_reader_role_reads_and_writes_nothing(as_roles, name):
    ModelRegistry(as_roles("registry")).register(name, {"model.skops": b"m"}, metrics={}, lineage={})
    reader = as_roles("reader")
    assert [v.version for v in ModelRegistry(reader).versions(name)] == [1]
    _refused(lambda: ModelRegistry(reader).set_alias(name, "champion", 1), "reader")
    _refused(lambda: reader.put("data/x", b"x"), "reader")


def test_the_artifact_role_is_kfps_alone(as_roles, roles, monkeypatch):
    access, secret = roles[ARTIFACTS_ROLE]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    artifacts = S3Store.from_uri(f"s3://{KFP_ARTIFACT_BUCKET}/v2")
    artifacts.put("artifacts/run/x", b"x")
    assert artifacts.read("artifacts/run/x") == b"x"
    ours = S3Store.from_uri(f"s3://{BUCKET}/store")
    with pytest.raises(StoreError, match="AccessDenied"):
        ours.read("data/anything")


def test_the_policies_the_deploy_creates_are_the_ones_tested_here():
    """manifests/base/minio/policies/*.json are generated from mlops/store/roles.py."""
    from mlops.config import PROJECT_ROOT

    directory = PROJECT_ROOT / "manifests" / "base" / "minio" / "policies"
    for role, document in policies().items():
        committed = json.loads((directory / f"{role}.json").read_text())
        assert committed == document, f"{role}.json is stale: run `python -m mlops.store.roles`"
