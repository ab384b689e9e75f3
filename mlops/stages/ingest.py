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
        path = Path(unquote(parsed.path) if scheme == "file" else uri)
        if not path.is_file():
            raise StageError(f"data file not found: {path}")
        try:
            return _mapped(path), path.name
        except OSError as error:
            raise StageError(f"cannot read data file {path}: {error.strerror}") from None
    if scheme in ("http", "https"):
        from mlops.data.http_source import download

        return download(uri), Path(parsed.path).name
    if scheme == "s3":
        from mlops.store.s3 import read_s3_uri

        return read_s3_uri(uri), Path(parsed.path).name
    raise StageError(f"unsupported data URI {redact(uri)}: use a path, file://, http(s):// or s3://")


def _mapped(path: Path) -> bytes | memoryview:
    """The file's bytes as a read-only memory map (unmapped when the last view of it goes)."""
    import mmap

    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return b""
        return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))


def _nested_columns(table) -> list[str]:
    import pyarrow as pa

    return [field.name for field in table.schema if pa.types.is_nested(field.type)]


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
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    options = pcsv.ConvertOptions(
        null_values=NULL_VALUES,
        strings_can_be_null=True,
        timestamp_parsers=[],
        true_values=["True", "true", "TRUE"],
        false_values=["False", "false", "FALSE"],
    )
    table = pcsv.read_csv(pa.BufferReader(data), convert_options=options)
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
    nested = _nested_columns(table)
    if nested:
        raise StageError(
            f"{label}: column '{nested[0]}' is nested (lists or structs); flatten it into plain columns first"
        )
    if table.num_columns == 0:
        raise StageError(f"{label} has no columns")
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


def _refuse_stray_strings(column: str, codes: np.ndarray, uniques: list, rows: np.ndarray) -> None:
    """Stop when a mostly numeric column holds a few non-numeric values.

    That is nearly always a data error (``"n/a"``, ``"12,5"``, a shifted row), and
    training would silently treat the whole column as categories. The column's present
    values come as codes into their distinct values (parsed once each: a text column has
    few) and their row positions."""
    if not len(codes):
        return
    parsed_unique = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").notna().to_numpy()
    parsed = parsed_unique[codes]
    if parsed.mean() >= NUMERIC_MAJORITY and not parsed.all():
        bad = np.flatnonzero(~parsed)
        raise StageError(
            f"column '{column}' is numeric but holds {len(bad)} non-numeric value(s), "
            f"e.g. {_shown(uniques[codes[bad[0]]])} at row {rows[bad[0]] + 1}"
        )


def _shown(value, limit: int = 40) -> str:
    """A data value quoted in a message: short and printable (a message must not dump what was read)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _refuse_non_finite(column: str, infinite: np.ndarray, value_at) -> None:
    """The one-line error for a column's first infinite value (``value_at(row)`` gives it)."""
    row = int(np.flatnonzero(infinite)[0])
    raise StageError(
        f"column '{column}' holds a non-finite value ({value_at(row)}) at row {row + 1}; replace it or drop the row"
    )


def clean_table(table):
    """Rename the columns of an Arrow table to safe names and reject data that would train badly
    (stray strings in a numeric column, ±inf), in Arrow: only a text column's distinct values are
    parsed in Python. Returns the table and the map of original to cleaned names."""
    table, mapping, _ = _clean_table(table)
    return table, mapping


def _clean_table(table):
    """:func:`clean_table`, and the text columns' dictionary encodings (the content hash needs them too)."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.compute as pc

    from mlops.data.content import usable_cores

    mapping = normalize_column_names(table.column_names)
    table = table.rename_columns([mapping[str(name)] for name in table.column_names])

    def checked(name, column):
        """The column's dictionary encoding if it is text (None if not), once its cells are checked."""
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            encoded = column.combine_chunks().dictionary_encode()
            present = encoded.indices.is_valid().to_numpy(zero_copy_only=False)
            codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
            _refuse_stray_strings(name, codes[present], encoded.dictionary.to_pylist(), np.flatnonzero(present))
            return encoded
        if pa.types.is_floating(column.type):
            infinite = pc.is_inf(column).fill_null(False)
            if pc.any(infinite).as_py():
                _refuse_non_finite(
                    name, infinite.to_numpy(zero_copy_only=False), lambda row, column=column: column[row].as_py()
                )
        return None

    # A column per core (Arrow lets go of the GIL); map() raises the first bad column's error in table order.
    workers = min(usable_cores(), table.num_columns) if table.num_rows >= 100_000 else 1
    with ThreadPoolExecutor(max(1, workers)) as pool:
        found = list(pool.map(checked, table.column_names, table.columns))
    encodings = {name: encoded for name, encoded in zip(table.column_names, found) if encoded is not None}
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
    from mlops.data.content import keyed

    table, mapping, encodings = _clean_table(load_table(data_uri))
    version, new = versions.publish(
        name or dataset_name(data_uri), table, source=redact(data_uri), content=keyed(table, encodings)
    )
    return IngestResult(version=version, new=new, columns=mapping, source=redact(data_uri))


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
