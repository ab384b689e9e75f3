"""The object-store interface behind data versions, the model registry and lineage.

Every higher-level record (a data version, a model version, an alias) is built
from these few operations, so the filesystem backend (the embedded default) and
the MinIO backend are interchangeable and are tested by one shared suite.

Atomicity rules the backends guarantee:
- ``put`` replaces an object as a whole: a reader sees the old or the new bytes.
- ``create`` is a conditional write: it fails with ``AlreadyExists`` when the key
  exists (S3 ``If-None-Match: *``, a hard link on a filesystem).
- ``replace`` is compare-and-swap on the object's etag (S3 ``If-Match``).
- ``staged`` takes an object's bytes before its key is known and publishes them
  with the same conditional create.

Immutable keys (:func:`is_immutable`: a data version's files, a model version's files, the
monitor log's entries) are written once: ``put`` over one that exists is refused like
``create`` (AlreadyExists) and ``replace`` is refused, in both backends. The MinIO backend also
reads each one as it was first written, whatever a raw PUT added later (mlops/store/s3.py).
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator

from mlops.errors import MlopsError


class StoreError(MlopsError):
    """The store could not do what was asked (unreachable, denied, corrupt)."""


class NotFound(StoreError):
    """No object under that key."""


class AlreadyExists(StoreError):
    """A conditional create found the key already taken."""


class PreconditionFailed(StoreError):
    """A compare-and-swap lost: the object changed since it was read."""


# Where the keys that are written once live (relative to the store): data versions, model versions,
# the monitor log. Aliases, tags, reports and the legacy baseline schemas are not in it.
_IMMUTABLE_KEY = re.compile(r"(data/[^/]+/versions|models/[^/]+/versions|monitor/[^/]+/log)/.+")


def is_immutable(key: str) -> bool:
    """Whether ``key`` is written once and never replaced (see the module docstring)."""
    return _IMMUTABLE_KEY.fullmatch("/".join(part for part in key.split("/") if part)) is not None


def refuse_replace(key: str) -> None:
    """``replace`` of an immutable key: refused in every backend."""
    raise StoreError(f"{key} is written once and cannot be replaced")


class ObjectStore(abc.ABC):
    """A flat key → bytes store with conditional writes.

    Keys are '/'-separated relative paths such as ``models/wine/versions/000001/manifest.json``.
    """

    uri: str

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` under ``key`` (replacing it atomically); return its etag.

        An immutable key (:func:`is_immutable`) is only created: AlreadyExists when it exists.
        """

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

    @contextlib.contextmanager
    def staged(self) -> Iterator[Staged]:
        """An object written before its key is known (a data file named by its own sha256): write to
        ``staged.file``, then ``staged.create(key)``. Bytes never created are dropped on exit."""
        staged = self._stage()
        try:
            yield staged
        finally:
            staged.discard()

    def _stage(self) -> Staged:
        """In memory, then :meth:`create`; a backend that can write ahead of the key overrides it."""
        return Staged(self)

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

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[str]:
        """A path on this machine holding ``key``'s bytes, for readers that seek (a Parquet file read a
        batch at a time): here a temporary copy (:meth:`get_file`), removed on exit; a backend that keeps
        objects as files gives the file itself. Read it only."""
        with tempfile.TemporaryDirectory(prefix="mlops-object-") as scratch:
            path = os.path.join(scratch, key.rsplit("/", 1)[-1])
            self.get_file(key, path)
            yield path


class HashingWriter:
    """A write-only binary file (what pyarrow's writers need) that passes each write to ``sink`` and
    keeps the sha256 and size of everything written."""

    closed = False

    def __init__(self, sink: Callable[[memoryview], object]):
        self._sink = sink
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self._sha256.update(view)
        self._sink(view)
        self.size += len(view)
        return len(view)

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass  # the stage owns the bytes: a writer library closing its file must not drop them

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


class Staged:
    """Bytes on their way into a store (see :meth:`ObjectStore.staged`): kept in memory here."""

    def __init__(self, store: ObjectStore):
        self._store = store
        self._buffer = io.BytesIO()
        self.file = HashingWriter(self._buffer.write)

    @property
    def sha256(self) -> str:
        """The sha256 of the bytes written so far (the file store's etag)."""
        return self.file.hexdigest()

    def create(self, key: str) -> str:
        """Publish the bytes under ``key`` as :meth:`ObjectStore.create` does (AlreadyExists if taken)."""
        return self._store.create(key, self._buffer.getvalue())

    def discard(self) -> None:
        self._buffer = io.BytesIO()
