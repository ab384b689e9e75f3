"""The content hash and canonical row order of a table too big for memory (mlops.data.content, streamed).

:class:`ExternalOrder` takes a table's rows in record batches, in any order, and gives back
exactly what :func:`mlops.data.content.keyed` and :func:`~mlops.data.content.hash_of` give for the
whole table (the same id, the same row keys, the same canonical order), holding about one
bucket of rows at a time. It is an external sort by row key:

1. Each batch's row keys are computed (a key depends on its own row only) and the rows go to
   one of 2**k bucket files on disk by their key's leading bits. Keys are uniform (the key's
   final avalanche), so buckets are about equal, and bucket order is key order.
2. Buckets are read back in order; each is sorted as the in-memory path sorts a whole table
   (by key, then by the row's bytes), handed to the caller to write, and its columns' tags
   and payloads are appended to per-column spill files in canonical order.
3. A column's digest is the sha256 of its tags, then its payloads (a text column's payloads
   spelled as its distinct payloads, sorted, and each row's rank among them: the distinct
   payloads are gathered in step 1), streamed from those files.

Disk: about the table's Arrow size twice over, in a temporary directory the caller owns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlops.data import content as content_mod

# Rows the spill files take at once (and the block a digest reads from them).
_SPILL_BLOCK_BYTES = 8 << 20
# A bucket of about this many bytes of source: a few hundred MB in Arrow at most.
BUCKET_SOURCE_BYTES = 64 << 20
_KEY_COLUMN = "__mlops_row_key"
_RECORD = np.dtype([("w0", ">u8"), ("w1", ">u8"), ("w2", ">u8"), ("w3", ">u8")])


def bucket_bits(source_bytes: int) -> int:
    """log2 of the bucket count for a source of ``source_bytes``: at most 2**8 buckets, each an open file
    while rows arrive (a process may have 1,024), so past 16 GB of source the buckets grow instead."""
    buckets = max(1, -(-source_bytes // BUCKET_SOURCE_BYTES))
    return min(8, (buckets - 1).bit_length())


def _records(table: np.ndarray) -> np.ndarray:
    """Rows of 32 payload bytes as one comparable value each (bytewise order, as np.unique(axis=0))."""
    return np.ascontiguousarray(table).view(_RECORD).reshape(-1)


@dataclass
class Streamed:
    """What :meth:`ExternalOrder.finish` found: the id, the row count and the keys in stored order."""

    id: str
    rows: int
    keys: bytes  # big-endian uint64, in canonical row order (the data version's keys file)


class ExternalOrder:
    """Rows in (:meth:`add`), rows in canonical order and the content hash out (:meth:`finish`)."""

    def __init__(self, workdir: Path, bits: int):
        self.workdir = Path(workdir)
        self.bits = bits
        self.rows = 0
        self.schema = None
        self._writers: list = []
        self._distinct: dict[str, list[np.ndarray]] = {}  # a text column's distinct 32-byte payloads so far
        self._widths: dict[str, int] = {}

    # Step 1 ---------------------------------------------------------------

    def add(self, table, encoded: dict | None = None) -> None:
        """Take a batch of rows (an Arrow table with the same schema every time)."""
        import pyarrow as pa

        if self.schema is None:
            self.schema = table.schema
            spilled = table.schema.append(pa.field(_KEY_COLUMN, pa.uint64()))
            self._writers = [
                pa.ipc.new_stream(str(self.workdir / f"bucket-{index:04d}.arrow"), spilled)
                for index in range(2**self.bits)
            ]
        elif not table.schema.equals(self.schema):
            raise ValueError(f"batch schema {table.schema} differs from the first batch's {self.schema}")
        names, columns, keys = content_mod.cells_and_keys(table, encoded)
        for name, cells in zip(names, columns):
            self._note_width(name, cells.width)
            if cells.codes is not None:
                used = np.bincount(cells.codes, minlength=len(cells.table)) > 0
                self._gather_distinct(name, cells.table[used])
        bucket = (keys >> np.uint64(64 - self.bits)).astype(np.int64) if self.bits else np.zeros(len(keys), np.int64)
        rows = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[rows], np.arange(1, 2**self.bits))
        grouped = table.append_column(_KEY_COLUMN, pa.array(keys, type=pa.uint64())).take(pa.array(rows))
        for index, (start, end) in enumerate(zip([0, *bounds], [*bounds, len(rows)])):
            if end > start:
                self._writers[index].write_table(grouped.slice(start, end - start))
        self.rows += table.num_rows

    def _note_width(self, name: str, width: int) -> None:
        if self._widths.setdefault(name, width) != width:
            raise ValueError(f"column {name!r} changed payload width between batches ({self._widths[name]} to {width})")

    def _gather_distinct(self, name: str, payloads: np.ndarray) -> None:
        parts = self._distinct.setdefault(name, [])
        parts.append(np.ascontiguousarray(payloads))
        if len(parts) > 16:  # keep the list short: merge into one sorted, distinct block
            self._distinct[name] = [np.unique(np.vstack(parts), axis=0)]

    def discard(self) -> None:
        """Drop what was taken so far (its files too)."""
        for writer in self._writers:
            writer.close()
        for path in self.workdir.glob("bucket-*.arrow"):
            path.unlink()
        self.rows, self.schema, self._writers, self._distinct, self._widths = 0, None, [], {}, {}

    # Steps 2 and 3 ----------------------------------------------------------

    def finish(self, write_rows: Callable) -> Streamed:
        """Hand each bucket's rows, in canonical order, to ``write_rows`` (an Arrow table each, in
        order), then hash. The bucket files are deleted as they are read."""
        import pyarrow as pa

        for writer in self._writers:
            writer.close()
        names: list[str] = sorted(self.schema.names) if self.schema is not None else []
        distinct = {name: np.unique(np.vstack(parts), axis=0) for name, parts in self._distinct.items() if len(parts)}
        self._distinct = {}
        spills = {name: (self._spill(name, "tags"), self._spill(name, "payloads")) for name in names}
        ordered_keys = []
        for index in range(2**self.bits):
            path = self.workdir / f"bucket-{index:04d}.arrow"
            with pa.memory_map(str(path)) as source:
                bucket = pa.ipc.open_stream(source).read_all()
            path.unlink()
            if not bucket.num_rows:
                continue
            keys = bucket.column(_KEY_COLUMN).to_numpy()
            bucket = bucket.drop_columns([_KEY_COLUMN])
            _, columns, _ = content_mod.cells_and_keys(bucket)
            order = content_mod.canonical_order(keys, columns)
            write_rows(bucket.take(pa.array(order)))
            ordered_keys.append(keys[order])
            for name, cells in zip(names, columns):
                tags, payloads = spills[name]
                tags.write(cells.tags[order].tobytes())
                if cells.codes is not None:
                    ranks = np.searchsorted(_records(distinct[name]), _records(cells.table))
                    payloads.write(ranks.astype(_rank_type(len(distinct[name])))[cells.codes[order]].tobytes())
                else:
                    payloads.write(cells.payload_in(order).tobytes())
        for tags, payloads in spills.values():
            tags.close()
            payloads.close()
        overall = hashlib.sha256(content_mod.SCHEME.encode("ascii"))
        overall.update(self.rows.to_bytes(8, "big"))
        for name in names:
            digest = self._digest_of(name, distinct.get(name))
            encoded = name.encode("utf-8")
            overall.update(len(encoded).to_bytes(8, "big") + encoded + self._widths[name].to_bytes(2, "big") + digest)
        keys = np.concatenate(ordered_keys) if ordered_keys else np.zeros(0, dtype=np.uint64)
        return Streamed(id=overall.hexdigest(), rows=self.rows, keys=keys.astype(">u8").tobytes())

    def _spill_path(self, name: str, part: str) -> Path:
        return self.workdir / f"{part}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:16]}.bin"

    def _spill(self, name: str, part: str):
        return open(self._spill_path(name, part), "wb")  # noqa: SIM115 - closed in finish()

    def _digest_of(self, name: str, distinct: np.ndarray | None) -> bytes:
        digest = hashlib.sha256()
        for part in ("tags", "payloads"):
            if part == "payloads" and distinct is not None:
                digest.update(len(distinct).to_bytes(8, "big") + distinct.tobytes())
            path = self._spill_path(name, part)
            with open(path, "rb") as handle:
                while block := handle.read(_SPILL_BLOCK_BYTES):
                    digest.update(block)
            path.unlink()
        return digest.digest()


def _rank_type(count: int) -> str:
    return ">u4" if count < 2**32 else ">u8"
