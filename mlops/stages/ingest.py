"""Ingest: read a table from anywhere, clean it and publish it as a data version.

:func:`ingest_source` reads the source (a path, file://, http(s)://, s3:// or a data
version ``NAME@VERSION``), cleans the column names, rejects data that would silently
train badly, and publishes the table as a content-addressed data version. Its output is
the data version's reference, so everything after it is keyed by content, not by URI:
the split stage (mlops.stages.split) reads that version. One path, in Arrow: the stage
never builds a pandas frame.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from mlops.data.uris import redact
from mlops.errors import StageError
from mlops.stages.split import SplitConfig, dataset_name, is_version_reference

log = logging.getLogger(__name__)

# Share of an object column's values that must parse as numbers before the
# rest are called out as stray strings rather than a genuine text column.
NUMERIC_MAJORITY = 0.9


# Reading ----------------------------------------------------------------


def fetch_bytes(uri: str) -> tuple[bytes | memoryview, str]:
    """Return the raw bytes behind ``uri`` and the file name used to pick a format.

    Accepts a local path, file://, http(s):// and s3:// (credentials from the
    usual AWS_* variables; see mlops.store.s3). A local file comes as a
    read-only memory map (a memoryview): the parser reads the page cache directly,
    without a copy of the whole file first.
    """
    parsed, scheme = _checked_uri(uri)
    if scheme == "file":
        path = _existing_file(uri, parsed)
        try:
            return _mapped(path), path.name
        except OSError as error:
            raise StageError(f"cannot read data file {path}: {error.strerror}") from None
    if scheme in ("http", "https"):
        from mlops.data.http_source import download

        return download(uri), Path(parsed.path).name
    from mlops.store.s3 import read_s3_uri

    return read_s3_uri(uri), Path(parsed.path).name


def fetch_file(uri: str, directory: Path) -> Path:
    """:func:`fetch_bytes` as a file: a local file itself, a remote source downloaded into
    ``directory`` a block at a time (so a big source never sits in memory whole)."""
    parsed, scheme = _checked_uri(uri)
    if scheme == "file":
        return _existing_file(uri, parsed)
    target = Path(directory) / (re.sub(r"[^A-Za-z0-9._-]+", "-", Path(unquote(parsed.path)).name) or "source")
    with open(target, "wb") as handle:
        if scheme in ("http", "https"):
            from mlops.data.http_source import download_into

            download_into(uri, handle.write)
        else:
            from mlops.store.s3 import copy_s3_uri

            copy_s3_uri(uri, handle.write)
    return target


def _checked_uri(uri: str):
    """(the parsed URI, its kind: file, http, https or s3), once the source policy allows it; else a
    StageError."""
    try:
        parsed = urlparse(uri)
        scheme = parsed.scheme.lower()
        _ = parsed.port  # raises ValueError for a port that is not a number
    except ValueError as error:
        raise StageError(f"invalid data URI {redact(uri)}: {error}") from None
    from mlops.data import source_policy

    source_policy.current().check_uri(uri)
    log.debug("reading %s", redact(uri))
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] == ":\\"):
        return parsed, "file"
    if scheme in ("http", "https", "s3"):
        return parsed, scheme
    raise StageError(f"unsupported data URI {redact(uri)}: use a path, file://, http(s):// or s3://")


def _existing_file(uri: str, parsed) -> Path:
    path = Path(unquote(parsed.path) if parsed.scheme.lower() == "file" else uri)
    if not path.is_file():
        raise StageError(f"data file not found: {path}")
    return path


def _mapped(path: Path) -> bytes | memoryview:
    """The file's bytes as a read-only memory map (unmapped when the last view of it goes)."""
    import mmap

    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return b""
        return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))


# The cells pandas reads as missing: the same set for CSV read with Arrow.
NULL_VALUES = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]


