"""Storage for data versions, the model registry and lineage.

``open_store(uri)`` is the one way in:
- ``file:///abs/path`` or a plain path: the embedded filesystem store;
- ``s3://BUCKET/PREFIX``: MinIO or any S3 API, configured by the usual
  AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY variables;
- empty: env MLOPS_STORE, else ``./.mlops`` under the working directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlops.store.base import AlreadyExists, NotFound, ObjectStore, PreconditionFailed, StoreError

__all__ = [
    "AlreadyExists",
    "NotFound",
    "ObjectStore",
    "PreconditionFailed",
    "StoreError",
    "default_store_uri",
    "open_store",
]


def default_store_uri() -> str:
    """MLOPS_STORE, else ./.mlops under the current directory, as a URI."""
    from mlops.config import default_store_uri as configured

    return configured()


log = logging.getLogger(__name__)


def open_store(uri: str | None = None, role: str | None = None) -> ObjectStore:
    """Open the store named by ``uri`` (see the module docstring) as ``role``
    (mlops.store.roles: pipeline, registry or reader; it picks the MinIO credential)."""
    uri = uri or default_store_uri()
    log.debug("store %s, as role %s", uri, role or "(none: the default credential)")
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"file store URI must be file:///absolute/path, got {uri!r}")
        from mlops.store.fs import FileStore

        return FileStore(unquote(parsed.path))
    if parsed.scheme == "s3":
        from mlops.store.s3 import S3Store

        return S3Store.from_uri(uri, role=role)
    if parsed.scheme == "":
        from mlops.store.fs import FileStore

        return FileStore(Path(uri).resolve())
    raise StoreError(f"unsupported store URI {uri!r}: use file:///path or s3://bucket/prefix")
