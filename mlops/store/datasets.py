"""Data versions: immutable, content-addressed tables in the store.

    data/<name>/versions/<content-hash>/rows-<sha256>.parquet    the rows, in canonical order
    data/<name>/versions/<content-hash>/keys-<sha256>.u64        each row's split key (mlops.data.content)
    data/<name>/versions/<content-hash>/manifest.json            written last: makes the version visible

The id is the table's content hash (mlops.data.content), so pushing the same
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

import contextlib
import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterator

from mlops.errors import quote
from mlops.store.base import AlreadyExists, NotFound, ObjectStore, StoreError
from mlops.store.registry import dumps, validate_name

if TYPE_CHECKING:
    import pandas as pd

REF_PATTERN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,99})@(?P<version>[0-9a-f]{8,64}|latest)$")
MIN_PREFIX = 8


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
    """Write an Arrow table as Parquet (a path or a file object), with :func:`parquet_write_options`."""
    import pyarrow.parquet as pq

    pq.write_table(table, where, **parquet_write_options(table))


def parquet_write_options(table) -> dict:
    """How :func:`write_parquet` writes ``table``: keyword arguments of ``pyarrow.parquet.write_table``,
    and of a ``ParquetWriter`` that streams tables like it (their first rows decide the codecs).

    Dictionary encoding only for columns that are not floating point (a million distinct floats fill
    a dictionary and fall back; trying costs a third of the write). Snappy only for the columns it
    shrinks (:func:`_compression`): on measured floats it saves a few percent for a fifth of the write.
    No min/max statistics for text columns: nothing here filters on them, and they cost a fifth of
    the write.
    """
    import pyarrow as pa

    dictionary = [field.name for field in table.schema if not pa.types.is_floating(field.type)]
    statistics = [field.name for field in table.schema if not _is_text(field.type)]
    return {"use_dictionary": dictionary, "compression": _compression(table), "write_statistics": statistics}


def _is_text(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


# Snappy is kept for a column when a sample compresses below this fraction of its size.
_WORTH_COMPRESSING = 0.8
_SAMPLE_ROWS = 65_536


def _compression(table) -> dict[str, str]:
    """Each column's codec: snappy, but none for a floating-point column whose sample (its first
    rows; a data version's rows are in key order, so a fair sample) snappy does not shrink by a fifth.
    A function of the table's content alone, so equal tables still give equal files."""
    import pyarrow as pa

    codecs = {}
    for field, column in zip(table.schema, table.columns):
        codecs[field.name] = "snappy"
        if pa.types.is_floating(field.type) and len(column):
            sample = column.slice(0, _SAMPLE_ROWS).combine_chunks()
            values = sample.buffers()[1]
            if values is None:
                continue
            start, width = sample.offset * sample.type.byte_width, len(sample) * sample.type.byte_width
            values = values.slice(start, width)
            if len(pa.compress(values, "snappy", asbytes=True)) > _WORTH_COMPRESSING * len(values):
                codecs[field.name] = "none"
    return codecs


