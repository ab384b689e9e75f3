"""The MinIO (S3 API) backend of the store, and reading s3:// data URIs.

Configured the usual S3 way: AWS_ENDPOINT_URL (e.g. http://127.0.0.1:9000),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optionally AWS_REGION.

Conditional writes are real S3 preconditions, evaluated by the server:
``create`` sends ``If-None-Match: *`` and ``replace`` sends ``If-Match: <etag>``,
so concurrent writers on different machines are safe. Transient failures
(connection refused or reset, 5xx) are retried with exponential backoff, then
reported as one StoreError naming the endpoint.

An immutable key (mlops.store.base.is_immutable) is read as it was first written. The
store bucket is versioned with Object Lock (mlops.store.roles), and MinIO cannot refuse a
raw PUT by a writing role over a published object: it keeps the original, locked, and
adds a newer version. So a read lists the key's versions first and reads the one version
there should be, by its id. More than one is a tampering: the version with the earliest
Object Lock retain-until date is the original (MinIO sets that date from its own clock plus
the bucket's default retention, and no role may set or change a retention); a warning line
says so. Not the last-modified time, which any PUT may set (MinIO honours its replication
header X-Minio-Source-Mtime from every writer; so is the ETag, X-Minio-Source-Etag). When the
original cannot be told (a version without a retention, two with the same date) the read is
refused in one line.
"""

import io
import logging
import os
import sys
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import S3Error

from mlops import config
from mlops.errors import StageError
from mlops.store.base import (
    AlreadyExists,
    NotFound,
    ObjectStore,
    PreconditionFailed,
    StoreError,
    is_immutable,
    refuse_replace,
)

log = logging.getLogger(__name__)

CREDENTIAL_ERRORS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
# The most versions of an immutable key a read looks at (there should be one).
MAX_VERSIONS = 100
# Immutable keys already reported as overwritten in this process (one warning each).
_REPORTED: set[str] = set()


def _retries() -> int:
    """MLOPS_STORE_RETRIES (default 5: with backoff 0.5 s doubling, about 15 s before giving up)."""
    return config.STORE_RETRIES.get()


def client_from_env(role: str | None = None) -> tuple[Minio, str]:
    """A MinIO client for the endpoint in the environment, with ``role``'s credential
    (mlops.store.roles), and that endpoint for messages."""
    from mlops.store.roles import credentials_from_env

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or config.S3_ENDPOINT.get()
    if not endpoint:
        raise StoreError("s3:// needs AWS_ENDPOINT_URL (e.g. http://127.0.0.1:9000; `source .minio/env`)")
    access_key, secret_key = credentials_from_env(role)
    if not access_key or not secret_key:
        wanted = f"{config.role_credential_names(role)[0]} or " if role else ""
        raise StoreError(f"s3:// needs {wanted}AWS_ACCESS_KEY_ID and the matching secret key")
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise StoreError(f"AWS_ENDPOINT_URL must look like http://host:port, got {endpoint!r}")
    retries = _retries()
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5, read=60),
        retries=urllib3.Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=0.5,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=None,
            raise_on_status=False,
        ),
    )
    client = Minio(
        parsed.netloc,
        access_key=access_key,
        secret_key=secret_key,
        secure=parsed.scheme == "https",
        region=os.environ.get("AWS_REGION", "us-east-1"),
        http_client=http,
    )
    return client, endpoint


