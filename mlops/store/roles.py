"""Who may do what in the MinIO store: one MinIO user and policy per role.

    pipeline   every pipeline task but register, and a local run's record: reads the whole
               store bucket, writes data versions, the monitor log, reports, run records
               and run records; never models
    registry   the register step (and `mlops models promote|tag`): reads the store,
               writes model versions, aliases and tags
    reader     the CLI's listings: reads the store, writes nothing
    artifacts  KFP's own artifact store (bucket mlpipeline), nothing of ours

Nobody may delete, and MinIO enforces it: every role's policy denies deleting objects and
object versions, bypassing or changing a retention, and changing the bucket's versioning,
lock or policy; the store bucket is created with versioning and Object Lock, with a default
GOVERNANCE retention of :data:`RETENTION_DAYS` on every object version. So no byte of a
published data version or model version can be removed with a role's keys: a PUT over one
(which the store itself never sends: it creates with If-None-Match) only adds a newer
version, and the original stays, locked. MinIO's policy language has no condition on
If-None-Match, so that PUT itself cannot be refused by a policy; the store reads such a key
as first written, told by its retention date, which only MinIO sets (mlops/store/s3.py), and
says so. MinIO's root credential is used by
nothing but the bootstrap that creates these users (`make minio-up`, and the
deploy's bucket Job, whose policy files are generated from :func:`policies`).

A process finds its role's credential in ``MLOPS_<ROLE>_ACCESS_KEY_ID`` /
``MLOPS_<ROLE>_SECRET_ACCESS_KEY`` (what `make minio-up` writes to .minio/env),
else in ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (what a pod gets from
the one Secret of its role).
"""

from __future__ import annotations

import json
import os

from mlops import config

ROLES = ("pipeline", "registry", "reader")
ARTIFACTS_ROLE = "artifacts"
KFP_ARTIFACT_BUCKET = "mlpipeline"
# Store prefixes each writing role may write under (relative to the store's prefix).
WRITES = {"pipeline": ("data/", "monitor/", "reports/", "runs/"), "registry": ("models/",), "reader": ()}


# How long every object version in the store bucket is locked (Object Lock, GOVERNANCE mode: only
# MinIO's root credential, with the bypass header, may remove one before that).
RETENTION_DAYS = 3650
# What no role may do in the store bucket, whatever it is allowed.
DENIED_OBJECT_ACTIONS = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:BypassGovernanceRetention",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    # A replica's PUT may carry its own retention: only replication may send one.
    "s3:ReplicateObject",
    "s3:ReplicateDelete",
    "s3:ReplicateTags",
)
DENIED_BUCKET_ACTIONS = (
    "s3:DeleteBucket",
    "s3:PutBucketVersioning",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
)


def policy_name(role: str) -> str:
    return f"mlops-{role}"


def _statement(actions, resources, condition=None, effect: str = "Allow") -> dict:
    statement = {"Effect": effect, "Action": sorted(actions), "Resource": sorted(resources)}
    if condition:
        statement["Condition"] = condition
    return statement