def _read_csv(data: bytes):
    """Arrow's multithreaded CSV reader, with pandas' reading of missing values and booleans, and
    dates left as text (the pipeline has no date features; inferring them would change a column's type)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    return _as_read(pcsv.read_csv(pa.BufferReader(data), convert_options=_csv_options()))


def _csv_options(column_types: dict | None = None):
    import pyarrow.csv as pcsv

    return pcsv.ConvertOptions(
        null_values=NULL_VALUES,
        strings_can_be_null=True,
        timestamp_parsers=[],
        true_values=["True", "true", "TRUE"],
        false_values=["False", "false", "FALSE"],
        column_types=column_types or {},
    )


def _as_read(table):
    """A table (or batch) as Arrow parsed it from CSV, in pandas' reading: dates as text, leading
    spaces of text trimmed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in table.columns:
        if pa.types.is_temporal(column.type):
            column = column.cast(pa.string())
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pc.utf8_ltrim_whitespace(column)  # as pandas' skipinitialspace
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _utf8_error(data: bytes | memoryview, label: str) -> StageError | None:
    try:
        str(data, "utf-8")
    except UnicodeDecodeError as error:
        return StageError(
            f"{label} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); re-save it as UTF-8"
        )
    return None


def read_table(data: bytes | memoryview, filename: str):
    """Parse CSV or Parquet bytes into an Arrow table with a clear error for each bad case.

    Arrow all the way: the ingest stage never builds a pandas frame (a million rows
    of text cells as Python objects cost more than the whole read).
    """
    import pyarrow as pa

    label = filename or "data"
    if filename.lower().endswith((".parquet", ".pq")) or bytes(data[:4]) == b"PAR1":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(pa.BufferReader(data))
        except Exception as error:  # noqa: BLE001 - pyarrow raises several unrelated types
            raise StageError(f"{label} is not a readable Parquet file: {error}") from None
    else:
        if bytes(data[:3]) == b"\xef\xbb\xbf":
            data = data[3:]  # a UTF-8 byte-order mark
        if not len(data) or bytes(data[:4096]).isspace() and bytes(data).isspace():  # strip() would copy it all
            raise StageError(f"{label} is empty")
        try:
            table = _read_csv(data)
        except Exception as error:  # noqa: BLE001 - pyarrow.lib.ArrowInvalid and friends
            raise (_utf8_error(data, label) or StageError(f"{label} is not a readable CSV file: {error}")) from None
        # Arrow reads bytes that are not UTF-8 as a binary column: only then is the whole file decoded,
        # for the offset of the first bad byte.
        if any(pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type) for field in table.schema):
            error = _utf8_error(data, label)
            if error:
                raise error
    _refuse_shape(table.schema, label)
    if table.num_rows == 0:
        raise StageError(f"{label} has a header but no data rows")
    log.debug("%s: %d rows x %d columns", label, table.num_rows, table.num_columns)
    return table


# Cleaning ---------------------------------------------------------------


