"""Data versions: immutable, content-addressed tables in the store.

    data/<name>/versions/<content-hash>/rows-<sha256>.parquet    the rows, in canonical (digest) order
    data/<name>/versions/<content-hash>/keys-<sha256>.u64        each row's split key (components.content)
    data/<name>/versions/<content-hash>/manifest.json            written last: makes the version visible

The id is the table's content hash (components.content), so pushing the same
data again, from any file format or row order, finds the existing version.

Publishing is safe under concurrency. The rows file is named by the sha256 of
its own bytes and created only if absent, so a file, once written, never
changes; the manifest, which names the file and its sha256, is a conditional
create. Two publishers of the same content whose Parquet bytes differ (another
pyarrow version, another dtype) each write their own file, and whichever
manifest wins points at bytes that match it; the loser verifies the winner's
version instead of overwriting anything. A reference is ``NAME@ID`` (any
unique prefix of at least 8 characters) or ``NAME@latest``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass

from components.storage.base import AlreadyExists, NotFound, ObjectStore, StoreError
from components.storage.registry import dumps, validate_name

REF_PATTERN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,99})@(?P<version>[0-9a-f]{8,64}|latest)$")
MIN_PREFIX = 8


def is_data_ref(text: str) -> bool:
    return bool(REF_PATTERN.match(text))


@dataclass
class DataVersion:
    name: str
    id: str
    rows: int
    columns: list
    created_at: str
    source: str
    data_sha256: str
    data_file: str = "data.parquet"
    content_scheme: str = "mlops-content-v1"
    keys_file: str | None = None
    keys_sha256: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.id[:12]}"

    @property
    def full_ref(self) -> str:
        return f"{self.name}@{self.id}"

    def to_json(self) -> dict:
        return {**asdict(self), "ref": self.ref}


def write_parquet(table, where) -> None:
    """Write an Arrow table as Parquet (a path or a file object): dictionary encoding only for columns
    that are not floating point (a million distinct floats fill a dictionary and fall back; trying
    costs a third of the write)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dictionary = [field.name for field in table.schema if not pa.types.is_floating(field.type)]
    pq.write_table(table, where, use_dictionary=dictionary)


def canonical_rows(frame: pd.DataFrame, digests, order=None) -> tuple[bytes, bytes]:
    """The stored bytes: the rows in digest order (so equal data gives equal files) as Parquet,
    and their split keys (big-endian uint64, the same order)."""
    import pyarrow as pa

    from components.content import digest_order, row_keys

    order = digest_order(digests) if order is None else order
    table = pa.Table.from_pandas(frame, preserve_index=False).take(pa.array(order))
    buffer = io.BytesIO()
    write_parquet(table, buffer)
    return buffer.getvalue(), row_keys(digests[order]).astype(">u8").tobytes()


