"""The embedded default store: a directory on the local filesystem.

Conditional create uses ``os.link`` of a fully written temporary file, which
fails atomically when the name exists (the same guarantee as O_EXCL, but a
reader can never see a half-written object). Compare-and-swap holds an
exclusive ``fcntl`` lock on a side file while it checks the etag and renames.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from mlops.store.base import (
    AlreadyExists,
    HashingWriter,
    NotFound,
    ObjectStore,
    PreconditionFailed,
    Staged,
    StoreError,
    is_immutable,
    refuse_replace,
)

# Temporary and lock files live beside the objects but never show up in list().
_INTERNAL_SUFFIXES = (".tmp", ".lock")


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _etag_beside(data: bytes):
    """A future of ``_etag(data)``, computed on another thread while the caller writes and syncs the
    file (hashlib and file writes let go of the GIL): for large objects, the hash costs no time."""
    from concurrent.futures import Future, ThreadPoolExecutor

    if len(data) < _ETAG_BESIDE_BYTES:
        done: Future = Future()
        done.set_result(_etag(data))
        yield done
        return
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(_etag, data)


_ETAG_BESIDE_BYTES = 1 << 20


# errno -> what the person should do about it
_OS_ERROR_HINTS = {
    errno.EACCES: "permission denied: give this user write access, or choose another --store",
    errno.EPERM: "operation not permitted: give this user write access, or choose another --store",
    errno.EROFS: "the file system is read-only: choose a writable --store",
    errno.ENOSPC: "no space left on the device",
    errno.ENOTDIR: "a part of the path is a file, not a directory: choose another --store",
    errno.ENOENT: "a directory on the path does not exist (or was removed while writing)",
    errno.EDQUOT: "disk quota exceeded",
}
# os.link fails with these where the file system has no hard links (FAT, some FUSE and network mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


class FileStore(ObjectStore):
    """Objects as files under ``root``; keys map to relative paths."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.uri = self.root.as_uri()

    @contextlib.contextmanager
    def _os_errors(self, action: str, key: str):
        """An OSError from the file system becomes one StoreError line naming the store and the fix."""
        try:
            yield
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
            if action == "reading":
                raise NotFound(f"{key} not found in {self.uri}") from None
            raise self._describe(error, action, key) from None
        except OSError as error:
            raise self._describe(error, action, key) from None

    def _describe(self, error: OSError, action: str, key: str) -> StoreError:
        hint = _OS_ERROR_HINTS.get(error.errno) or error.strerror or str(error)
        code = errno.errorcode.get(error.errno, "?") if error.errno else "?"
        return StoreError(
            f"cannot write the store at {self.uri} ({action} {key}): {hint} [{code}]"
            if action != "reading"
            else f"cannot read the store at {self.uri} ({key}): {hint} [{code}]"
        )

    def _path(self, key: str) -> Path:
        parts = [part for part in key.split("/") if part]
        if not parts or any(part in (".", "..") for part in parts):
            raise StoreError(f"invalid object key {key!r}")
        if any(part.endswith(_INTERNAL_SUFFIXES) for part in parts):
            raise StoreError(f"object key {key!r} must not end in {_INTERNAL_SUFFIXES}")
        return self.root.joinpath(*parts)

    def _write_temp(self, path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return temp_name

    @contextlib.contextmanager
    def _locked(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def put(self, key: str, data: bytes) -> str:
        if is_immutable(key):
            return self.create(key, data)
        path = self._path(key)
        with _etag_beside(data) as etag, self._os_errors("writing", key):
            temp_name = self._write_temp(path, data)
            with self._locked(path):
                os.replace(temp_name, path)
        return etag.result()

    def create(self, key: str, data: bytes) -> str:
        path = self._path(key)
        with _etag_beside(data) as etag, self._os_errors("creating", key):
            temp_name = self._write_temp(path, data)
            try:
                self._link(temp_name, path, key)
            finally:
                os.unlink(temp_name)
        return etag.result()

    def _link(self, temp_name: str, path: Path, key: str) -> None:
        """Give a written, synced temporary file its key, only if the key is free (AlreadyExists)."""
        try:
            os.link(temp_name, path)
        except FileExistsError:
            raise AlreadyExists(f"{key} already exists in {self.uri}") from None
        except OSError as error:
            if error.errno in _NO_HARD_LINKS:
                raise StoreError(
                    f"the store at {self.uri} is on a file system without hard links, which it needs to "
                    "publish objects atomically; put it on a local disk or use s3:// (MinIO)"
                ) from None
            raise

    def _stage(self) -> Staged:
        return _StagedFile(self)

    def replace(self, key: str, data: bytes, *, if_match: str) -> str:
        if is_immutable(key):
            refuse_replace(key)
        path = self._path(key)
        with self._os_errors("replacing", key):
            temp_name = self._write_temp(path, data)
        try:
            with self._os_errors("replacing", key), self._locked(path):
                try:
                    current = path.read_bytes()
                except FileNotFoundError:
                    raise NotFound(f"{key} not found in {self.uri}") from None
                if _etag(current) != if_match:
                    raise PreconditionFailed(f"{key} changed since it was read")
                os.replace(temp_name, path)
        finally:
            if os.path.exists(temp_name):
                os.unlink(temp_name)
        return _etag(data)

    def get(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)
        with self._os_errors("reading", key):
            data = path.read_bytes()
        return data, _etag(data)

    def read(self, key: str) -> bytes:
        """The bytes alone: the etag (a sha256 of them) is not computed."""
        path = self._path(key)
        with self._os_errors("reading", key):
            return path.read_bytes()

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[str]:
        """The object's own file, no copy: a write renames a new file over it, so an open one never changes."""
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"{key} not found in {self.uri}")
        yield str(path)

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except OSError:
            return False

    def list(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        # Walk only the deepest directory the prefix names, not the whole store.
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root.joinpath(*[p for p in directory.split("/") if p])
        if not start.is_dir():
            return []
        keys = []
        for dirpath, _dirnames, filenames in os.walk(start):
            for filename in filenames:
                if filename.startswith(".") and filename.endswith(_INTERNAL_SUFFIXES):
                    continue
                key = Path(dirpath, filename).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        with self._os_errors("deleting", key), contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()


class _StagedFile(Staged):
    """A staged object in a hidden temporary file at the store's root, written as it comes.

    A thread syncs what has been written so far while the writer goes on, so the disk
    works beside the CPU and :meth:`create` waits for little more than the last pages
    (for a data version's rows: half the time of writing, then syncing, a buffer).
    """

    _SYNC_EVERY_SECONDS = 0.01

    def __init__(self, store: FileStore):
        self._store = store
        with store._os_errors("writing", "a staged object"):
            store.root.mkdir(parents=True, exist_ok=True)
            self._fd, self._temp_name = tempfile.mkstemp(dir=store.root, prefix=".staged.", suffix=".tmp")
        self.file = HashingWriter(self._write)
        self._written = threading.Event()
        self._syncer = threading.Thread(target=self._sync_behind, name="store-sync-behind", daemon=True)
        self._syncer.start()

    def _write(self, data: memoryview) -> None:
        with self._store._os_errors("writing", "a staged object"):
            while data:
                data = data[os.write(self._fd, data) :]

    def _sync_behind(self) -> None:
        while not self._written.wait(self._SYNC_EVERY_SECONDS):
            try:
                os.fdatasync(self._fd)
            except OSError:
                return  # the final fsync in create() reports it

    def _stop_syncing(self) -> None:
        self._written.set()
        self._syncer.join()

    def create(self, key: str) -> str:
        path = self._store._path(key)
        self._stop_syncing()
        with self._store._os_errors("creating", key):
            os.fsync(self._fd)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._store._link(self._temp_name, path, key)
        return self.sha256

    def discard(self) -> None:
        self._stop_syncing()
        os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp_name)