def clean_column_name(original, position: int) -> str:
    """A safe snake_case name: TFDV features, Parquet columns and KFP metadata all want one."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", str(original)).strip("_").lower()
    if not name:
        name = f"column_{position}"
    if name[0].isdigit():
        name = f"c_{name}"
    return name


def normalize_column_names(columns) -> dict[str, str]:
    """Map each original column name to its cleaned name; refuse two that clean alike.

    Real data has names like ``od280/od315_of_diluted_wines`` or ``Age (years)``.
    Two columns that become the same name (``Quality Class`` and ``quality_class``)
    are an error naming both: picking one silently would train on the wrong column.
    """
    mapping: dict[str, str] = {}
    owner: dict[str, str] = {}
    for position, original in enumerate(columns):
        name = clean_column_name(original, position)
        if str(original) in mapping:  # the mapping is by name: the second would take the first's data
            raise StageError(f"two columns are named '{original}'; rename one of them")
        if name in owner:
            raise StageError(f"columns '{owner[name]}' and '{original}' both clean to '{name}'; rename one of them")
        owner[name] = str(original)
        mapping[str(original)] = name
    return mapping


class _Checks:
    """The checks of :func:`clean_table` over a table given whole or in batches (row numbers count
    on across batches): a column's first infinite value, and a mostly numeric text column's stray
    strings, counted over all its rows. :meth:`raise_first` raises the first problem in column order."""

    def __init__(self):
        self.columns: list[str] = []
        self.infinite: dict[str, str] = {}  # column -> its first infinite value's error
        self.text: dict[str, list] = {}  # column -> [present, numeric, first non-numeric value, its row]

    def add(self, table, first_row: int = 0) -> dict:
        """Check a batch of cleaned columns; return its text columns' dictionary encodings."""
        from concurrent.futures import ThreadPoolExecutor

        from mlops.data.content import usable_cores

        if not self.columns:
            self.columns = list(table.column_names)
        # A column per core (Arrow lets go of the GIL).
        workers = min(usable_cores(), table.num_columns) if table.num_rows >= 100_000 else 1
        with ThreadPoolExecutor(max(1, workers)) as pool:
            found = list(
                pool.map(lambda name, column: self._check(name, column, first_row), table.column_names, table.columns)
            )
        return {name: encoded for name, encoded in zip(table.column_names, found) if encoded is not None}

    def _check(self, name: str, column, first_row: int):
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            encoded = column.combine_chunks().dictionary_encode()
            present = encoded.indices.is_valid().to_numpy(zero_copy_only=False)
            codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)[present]
            uniques = encoded.dictionary.to_pylist()
            parsed = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").notna().to_numpy()[codes]
            counts = self.text.setdefault(name, [0, 0, None, None])
            counts[0] += len(codes)
            counts[1] += int(parsed.sum())
            if counts[2] is None and not parsed.all():
                first = int(np.flatnonzero(~parsed)[0])
                counts[2], counts[3] = uniques[codes[first]], first_row + int(np.flatnonzero(present)[first])
            return encoded
        if pa.types.is_floating(column.type) and name not in self.infinite:
            infinite = pc.is_inf(column).fill_null(False)
            if pc.any(infinite).as_py():
                row = int(np.flatnonzero(infinite.to_numpy(zero_copy_only=False))[0])
                self.infinite[name] = (
                    f"column '{name}' holds a non-finite value ({column[row].as_py()}) at row {first_row + row + 1}; "
                    "replace it or drop the row"
                )
        return None

    def raise_first(self) -> None:
        """Stop on the first problem found, in column order. A text column whose values are mostly
        numbers but not all is nearly always a data error ("n/a", "12,5", a shifted row), and training
        would silently treat the whole column as categories."""
        for name in self.columns:
            if name in self.infinite:
                raise StageError(self.infinite[name])
            present, numeric, value, row = self.text.get(name, (0, 0, None, None))
            if present and numeric / present >= NUMERIC_MAJORITY and numeric < present:
                raise StageError(
                    f"column '{name}' is numeric but holds {present - numeric} non-numeric value(s), "
                    f"e.g. {_shown(value)} at row {row + 1}"
                )


def _shown(value, limit: int = 40) -> str:
    """A data value quoted in a message: short and printable (a message must not dump what was read)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return repr(text if len(text) <= limit else text[:limit] + "…")


def clean_table(table):
    """Rename the columns of an Arrow table to safe names and reject data that would train badly
    (stray strings in a numeric column, ±inf), in Arrow: only a text column's distinct values are
    parsed in Python. Returns the table and the map of original to cleaned names."""
    table, mapping, _ = _clean_table(table)
    return table, mapping


def _clean_table(table):
    """:func:`clean_table`, and the text columns' dictionary encodings (the content hash needs them too)."""
    mapping = normalize_column_names(table.column_names)
    table = table.rename_columns([mapping[str(name)] for name in table.column_names])
    checks = _Checks()
    encodings = checks.add(table)
    checks.raise_first()
    return table, mapping, encodings


def resolve_target(columns, target: str) -> str:
    """The cleaned name of ``target``, given as in the file (``Quality Class``) or already clean."""
    cleaned = list(columns)
    if target in cleaned:
        return target
    candidate = clean_column_name(target, 0)
    if candidate in cleaned:
        return candidate
    raise StageError(f"target column '{target}' not found; columns are: {', '.join(map(str, cleaned))}")


# The two steps --------------------------------------------------------


def load_table(data_uri: str):
    """The Arrow table behind a path or URL, parsed (not yet cleaned)."""
    data, filename = fetch_bytes(data_uri)
    return read_table(data, filename)


# Streaming ----------------------------------------------------------------

# Bytes of CSV per record batch, and rows per Parquet batch, when a source streams.
STREAM_BLOCK_BYTES = 16 << 20
STREAM_BATCH_ROWS = 131_072
# A column's type once a later batch does not fit the one its first batch gave (Arrow's streaming CSV
# reader fixes types from the first block; reading the whole file, Arrow widens them in this order).
_WIDER_TYPE = {"null": "int64", "int64": "bool", "bool": "double"}


def local_source(data_uri: str) -> Path | None:
    """The local file behind a path or file:// URI (None for anything else, or no such file)."""
    try:
        parsed = urlparse(data_uri)
    except ValueError:
        return None
    scheme = parsed.scheme.lower()
    if scheme not in ("", "file") and not (len(scheme) == 1 and data_uri[1:3] == ":\\"):
        return None
    path = Path(unquote(parsed.path) if scheme == "file" else data_uri)
    return path if path.is_file() else None