class DataVersions:
    """Publish, list and read data versions in an ObjectStore."""

    def __init__(self, store: ObjectStore):
        self.store = store

    @staticmethod
    def _prefix(name: str, version_id: str) -> str:
        return f"data/{name}/versions/{version_id}/"

    def publish(self, name: str, frame: pd.DataFrame, source: str, version_id: str | None = None,
                digests=None) -> tuple[DataVersion, bool]:
        """Store ``frame`` as a version of ``name``; return it and whether it is new.

        ``digests`` (components.content.row_digests) and ``version_id`` (the content
        hash) when the caller has them already: the hash is computed once per run.
        Rows first, manifest last (a conditional create), so a crash leaves no
        visible version and concurrent publishers of the same data agree.
        """
        from components.content import SCHEME, content_hash, digest_order, row_digests

        validate_name("data set", name)
        digests = row_digests(frame) if digests is None else digests
        order = digest_order(digests)  # sorted once: for the id and for the stored row order
        version_id = version_id or content_hash(frame, digests, order)
        try:
            return self._verified(name, version_id), False
        except NotFound:
            pass
        data, keys = canonical_rows(frame, digests, order)
        data_sha256, keys_sha256 = hashlib.sha256(data).hexdigest(), hashlib.sha256(keys).hexdigest()
        data_file, keys_file = f"rows-{data_sha256}.parquet", f"keys-{keys_sha256}.u64"
        prefix = self._prefix(name, version_id)
        for file_name, content in ((data_file, data), (keys_file, keys)):
            try:
                self.store.create(prefix + file_name, content)
            except AlreadyExists:
                pass  # the same bytes, by their name: a retry, or a twin publisher
        manifest = {
            "name": name, "id": version_id, "rows": int(len(frame)), "columns": [str(c) for c in frame.columns],
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
            "source": source, "data_sha256": data_sha256, "data_file": data_file, "content_scheme": SCHEME,
            "keys_file": keys_file, "keys_sha256": keys_sha256,
        }
        try:
            self.store.create(prefix + "manifest.json", dumps(manifest))
        except AlreadyExists:
            return self._verified(name, version_id), False
        return DataVersion(**manifest), True

    def _verified(self, name: str, version_id: str) -> DataVersion:
        """The published version, after checking its rows file matches its manifest."""
        version = self._load(name, version_id)
        self.read_bytes(version)
        return version

    def _load(self, name: str, version_id: str) -> DataVersion:
        try:
            manifest = json.loads(self.store.read(self._prefix(name, version_id) + "manifest.json"))
        except NotFound:
            raise NotFound(f"data version {name}@{version_id[:12]} not found in {self.store.uri}") from None
        return DataVersion(**manifest)

    def names(self) -> list[str]:
        return sorted({key.split("/")[1] for key in self.store.list("data/") if key.endswith("/manifest.json")})

    def versions(self, name: str) -> list[DataVersion]:
        """Versions of ``name``, oldest first."""
        validate_name("data set", name)
        found = [self._load(name, key.split("/")[3]) for key in self.store.list(f"data/{name}/versions/")
                 if key.endswith("/manifest.json")]
        return sorted(found, key=lambda version: (version.created_at, version.id))

    def resolve(self, ref: str) -> DataVersion:
        match = REF_PATTERN.match(ref)
        if not match:
            raise StoreError(f"data version reference {ref!r} is malformed: use NAME@VERSION (the version id, "
                             f"at least {MIN_PREFIX} hex characters) or NAME@latest")
        name, selector = match["name"], match["version"]
        versions = self.versions(name)
        if not versions:
            raise NotFound(f"no data set {name!r} in {self.store.uri}")
        if selector == "latest":
            return versions[-1]
        matches = [version for version in versions if version.id.startswith(selector)]
        if not matches:
            raise NotFound(f"data set {name!r} has no version {selector!r} in {self.store.uri}")
        if len(matches) > 1:
            raise StoreError(f"{ref!r} is ambiguous: use more characters of the version id")
        return matches[0]

    def read_bytes(self, version: DataVersion) -> bytes:
        data = self.store.read(self._prefix(version.name, version.id) + version.data_file)
        if hashlib.sha256(data).hexdigest() != version.data_sha256:
            raise StoreError(f"the rows of data version {version.ref} do not match their recorded sha256 "
                             f"in {self.store.uri}: the store was changed outside this tool")
        return data

    def read_frame(self, version: DataVersion) -> "pd.DataFrame":  # noqa: F821 - pandas is imported lazily
        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.read_bytes(version)))

    def read_keys(self, version: DataVersion):
        """The rows' split keys (uint64, in the stored row order), or None for a version without them."""
        import numpy as np

        if not version.keys_file:
            return None
        data = self.store.read(self._prefix(version.name, version.id) + version.keys_file)
        if hashlib.sha256(data).hexdigest() != version.keys_sha256:
            raise StoreError(f"the row keys of data version {version.ref} do not match their recorded sha256 "
                             f"in {self.store.uri}: the store was changed outside this tool")
        return np.frombuffer(data, dtype=">u8").astype(np.uint64)