def _describe(error: Exception, endpoint: str, what: str, role: str | None = None) -> StoreError:
    """One line for the person: unreachable, bad credentials, not allowed, or what S3 said."""
    if isinstance(error, S3Error):
        if error.code in CREDENTIAL_ERRORS:
            return StoreError(
                f"the store at {endpoint} rejected the credentials ({error.code}) while {what}: "
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        if error.code == "AccessDenied":
            who = f"the {role} role" if role else "these credentials"
            return StoreError(
                f"the store at {endpoint} refused {who} while {what} (AccessDenied): that role may "
                "not do this (mlops/store/roles.py)"
            )
        if error.code == "NoSuchBucket":
            return StoreError(f"bucket {error.bucket_name!r} does not exist at {endpoint} (`make minio-up` creates it)")
        return StoreError(f"the store at {endpoint} failed while {what}: {error.code}: {error.message}")
    reason = getattr(error, "reason", None) or error
    return StoreError(f"cannot reach the store at {endpoint} while {what}: {' '.join(str(reason).split())[:200]}")


TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


class S3Store(ObjectStore):
    """Objects under ``s3://bucket/prefix`` on MinIO or any S3 API."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: Minio | None = None,
        endpoint: str | None = None,
        role: str | None = None,
    ):
        if client is None:
            client, endpoint = client_from_env(role)
        self.role = role
        self.client, self.endpoint, self.bucket = client, endpoint or "s3", bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        log.debug("S3 store %s at %s", self.uri, self.endpoint)

    @classmethod
    def from_uri(cls, uri: str, role: str | None = None) -> "S3Store":
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise StoreError(f"store URI must be s3://BUCKET/PREFIX, got {uri!r}")
        return cls(parsed.netloc, parsed.path, role=role)

    def _key(self, key: str) -> str:
        parts = [part for part in key.split("/") if part]
        if not parts or any(part in (".", "..") for part in parts):
            raise StoreError(f"invalid object key {key!r}")
        return self.prefix + "/".join(parts)

    def _put(self, key: str, data: bytes, headers: dict) -> str:
        # minio-py's public put_object turns unknown headers into user metadata,
        # so the precondition headers go through the lower-level call.
        headers = {"Content-Type": "application/octet-stream", **headers}
        result = self.client._put_object(self.bucket, self._key(key), data, headers=headers)
        return result.etag

    def put(self, key: str, data: bytes) -> str:
        if is_immutable(key):
            return self.create(key, data)
        try:
            return self._put(key, data, {})
        except (S3Error, *TRANSPORT_ERRORS) as error:
            raise _describe(error, self.endpoint, f"writing {key}", self.role) from None

    def create(self, key: str, data: bytes) -> str:
        try:
            return self._put(key, data, {"If-None-Match": "*"})
        except S3Error as error:
            if error.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                # A retried request whose first attempt landed sees its own object:
                # that is our write, not a lost race.
                try:
                    current, etag = self.get(key)
                except NotFound:
                    current, etag = None, None
                if current == data:
                    return etag
                raise AlreadyExists(f"{key} already exists in {self.uri}") from None
            raise _describe(error, self.endpoint, f"creating {key}", self.role) from None
        except TRANSPORT_ERRORS as error:
            raise _describe(error, self.endpoint, f"creating {key}", self.role) from None

    def replace(self, key: str, data: bytes, *, if_match: str) -> str:
        if is_immutable(key):
            refuse_replace(key)
        try:
            return self._put(key, data, {"If-Match": f'"{if_match}"'})
        except S3Error as error:
            if error.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                if not self.exists(key):
                    raise NotFound(f"{key} not found in {self.uri}") from None
                raise PreconditionFailed(f"{key} changed since it was read") from None
            if error.code == "NoSuchKey":
                raise NotFound(f"{key} not found in {self.uri}") from None
            raise _describe(error, self.endpoint, f"replacing {key}", self.role) from None
        except TRANSPORT_ERRORS as error:
            raise _describe(error, self.endpoint, f"replacing {key}", self.role) from None

    def get(self, key: str) -> tuple[bytes, str]:
        return self._get(key, self._original_version(key) if is_immutable(key) else None)

    def _get(self, key: str, version_id: str | None) -> tuple[bytes, str]:
        """The bytes and etag of ``key`` (of its version ``version_id``, else of its newest)."""
        buffer = io.BytesIO()
        etag = self._get_into(key, version_id, buffer.write)
        return buffer.getvalue(), etag

    def _get_into(self, key: str, version_id: str | None, write) -> str:
        """:meth:`_get`, the bytes passed to ``write`` a block at a time (never all in memory)."""
        response = None
        try:
            response = self.client.get_object(self.bucket, self._key(key), version_id=version_id)
            for block in response.stream(1 << 20):
                write(block)
            return response.headers.get("ETag", "").strip('"')
        except S3Error as error:
            if error.code == "NoSuchKey":
                raise NotFound(f"{key} not found in {self.uri}") from None
            raise _describe(error, self.endpoint, f"reading {key}", self.role) from None
        except TRANSPORT_ERRORS as error:
            raise _describe(error, self.endpoint, f"reading {key}", self.role) from None
        finally:
            if response is not None:
                response.close()
                response.release_conn()

    def _original_version(self, key: str) -> str | None:
        """The id of the version of an immutable ``key`` as first written (see the module docstring)."""
        name = self._key(key)
        try:
            found = [
                entry
                for entry in self.client.list_objects(self.bucket, prefix=name, include_version=True)
                if entry.object_name == name
            ]
        except S3Error as error:
            raise _describe(error, self.endpoint, f"reading {key}", self.role) from None
        except TRANSPORT_ERRORS as error:
            raise _describe(error, self.endpoint, f"reading {key}", self.role) from None
        if not found or any(entry.is_delete_marker and entry.is_latest for entry in found):
            raise NotFound(f"{key} not found in {self.uri}")
        versions = [entry for entry in found if not entry.is_delete_marker]
        if len(versions) == 1:
            return versions[0].version_id
        refused = (
            f"{key} in {self.uri} was overwritten after it was published ({len(versions)} versions) and "
            "its original cannot be told"
        )
        if len(versions) > MAX_VERSIONS:
            raise StoreError(f"{refused}: more than {MAX_VERSIONS} versions; refusing to read it")
        dates = {entry.version_id: self._retained_until(key, name, entry.version_id) for entry in versions}
        if None in dates.values():
            raise StoreError(f"{refused}: a version has no Object Lock retention; refusing to read it")
        first = min(dates.values())
        originals = [version for version, date in dates.items() if date == first]
        if len(originals) > 1:
            raise StoreError(f"{refused}: two versions were written at the same time; refusing to read it")
        if f"{self.uri}/{key}" not in _REPORTED:
            _REPORTED.add(f"{self.uri}/{key}")
            print(
                f"warning: {key} in {self.uri} was overwritten after it was published ({len(versions)} "
                "versions, a PUT with a writing role's keys): reading it as first written",
                file=sys.stderr,
            )
        return originals[0]

    def _retained_until(self, key: str, name: str, version_id: str):
        """The Object Lock retain-until date of one version of ``name``, or None without a retention."""
        try:
            retention = self.client.get_object_retention(self.bucket, name, version_id=version_id)
        except S3Error as error:
            if error.code in ("ObjectLockConfigurationNotFoundError", "InvalidRequest"):
                return None  # a bucket without Object Lock
            raise _describe(error, self.endpoint, f"reading the retention of {key}", self.role) from None
        except TRANSPORT_ERRORS as error:
            raise _describe(error, self.endpoint, f"reading the retention of {key}", self.role) from None
        return retention.retain_until_date if retention is not None else None

    def list(self, prefix: str) -> list[str]:
        try:
            objects = self.client.list_objects(self.bucket, prefix=self.prefix + prefix, recursive=True)
            return sorted(obj.object_name[len(self.prefix) :] for obj in objects)
        except S3Error as error:
            raise _describe(error, self.endpoint, f"listing {prefix}", self.role) from None
        except TRANSPORT_ERRORS as error:
            raise _describe(error, self.endpoint, f"listing {prefix}", self.role) from None

    def delete(self, key: str) -> None:
        try:
            self.client.remove_object(self.bucket, self._key(key))
        except (S3Error, *TRANSPORT_ERRORS) as error:
            raise _describe(error, self.endpoint, f"deleting {key}", self.role) from None

    def put_file(self, key: str, path: str) -> str:
        with open(path, "rb") as handle:
            return self.put(key, handle.read())

    def get_file(self, key: str, path: str) -> None:
        """The object (an immutable key's version as first written, as :meth:`get`) streamed into the file
        at ``path`` a block at a time: a data version's rows never whole in memory."""
        version_id = self._original_version(key) if is_immutable(key) else None
        try:
            with open(path, "wb") as handle:
                self._get_into(key, version_id, handle.write)
        except StoreError:
            os.unlink(path)  # no file for an object that could not be read
            raise


def read_s3_uri(uri: str, role: str | None = "pipeline") -> bytes:
    """The bytes of ``s3://bucket/key`` (an ingest source), with a StageError for each failure."""
    buffer = io.BytesIO()
    copy_s3_uri(uri, buffer.write, role)
    return buffer.getvalue()


def copy_s3_uri(uri: str, write, role: str | None = "pipeline") -> None:
    """:func:`read_s3_uri`, the bytes passed to ``write`` a block at a time (a big source to a file)."""
    from mlops.data.uris import redact

    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if not parsed.netloc or not key:
        raise StageError(f"data URI must be s3://BUCKET/KEY, got {redact(uri)!r}")
    try:
        # A source object is not one of the store's immutable keys, whatever its name: its newest bytes.
        S3Store(parsed.netloc, role=role)._get_into(key, None, write)
    except NotFound:
        raise StageError(f"no object at {redact(uri)}") from None
    except StoreError as error:
        raise StageError(str(error)) from None
