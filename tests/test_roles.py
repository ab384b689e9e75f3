"""Least privilege on a real MinIO: each role can do its job and is refused the rest."""

import datetime as dt
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


def test_the_pipeline_role_writes_data_and_the_log_but_never_models_or_schemas(as_roles, wine_frame, name):
    store = as_roles("pipeline")
    version, _ = DataVersions(store).publish(name, wine_frame, source="x")
    store.create(f"monitor/{name}/log/1.json", b"{}")
    # a baseline schema is the registry's (models/): no task can plant one for later runs
    _refused(lambda: store.create(f"schemas/{name}/baseline.pbtxt", b"feature {}"), "pipeline")
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


def _client(minio_server, access: str, secret: str):
    from urllib.parse import urlparse

    from minio import Minio

    return Minio(urlparse(minio_server.endpoint).netloc, access_key=access, secret_key=secret, secure=False)


def test_no_role_can_delete_or_lose_a_byte_of_a_published_version(
    as_roles, roles, minio_server, wine_frame, name, capsys
):
    """MinIO itself holds published versions: the bucket is versioned and locked (GOVERNANCE retention),
    and every role is denied deleting objects or versions and bypassing or changing a retention."""
    from minio.error import S3Error

    from mlops.store import AlreadyExists

    data_version, _ = DataVersions(as_roles("pipeline")).publish(name, wine_frame, source="x")
    ModelRegistry(as_roles("registry")).register(name, {"model.skops": b"original"}, metrics={}, lineage={})
    root = _client(minio_server, minio_server.access_key, minio_server.secret_key)
    immutable = [
        o.object_name
        for prefix in (f"store/data/{name}/versions/", f"store/models/{name}/versions/")
        for o in root.list_objects(BUCKET, prefix=prefix, recursive=True)
    ]
    assert any("/data/" in k for k in immutable) and any(k.endswith("model.skops") for k in immutable)
    originals = {key: root.get_object(BUCKET, key).read() for key in immutable}
    for role in ("pipeline", "registry", "reader"):
        store, client = as_roles(role), _client(minio_server, *roles[role])
        for key in immutable:
            relative = key.removeprefix("store/")
            _refused(lambda relative=relative, store=store: store.delete(relative), role)
            for version in root.list_objects(BUCKET, prefix=key, include_version=True):
                with pytest.raises(S3Error, match="AccessDenied"):
                    client.remove_object(BUCKET, key, version_id=version.version_id)
            if role != "reader":  # the store's own create stays conditional: never over a published object
                with pytest.raises((AlreadyExists, StoreError)):
                    store.create(relative, b"overwritten")
    # Raw PUTs with a writing role's own keys over what it may write (the store never sends one: its put
    # of an immutable key is a conditional create). MinIO accepts each as a newer version and keeps the
    # original, locked; every role still reads the original, whatever last-modified time or ETag the PUT
    # claimed (MinIO takes both from its replication headers on any writer's PUT, as measured here).
    model_key = next(k for k in immutable if k.endswith("model.skops"))
    manifest_key = f"store/data/{name}/versions/{data_version.id}/manifest.json"
    with pytest.raises(AlreadyExists):
        as_roles("registry").put(model_key.removeprefix("store/"), b"overwritten")
    older = {"X-Minio-Source-Mtime": "2000-01-01T00:00:00Z"}
    forged = json.dumps({**json.loads(originals[manifest_key]), "source": "forged"}).encode()
    registry_client = _client(minio_server, *roles["registry"])
    registry_client._put_object(BUCKET, model_key, b"overwritten", headers={})
    registry_client._put_object(
        BUCKET,
        model_key,
        b"older, it says",
        headers={**older, "X-Minio-Source-Etag": root.stat_object(BUCKET, model_key).etag},
    )
    _client(minio_server, *roles["pipeline"])._put_object(BUCKET, manifest_key, forged, headers=older)
    versions = list(root.list_objects(BUCKET, prefix=model_key, include_version=True))
    assert len(versions) == 3 and min(v.last_modified for v in versions).year == 2000  # the forged time took
    assert len({v.etag for v in versions}) == 2  # and so did the forged ETag
    # What no role may send with a PUT: its own retention or legal hold, or a replica's status.
    tomorrow = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for headers in (
        {"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": tomorrow},
        {"x-amz-object-lock-legal-hold": "OFF"},
        {"X-Amz-Replication-Status": "REPLICA"},
    ):
        with pytest.raises(S3Error, match="AccessDenied"):
            registry_client._put_object(BUCKET, model_key, b"x", headers=headers)
    original = next(
        v for v in versions if root.get_object(BUCKET, model_key, version_id=v.version_id).read() == b"original"
    )
    with pytest.raises(S3Error, match="AccessDenied|locked|retention|WORM"):
        root.remove_object(BUCKET, model_key, version_id=original.version_id)
    for role in ("pipeline", "registry", "reader"):
        store = as_roles(role)
        registry = ModelRegistry(store)
        assert registry.read_file(registry.get(name, 1), "model.skops") == b"original"
        assert DataVersions(store).resolve(f"{name}@{data_version.id}").source == "x"
        for key in immutable:
            assert store.read(key.removeprefix("store/")) == originals[key]
    warned = capsys.readouterr().err
    assert f"models/{name}/versions/000001/model.skops" in warned and "was overwritten after it was published" in warned
    # Mutable things stay mutable: the champion alias moves, and moves back.
    registry = ModelRegistry(as_roles("registry"))
    registry.set_alias(name, "champion", 1)
    registry.set_alias(name, "champion", 1)
    assert registry.champion(name).version == 1 and data_version.id


def test_every_role_is_denied_deletes_and_lock_changes_in_the_store_bucket():
    for role, document in policies().items():
        if role == ARTIFACTS_ROLE:
            continue
        denied = {a for s in document["Statement"] if s["Effect"] == "Deny" for a in s["Action"]}
        assert {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"} <= denied
        assert {"s3:PutBucketVersioning", "s3:PutBucketObjectLockConfiguration"} <= denied


def test_without_object_lock_an_overwritten_immutable_key_is_refused_in_one_line(minio_env, overwrite):
    """A versioned bucket without Object Lock (made by hand, or before it was the default): which version
    came first cannot be told from what MinIO keeps, so an overwritten key is refused, not guessed."""
    from minio.commonconfig import ENABLED
    from minio.versioningconfig import VersioningConfig

    bucket = f"unlocked-{uuid.uuid4().hex[:8]}"
    root = _client(minio_env, minio_env.access_key, minio_env.secret_key)
    root.make_bucket(bucket)
    root.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
    store = S3Store.from_uri(f"s3://{bucket}/store")
    registry = ModelRegistry(store)
    version = registry.register("m", {"model.skops": b"original"}, metrics={}, lineage={})
    assert registry.read_file(version, "model.skops") == b"original"
    overwrite(store, "models/m/versions/000001/model.skops", b"overwritten")
    with pytest.raises(StoreError, match=r"overwritten after it was published \(2 versions\) .* no Object Lock"):
        registry.read_file(version, "model.skops")
