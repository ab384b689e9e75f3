"""The object-store interface behind data versions, the model registry and lineage.

Every higher-level record (a data version, a model version, an alias) is built
from these few operations, so the filesystem backend (the embedded default) and
the MinIO backend are interchangeable and are tested by one shared suite.

Atomicity rules the backends guarantee:
- ``put`` replaces an object as a whole: a reader sees the old or the new bytes.
- ``create`` is a conditional write: it fails with ``AlreadyExists`` when the key
  exists (S3 ``If-None-Match: *``, a hard link on a filesystem).
- ``replace`` is compare-and-swap on the object's etag (S3 ``If-Match``).
"""

from __future__ import annotations

import abc

from components.errors import MlopsError


class StoreError(MlopsError):
    """The store could not do what was asked (unreachable, denied, corrupt)."""


class NotFound(StoreError):
    """No object under that key."""


class AlreadyExists(StoreError):
    """A conditional create found the key already taken."""


class PreconditionFailed(StoreError):
    """A compare-and-swap lost: the object changed since it was read."""


class ObjectStore(abc.ABC):
    """A flat key → bytes store with conditional writes.

    Keys are '/'-separated relative paths such as ``models/wine/versions/000001/manifest.json``.
    """

    uri: str

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` under ``key`` (replacing it atomically); return its etag."""

    @abc.abstractmethod
    def create(self, key: str, data: bytes) -> str:
        """Write ``data`` under ``key`` only if the key is free; return its etag.

        Raises AlreadyExists otherwise. This is how version numbers are claimed.
        """

    @abc.abstractmethod
    def replace(self, key: str, data: bytes, *, if_match: str) -> str:
        """Write ``data`` only if the object's current etag is ``if_match``.

        Raises PreconditionFailed when another writer got there first, and
        NotFound when the object does not exist.
        """

    @abc.abstractmethod
    def get(self, key: str) -> tuple[bytes, str]:
        """Return ``(data, etag)``; raise NotFound when absent."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]:
        """All keys starting with ``prefix``, sorted."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are not an error."""

    # Conveniences built on the primitives.

    def read(self, key: str) -> bytes:
        return self.get(key)[0]

    def exists(self, key: str) -> bool:
        try:
            self.get(key)
        except NotFound:
            return False
        return True

    def put_file(self, key: str, path: str) -> str:
        with open(path, "rb") as handle:
            return self.put(key, handle.read())

    def get_file(self, key: str, path: str) -> None:
        with open(path, "wb") as handle:
            handle.write(self.read(key))
