"""Data versions: immutable, content-addressed tables in the store.

    data/<name>/versions/<content-hash>/data.parquet    canonical rows (sorted by row digest)
    data/<name>/versions/<content-hash>/manifest.json   written last: makes the version visible

The id is the table's content hash (components.content), so pushing the same
data again, from any file format or row order, finds the existing version;
a published version is never overwritten. A reference is ``NAME@ID`` (any
unique prefix of at least 8 characters) or ``NAME@latest``.
"""

import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass

import pandas as pd

from components.content import content_hash, row_digests
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

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.id[:12]}"

    def to_json(self) -> dict:
        return {**asdict(self), "ref": self.ref}


def canonical_parquet(frame: pd.DataFrame) -> bytes:
    """The stored bytes: rows in digest order, so equal data gives equal files."""
    order = sorted(range(len(frame)), key=row_digests(frame).__getitem__)
    buffer = io.BytesIO()
    frame.iloc[order].reset_index(drop=True).to_parquet(buffer, index=False)
    return buffer.getvalue()


class DataVersions:
    """Publish, list and read data versions in an ObjectStore."""

    def __init__(self, store: ObjectStore):
        self.store = store

    @staticmethod
    def _prefix(name: str, version_id: str) -> str:
        return f"data/{name}/versions/{version_id}/"

    def publish(self, name: str, frame: pd.DataFrame, source: str) -> tuple[DataVersion, bool]:
        """Store ``frame`` as a version of ``name``; return it and whether it is new.

        Data first, manifest last (a conditional create), so a crash leaves no
        visible version and two concurrent pushes of the same data agree.
        """
        validate_name("data set", name)
        version_id = content_hash(frame)
        prefix = self._prefix(name, version_id)
        try:
            return self._load(name, version_id), False
        except NotFound:
            pass
        data = canonical_parquet(frame)
        # Not visible yet, so a leftover from a crashed push may be overwritten.
        self.store.put(prefix + "data.parquet", data)
        manifest = {
            "name": name, "id": version_id, "rows": int(len(frame)), "columns": [str(c) for c in frame.columns],
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
            "source": source, "data_sha256": hashlib.sha256(data).hexdigest(),
        }
        try:
            self.store.create(prefix + "manifest.json", dumps(manifest))
        except AlreadyExists:
            return self._load(name, version_id), False
        return DataVersion(**manifest), True

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
            raise StoreError(f"data reference must be NAME@VERSION or NAME@latest, got {ref!r}")
        name, selector = match["name"], match["version"]
        versions = self.versions(name)
        if not versions:
            raise NotFound(f"no data set {name!r} in {self.store.uri}")
        if selector == "latest":
            return versions[-1]
        matches = [version for version in versions if version.id.startswith(selector)]
        if not matches:
            raise NotFound(f"data set {name!r} has no version {selector!r}")
        if len(matches) > 1:
            raise StoreError(f"{ref!r} is ambiguous: use more characters of the version id")
        return matches[0]

    def read_frame(self, version: DataVersion) -> pd.DataFrame:
        data = self.store.read(self._prefix(version.name, version.id) + "data.parquet")
        if hashlib.sha256(data).hexdigest() != version.data_sha256:
            raise StoreError(f"data of {version.ref} does not match its recorded sha256")
        return pd.read_parquet(io.BytesIO(data))