def streams(data_uri: str) -> bool:
    """Whether ingest reads ``data_uri`` in record batches: a local file past MLOPS_INGEST_STREAM_OVER_MB."""
    path = local_source(data_uri)
    return path is not None and path.stat().st_size > _stream_over_bytes()


def _stream_over_bytes() -> float:
    from mlops import config

    return config.INGEST_STREAM_OVER_MB.get() * 2**20


class _LockedType(Exception):
    """A CSV column outgrew the type its first block gave: read again with ``column`` as ``wider``."""

    def __init__(self, column: str, wider: str):
        super().__init__(column)
        self.column, self.wider = column, wider


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as handle:
        return path.name.lower().endswith((".parquet", ".pq")) or handle.read(4) == b"PAR1"


def source_batches(path: Path, column_types: dict | None = None, columns: list[str] | None = None):
    """The file's rows as Arrow tables of a bounded size, as :func:`read_table` would read them
    (``columns``: only these, by their names in the file). Raises :class:`_LockedType` when a CSV
    column must be read as a wider type (the caller starts again with it in ``column_types``)."""
    import pyarrow as pa

    label = path.name
    if _is_parquet(path):
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering keeps every row group read
            _refuse_shape(parquet.schema_arrow, label)
            for batch in parquet.iter_batches(batch_size=STREAM_BATCH_ROWS, columns=columns):
                yield pa.Table.from_batches([batch])
        except StageError:
            raise
        except Exception as error:  # noqa: BLE001 - pyarrow raises several unrelated types
            raise StageError(f"{label} is not a readable Parquet file: {error}") from None
        return
    import pyarrow.csv as pcsv

    data = _mapped(path)
    if not len(data) or bytes(data[:4096]).isspace() and bytes(data).isspace():
        raise StageError(f"{label} is empty")
    del data
    options = _csv_options(column_types)
    if columns is not None:
        options.include_columns = columns
    try:
        reader = pcsv.open_csv(
            str(path), read_options=pcsv.ReadOptions(block_size=STREAM_BLOCK_BYTES), convert_options=options
        )
        _refuse_shape(reader.schema, label)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            table = _as_read(pa.Table.from_batches([batch]))
            if any(pa.types.is_binary(field.type) for field in table.schema):
                raise _utf8_error_in(path, label) or StageError(f"{label} is not a readable CSV file")
            yield table
    except (StageError, _LockedType):
        raise
    except Exception as error:  # noqa: BLE001 - pyarrow.lib.ArrowInvalid and friends
        locked = re.search(r"In CSV column #(\d+): CSV conversion error to (\w+)", str(error))
        if locked and "UTF8" not in str(error):
            raise _LockedType(_csv_header(path)[int(locked[1])], _WIDER_TYPE.get(locked[2], "string")) from None
        raise (_utf8_error_in(path, label) or StageError(f"{label} is not a readable CSV file: {error}")) from None


def _csv_header(path: Path) -> list[str]:
    import csv

    with open(path, encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle))


def _refuse_shape(schema, label: str) -> None:
    import pyarrow as pa

    nested = [field.name for field in schema if pa.types.is_nested(field.type)]
    if nested:
        raise StageError(
            f"{label}: column '{nested[0]}' is nested (lists or structs); flatten it into plain columns first"
        )
    if not len(schema):
        raise StageError(f"{label} has no columns")


def _utf8_error_in(path: Path, label: str) -> StageError | None:
    """:func:`_utf8_error` for a file, read a block at a time."""
    carry, offset = b"", 0
    with open(path, "rb") as handle:
        if handle.read(3) != b"\xef\xbb\xbf":
            handle.seek(0)
        while True:
            block = handle.read(1 << 20)
            data = carry + block
            try:
                data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as error:
                if not (block and error.reason == "unexpected end of data"):
                    return StageError(
                        f"{label} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
                        f"{offset + error.start}); re-save it as UTF-8"
                    )
                carry = data[error.start :]
            offset += len(data) - len(carry)
            if not block:
                return None