def policies(bucket: str = config.STORE_BUCKET, prefix: str = "store") -> dict[str, dict]:
    """role -> MinIO (IAM) policy document, for a store at ``s3://bucket/prefix``."""
    prefix = prefix.strip("/")
    arn = f"arn:aws:s3:::{bucket}"
    documents = {}
    for role in ROLES:
        statements = [
            _statement(["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketVersions"], [arn]),
            # A retention is read to tell a published object's original version (mlops/store/s3.py).
            _statement(["s3:GetObject", "s3:GetObjectRetention"], [f"{arn}/*"]),
        ]
        if WRITES[role]:
            statements.append(_statement(["s3:PutObject"], [f"{arn}/{prefix}/{where}*" for where in WRITES[role]]))
        statements.append(_statement(DENIED_OBJECT_ACTIONS, [f"{arn}/*"], effect="Deny"))
        statements.append(_statement(DENIED_BUCKET_ACTIONS, [arn], effect="Deny"))
        documents[role] = {"Version": "2012-10-17", "Statement": statements}
    kfp = f"arn:aws:s3:::{KFP_ARTIFACT_BUCKET}"
    documents[ARTIFACTS_ROLE] = {
        "Version": "2012-10-17",
        "Statement": [
            _statement(["s3:GetBucketLocation", "s3:ListBucket"], [kfp]),
            _statement(["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], [f"{kfp}/*"]),
        ],
    }
    return documents


def credentials_from_env(role: str | None) -> tuple[str | None, str | None]:
    """(access key, secret key) of ``role`` from the environment (see the module docstring)."""
    if role:
        access_name, secret_name = config.role_credential_names(role)
        access, secret = os.environ.get(access_name), os.environ.get(secret_name)
        if access and secret:
            return access, secret
    return os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")


def role_environment(credentials: dict[str, tuple[str, str]]) -> dict[str, str]:
    """The ``MLOPS_<ROLE>_*`` variables for a set of role credentials."""
    env = {}
    for role, (access, secret) in credentials.items():
        access_name, secret_name = config.role_credential_names(role)
        env[access_name] = access
        env[secret_name] = secret
    return env


def bootstrap(
    endpoint: str,
    root_access: str,
    root_secret: str,
    credentials: dict[str, tuple[str, str]],
    bucket: str = config.STORE_BUCKET,
    prefix: str = "store",
) -> None:
    """With MinIO's root credential: the buckets, one policy per role, and one user per role."""
    from urllib.parse import urlparse

    from minio import Minio
    from minio.credentials import StaticProvider
    from minio.minioadmin import MinioAdmin

    parsed = urlparse(endpoint)
    secure = parsed.scheme == "https"
    client = Minio(parsed.netloc, access_key=root_access, secret_key=root_secret, secure=secure)
    if not client.bucket_exists(KFP_ARTIFACT_BUCKET):
        client.make_bucket(KFP_ARTIFACT_BUCKET)
    make_store_bucket(client, bucket)
    admin = MinioAdmin(endpoint=parsed.netloc, credentials=StaticProvider(root_access, root_secret), secure=secure)
    documents = policies(bucket, prefix)
    for role, (access, secret) in credentials.items():
        admin.policy_add(policy_name(role), policy=documents[role])
        admin.user_add(access, secret)
        if not _attached(admin, access, role):
            admin.attach_policy([policy_name(role)], user=access)


def make_store_bucket(client, bucket: str) -> None:
    """The store bucket with versioning and Object Lock (default GOVERNANCE retention of
    RETENTION_DAYS); a bucket that exists keeps its settings (MinIO cannot add a lock later)."""
    from minio.commonconfig import GOVERNANCE
    from minio.objectlockconfig import DAYS, ObjectLockConfig

    if client.bucket_exists(bucket):
        return
    client.make_bucket(bucket, object_lock=True)
    client.set_object_lock_config(bucket, ObjectLockConfig(GOVERNANCE, RETENTION_DAYS, DAYS))


def _attached(admin, access: str, role: str) -> bool:
    """Whether ``role``'s policy is already attached to the user (attaching twice is an error)."""
    try:
        info = json.loads(admin.user_info(access))
    except Exception:  # noqa: BLE001 - a user that does not exist yet has nothing attached
        return False
    return policy_name(role) in (info.get("policyName") or "").split(",")


def write_policy_files(directory) -> list:
    """The policies as the JSON files the deploy's bucket Job gives `mc admin policy create`."""
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for role, document in policies().items():
        path = directory / f"{role}.json"
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m mlops.store.roles: regenerate manifests/base/minio/policies
    for written in write_policy_files(config.PROJECT_ROOT / "manifests" / "base" / "minio" / "policies"):
        print(written)