def take_rows(table, indices):
    """``table.take(indices)``, a column per thread: Arrow lets go of the GIL, and a gather of a
    million rows is mostly waiting on memory (half the time on two cores)."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    from mlops.data.content import usable_cores

    indices = pa.array(indices)
    workers = min(usable_cores(), table.num_columns)
    if workers < 2 or len(indices) < 100_000:
        return table.take(indices)
    with ThreadPoolExecutor(workers) as pool:
        columns = list(pool.map(lambda column: column.take(indices), table.columns))
    return pa.Table.from_arrays(columns, schema=table.schema)


def read_parquet_rows(path, positions, batch_rows: int = 65_536) -> pd.DataFrame:
    """The rows of a Parquet file at ``positions`` (0-based, in the file's row order), as the frame
    ``pd.read_parquet(path).take(positions)`` would be (same types, same order, the positions as its
    index), reading one record batch at a time: never the whole file in memory."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    positions = np.asarray(positions, dtype=np.int64)
    wanted = np.unique(positions)  # sorted
    parquet = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering keeps every row group read
    parts, start = [], 0
    for batch in parquet.iter_batches(batch_size=batch_rows):
        end = start + batch.num_rows
        here = wanted[np.searchsorted(wanted, start) : np.searchsorted(wanted, end)] - start
        if len(here):
            parts.append(batch.take(pa.array(here)))
        start = end
    if len(wanted) and (wanted[0] < 0 or wanted[-1] >= start):
        raise IndexError(f"row positions out of range for {start} rows")
    frame = pa.Table.from_batches(parts, schema=parquet.schema_arrow).to_pandas()
    frame.index = wanted
    return frame.loc[positions]


def canonical_table(table, content):
    """``table`` (Arrow or pandas) as an Arrow table in canonical row order (``content``: its
    mlops.data.content.Content or Keyed)."""
    import pyarrow as pa

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    return take_rows(table, content.order)


def _column_names(table) -> list[str]:
    return [str(name) for name in getattr(table, "column_names", None) or table.columns]


class DataVersions:
    """Publish, list and read data versions in an ObjectStore."""

    def __init__(self, store: ObjectStore):
        self.store = store

    @staticmethod
    def _prefix(name: str, version_id: str) -> str:
        return f"data/{name}/versions/{version_id}/"

    def publish(self, name: str, table, source: str, content=None) -> tuple[DataVersion, bool]:
        """Store ``table`` (an Arrow table or a pandas DataFrame) as a version of ``name``; return it
        and whether it is new.

        ``content`` (mlops.data.content.describe, or .keyed, of ``table``) when the
        caller has it already: the hash is computed once per run. Rows first, manifest last (a
        conditional create), so a crash leaves no visible version and concurrent
        publishers of the same data agree.
        """
        from concurrent.futures import ThreadPoolExecutor

        from mlops.data.content import Content, hash_of, keyed, usable_cores

        validate_name("data set", name)
        with self.store.staged() as rows:
            if isinstance(content, Content):  # the id is known: write the rows only for a new version
                version_id = content.id
                existing = self._existing(name, version_id)
                if existing:
                    return existing, False
                write_parquet(canonical_table(table, content), rows.file)
            else:  # once: the keys, the stored row order and the id
                content = content or keyed(table)
                # The rows are ordered on every core, then streamed into the store (Arrow lets go of the
                # GIL) while the hash is computed, a core each: the bytes are dropped if the version exists.
                ordered = canonical_table(table, content)
                with ThreadPoolExecutor(1) as pool:
                    written = pool.submit(write_parquet, ordered, rows.file)
                    version_id = hash_of(content, cores=max(1, usable_cores() - 1))
                    written.result()
                existing = self._existing(name, version_id)
                if existing:
                    return existing, False
            keys = content.keys[content.order].astype(">u8").tobytes()  # big-endian uint64, in the rows' order
            return self._create(name, version_id, rows, keys, len(content.keys), _column_names(table), source)

    def publish_streamed(self, name: str, order, columns: list[str], source: str) -> tuple[DataVersion, bool]:
        """:meth:`publish` for a table too big for memory, given as an mlops.data.content_stream.ExternalOrder
        holding its rows: they are written in canonical order, a Parquet row group per bucket, while the
        hash is computed (the id :meth:`publish` gives the whole table)."""
        import pyarrow.parquet as pq

        validate_name("data set", name)
        with self.store.staged() as rows:
            writer = None

            def write_rows(part) -> None:
                nonlocal writer
                if writer is None:
                    writer = pq.ParquetWriter(rows.file, part.schema, **parquet_write_options(part))
                writer.write_table(part, row_group_size=part.num_rows)

            streamed = order.finish(write_rows)
            if writer is not None:
                writer.close()
            existing = self._existing(name, streamed.id)
            if existing:
                return existing, False
            return self._create(name, streamed.id, rows, streamed.keys, streamed.rows, columns, source)

    def _existing(self, name: str, version_id: str) -> DataVersion | None:
        try:
            return self._verified(name, version_id)
        except NotFound:
            return None

    def _create(
        self, name: str, version_id: str, rows, keys: bytes, row_count: int, columns: list[str], source: str
    ) -> tuple[DataVersion, bool]:
        """Rows (staged), keys (big-endian uint64, in the rows' order), then the manifest that makes the
        version visible."""
        from mlops.data.content import SCHEME

        keys_sha256 = hashlib.sha256(keys).hexdigest()
        data_file, keys_file = f"rows-{rows.sha256}.parquet", f"keys-{keys_sha256}.u64"
        prefix = self._prefix(name, version_id)
        for create in (lambda: rows.create(prefix + data_file), lambda: self.store.create(prefix + keys_file, keys)):
            try:
                create()
            except AlreadyExists:
                pass  # the same bytes, by their name: a retry, or a twin publisher
        manifest = {
            "name": name,
            "id": version_id,
            "rows": row_count,
            "columns": columns,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
            "source": source,
            "data_sha256": rows.sha256,
            "data_file": data_file,
            "content_scheme": SCHEME,
            "keys_file": keys_file,
            "keys_sha256": keys_sha256,
        }
        try:
            self.store.create(prefix + "manifest.json", dumps(manifest))
        except AlreadyExists:
            return self._verified(name, version_id), False
        return DataVersion(**manifest), True

    def copy_from(self, source: "DataVersions", version: DataVersion) -> DataVersion:
        """Copy ``version`` from another store byte for byte (rows, keys, then the manifest): the same id,
        scheme and split keys, whatever scheme this code would compute today."""
        prefix = self._prefix(version.name, version.id)
        files = [(version.data_file, source.read_bytes(version))]
        if version.keys_file:
            files.append(
                (version.keys_file, source._read_checked(version, version.keys_file, version.keys_sha256, "row keys"))
            )
        for file_name, content in files:
            try:
                self.store.create(prefix + file_name, content)
            except AlreadyExists:
                pass
        manifest = {key: value for key, value in version.to_json().items() if key != "ref"}
        try:
            self.store.create(prefix + "manifest.json", dumps(manifest))
        except AlreadyExists:
            pass
        return self._verified(version.name, version.id)

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
        found = [
            self._load(name, key.split("/")[3])
            for key in self.store.list(f"data/{name}/versions/")
            if key.endswith("/manifest.json")
        ]
        return sorted(found, key=lambda version: (version.created_at, version.id))

    def resolve(self, ref: str) -> DataVersion:
        match = REF_PATTERN.match(ref)
        if not match:
            raise StoreError(
                f"data version reference {quote(ref)} is malformed: use NAME@VERSION (the version id, "
                f"at least {MIN_PREFIX} hex characters) or NAME@latest"
            )
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
            raise StoreError(f"{quote(ref)} is ambiguous: use more characters of the version id")
        return matches[0]

    def read_bytes(self, version: DataVersion) -> bytes:
        return self._read_checked(version, version.data_file, version.data_sha256, "rows")

    def read_table(self, version: DataVersion):
        """The rows as an Arrow table (checked against their sha256 while Parquet decodes them)."""
        from concurrent.futures import ThreadPoolExecutor

        import pyarrow as pa
        import pyarrow.parquet as pq

        data = self.store.read(self._prefix(version.name, version.id) + version.data_file)
        with ThreadPoolExecutor(1) as pool:
            digest = pool.submit(lambda: hashlib.sha256(data).hexdigest())
            try:
                table = pq.read_table(pa.BufferReader(data))
            except Exception:  # noqa: BLE001 - bytes that are not Parquet: the checksum says why
                self._check(version, "rows", digest.result(), version.data_sha256)
                raise
            self._check(version, "rows", digest.result(), version.data_sha256)
        return table

    @contextlib.contextmanager
    def rows_file(self, version: DataVersion) -> Iterator[str]:
        """A path on this machine to the version's rows file, for reading it in record batches (Parquet
        seeks): the store's own file where it keeps files, else a temporary copy. Not checked here:
        :meth:`check_rows_file` streams its sha256."""
        with self.store.local_file(self._prefix(version.name, version.id) + version.data_file) as path:
            yield path

    def check_rows_file(self, version: DataVersion, path: str) -> None:
        """StoreError unless the file at ``path`` holds the version's rows (their recorded sha256), read a
        block at a time: a thread can check it while another reads the same file."""
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        self._check(version, "rows", digest.hexdigest(), version.data_sha256)

    def read_frame(self, version: DataVersion) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.read_bytes(version)))

    def _read_checked(self, version: DataVersion, file_name: str, sha256: str, what: str) -> bytes:
        data = self.store.read(self._prefix(version.name, version.id) + file_name)
        self._check(version, what, hashlib.sha256(data).hexdigest(), sha256)
        return data

    def _check(self, version: DataVersion, what: str, actual: str, recorded: str) -> None:
        if actual != recorded:
            raise StoreError(
                f"the {what} of data version {version.ref} do not match their recorded sha256 "
                f"in {self.store.uri}: the store was changed outside this tool"
            )

    def read_keys(self, version: DataVersion):
        """The rows' split keys (uint64, in the stored row order), or None for a version without them."""
        import numpy as np

        if not version.keys_file:
            return None
        data = self._read_checked(version, version.keys_file, version.keys_sha256, "row keys")
        return np.frombuffer(data, dtype=">u8").astype(np.uint64)