def target_values(data_uri: str, target: str):
    """The cleaned target name and its values in every row of a source that :func:`streams`, read
    one column at a time (what the CLI's pre-flight checks before a run of a big file: the split
    needs every column, so the training split's own check is left to the run's stages)."""
    import pyarrow as pa

    path = local_source(data_uri)
    assert path is not None  # streams() said so
    if _is_parquet(path):
        import pyarrow.parquet as pq

        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except Exception as error:  # noqa: BLE001 - pyarrow raises several unrelated types
            raise StageError(f"{path.name} is not a readable Parquet file: {error}") from None
    else:
        names = _csv_header(path)
    mapping = normalize_column_names(names)
    column = resolve_target(mapping.values(), target)
    original = next(name for name, cleaned in mapping.items() if cleaned == column)
    column_types: dict = {}
    while True:
        try:
            parts = [table.column(0) for table in source_batches(path, column_types, columns=[original])]
            break
        except _LockedType as locked:
            column_types[locked.column] = locked.wider
    values = pa.chunked_array([chunk for part in parts for chunk in part.chunks], type=parts[0].type if parts else None)
    return column, values.to_pandas().rename(column)


def _ingest_streamed(path: Path, name: str, source: str, versions) -> IngestResult:
    """Read, clean, check and publish a file too big to read whole (see mlops.data.content_stream)."""
    import tempfile

    from mlops.data.content_stream import ExternalOrder, bucket_bits

    column_types: dict = {}
    with tempfile.TemporaryDirectory(prefix="mlops-ingest-") as workdir:
        while True:
            order = ExternalOrder(Path(workdir), bucket_bits(path.stat().st_size))
            try:
                mapping = _checked_batches(path, column_types, order)
                break
            except _LockedType as locked:
                log.debug("%s: reading column %r again as %s", path.name, locked.column, locked.wider)
                column_types[locked.column] = locked.wider
                order.discard()
        version, new = versions.publish_streamed(name, order, list(mapping.values()), source=source)
    return IngestResult(version=version, new=new, columns=mapping, source=source)


def _checked_batches(path: Path, column_types: dict, order) -> dict[str, str]:
    """Clean and check each batch of the file into ``order``; return the cleaned column names."""
    checks, mapping = _Checks(), None
    for table in source_batches(path, column_types):
        if mapping is None:
            mapping = normalize_column_names(table.column_names)
        table = table.rename_columns([mapping[str(name)] for name in table.column_names])
        order.add(table, checks.add(table, order.rows))
    if mapping is None or not order.rows:
        raise StageError(f"{path.name} has a header but no data rows")
    checks.raise_first()
    return mapping


@dataclass
class IngestResult:
    """The data version a run uses, and how its column names were cleaned."""

    version: object  # mlops.store.datasets.DataVersion
    new: bool
    columns: dict[str, str]
    source: str  # the URI read, without credentials


def ingest_source(data_uri: str, store, name: str = "") -> IngestResult:
    """Read, clean and check ``data_uri`` and publish it as a data version of ``name``.

    A data version reference is resolved, not re-read: its content hash is its id.
    """
    from mlops.data.uris import with_secret
    from mlops.store.datasets import DataVersions

    data_uri = with_secret(data_uri)
    versions = DataVersions(store)
    if is_version_reference(data_uri):
        version = versions.resolve(data_uri)
        return IngestResult(version=version, new=False, columns={c: c for c in version.columns}, source=data_uri)
    import tempfile

    from mlops.data.content import keyed

    name, source = name or dataset_name(data_uri), redact(data_uri)
    with tempfile.TemporaryDirectory(prefix="mlops-source-") as scratch:
        path = fetch_file(data_uri, Path(scratch))
        if path.stat().st_size > _stream_over_bytes():
            return _ingest_streamed(path, name, source, versions)
        table, mapping, encodings = _clean_table(read_table(_mapped(path), path.name))
    version, new = versions.publish(name, table, source=source, content=keyed(table, encodings))
    return IngestResult(version=version, new=new, columns=mapping, source=source)


def check_run_parameters(
    model_name: str, search_space: dict, validation_fraction: float, test_fraction: float, min_score: str
) -> None:
    """Everything about a run that can be wrong before any data is read, each one line.

    The first task runs this, so a cluster run (which has no CLI pre-flight)
    fails in seconds with the same message `mlops run` gives.
    """
    from mlops.stages.evaluate import optional_float
    from mlops.stages.train import check_search_space
    from mlops.store.registry import validate_name

    validate_name("model", model_name)
    check_search_space(search_space)
    SplitConfig(validation_fraction=validation_fraction, test_fraction=test_fraction)
    optional_float("min_score", min_score)
