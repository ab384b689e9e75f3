"""Typed features: what each column is, decided once on the training split, and the transformers for each kind.

Every feature column gets one kind (:data:`KINDS`), from its values or from an override:

============== ============================================================================================
kind           what the model sees
============== ============================================================================================
numeric        the value (median-imputed, standardised)
boolean        one-hot of its values (a missing value is a category of its own)
categorical    one-hot of its values, at most MAX_ONE_HOT_LEVELS distinct; unseen values set no column
hashed         a high-cardinality categorical (more distinct values than MAX_ONE_HOT_LEVELS): its values
               hashed into HASH_BUCKETS signed columns. The default for high cardinality because it needs
               no target (nothing to leak, no out-of-fold fitting), costs one pass, and has a fixed width.
datetime       calendar parts: year, month, day of week, day of year, and the hour when the training
               split has times of day. The raw timestamp is never a category: a date seen in training
               never comes back, so as a category it is constant on every later row.
id             dropped: one distinct value per row (text, or whole numbers close to a row counter)
text           dropped by default (free text: several words per value, mostly distinct)
bag_of_words   free text as the presence of its MAX_WORDS most frequent training words (only when asked),
               one model input per word named ``<column>__<word>``
drop           dropped because an override says so
============== ============================================================================================

Overrides win over the detection. They come from the schema the run validates against (the curated
``schemas/<model>.pbtxt``, or ``--schema FILE``), as a tag on a feature::

    feature {
      name: "store_id"
      type: INT
      annotation { tag: "kind: categorical" }
    }

and from the params file (``features: {column: kind}``), which wins over the schema for that run. A
kind that is not one of :data:`KINDS`, or a column that is not a feature, is a one-line error.

Model input names are unique: a generated name (``colour_red``, ``created_month``, ``desc__cheap``)
that another input already has, a column named so for instance, gets the first free ``__2``, ``__3``
suffix, in the transform's output order (numeric columns first, so they keep their own names).

The decision is kept on the fitted transform (``feature_decisions_``), so it travels with the model into the
registry's lineage and the run report. Values a categorical column did not have in training are counted
(:func:`unseen_categories`) by evaluate and by the monitor, and reported.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer

from mlops.errors import StageError

KINDS = ("numeric", "boolean", "categorical", "hashed", "datetime", "id", "text", "bag_of_words", "drop")
DROPPED_KINDS = ("id", "text", "drop")
# Up to this many distinct training values a categorical column is one-hot encoded; above it, hashed.
MAX_ONE_HOT_LEVELS = 30
HASH_BUCKETS = 32
MAX_WORDS = 100
# An ID column has at least this many rows (a tiny table's columns are all distinct by chance).
MIN_ROWS_FOR_ID = 20
# Free text: values of at least this many words on average, mostly distinct.
MIN_WORDS_FOR_TEXT = 3
# A text column is a date column when this share of a sample of its values reads as dates.
DATE_SHARE = 0.95
_DATE_LIKE = re.compile(
    r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}"  # a date
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?"  # a time of day
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$"  # a time zone
)
_SAMPLE = 2000


def _non_null_text(column: pd.Series) -> pd.Series:
    values = column.dropna()
    return values.iloc[:_SAMPLE].astype(str)


def looks_like_dates(column: pd.Series) -> bool:
    """A datetime column, or text whose values (a sample) are nearly all dates."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return True
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return False
    sample = _non_null_text(column)
    if sample.empty:
        return False
    if sample.str.match(_DATE_LIKE).mean() < DATE_SHARE:
        return False
    return bool(parse_dates(sample).notna().mean() >= DATE_SHARE)


def parse_dates(values) -> pd.Series:
    """Values as UTC timestamps (NaT where a value is missing or not a date)."""
    series = pd.Series(np.asarray(values).ravel())
    if pd.api.types.is_datetime64_any_dtype(series):
        return pd.to_datetime(series, utc=True)
    text = series.where(series.notna(), None)
    try:
        return pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    except (ValueError, TypeError):
        return pd.to_datetime(text, errors="coerce", utc=True, format="mixed")


def detect_kind(column: pd.Series, split_rows: int | None = None) -> tuple[str, str]:
    """The kind of one feature column and why, from its training values. ``split_rows``: the rows of the
    whole split when ``column`` is a sample of it (whole numbers close to a row counter span the split's
    rows, not the sample's)."""
    values = column.dropna()
    rows, distinct = len(column), values.nunique()
    counter_span = 2 * max(rows, split_rows or 0)
    if pd.api.types.is_bool_dtype(column) or (distinct == 2 and set(map(str, values.unique())) <= _BOOLEAN_WORDS):
        return "boolean", "two values, true and false"
    if looks_like_dates(column):
        return "datetime", "dates: expanded to calendar parts, never used as a category"
    if pd.api.types.is_numeric_dtype(column):
        whole = pd.api.types.is_integer_dtype(column) or bool((values == values.round()).all())
        if (
            rows >= MIN_ROWS_FOR_ID
            and whole
            and distinct == rows
            and len(values)
            and values.max() - values.min() + 1 <= counter_span
        ):
            return "id", f"one distinct whole number per row ({distinct} rows): an identifier, dropped"
        return "numeric", "numbers"
    text = _non_null_text(column)
    words = text.str.split().str.len().mean() if len(text) else 0.0
    if words >= MIN_WORDS_FOR_TEXT and distinct > 0.5 * len(values):
        return "text", f"free text ({words:.1f} words per value on average): dropped (ask for bag_of_words to use it)"
    if rows >= MIN_ROWS_FOR_ID and distinct == rows:
        return "id", f"one distinct value per row ({distinct} rows): an identifier, dropped"
    if distinct > MAX_ONE_HOT_LEVELS:
        return "hashed", f"{distinct} distinct values (over {MAX_ONE_HOT_LEVELS}): hashed into {HASH_BUCKETS} columns"
    return "categorical", f"{distinct} distinct values: one-hot"


_BOOLEAN_WORDS = {"True", "False", "true", "false", "yes", "no", "Yes", "No", "0", "1", "0.0", "1.0"}


def check_overrides(overrides, columns) -> dict:
    """The params file's ``features`` section, checked: column -> kind."""
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise StageError(f"'features' in the params file must map columns to kinds, got {overrides!r}")
    for column, kind in overrides.items():
        if kind not in KINDS:
            raise StageError(f"features.{column} must be one of {', '.join(KINDS)}, got {kind!r}")
        if columns is not None and column not in columns:
            raise StageError(f"features.{column}: no such feature column; columns: {', '.join(map(str, columns))}")
    return dict(overrides)


def decide_kinds(
    features: pd.DataFrame,
    overrides: dict | None = None,
    schema_overrides: dict | None = None,
    split_rows: int | None = None,
) -> dict[str, dict]:
    """column -> {"kind", "reason"} for every feature column: the params file, then the schema, then detection
    (:func:`detect_kind`; ``split_rows``: the whole split's rows when ``features`` is a sample of it)."""
    overrides = check_overrides(overrides, list(features.columns))
    schema_overrides = schema_overrides or {}
    decisions = {}
    for column in features.columns:
        if column in overrides:
            decisions[column] = {"kind": overrides[column], "reason": "set in the params file (features)"}
        elif column in schema_overrides:
            decisions[column] = {"kind": schema_overrides[column], "reason": "set in the schema (annotation tag)"}
        else:
            kind, reason = detect_kind(features[column], split_rows)
            decisions[column] = {"kind": kind, "reason": reason}
    return decisions


KIND_TAG = "kind:"
_PROTO_TOKEN = re.compile(
    r"""\s+|\#[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[{}<>\[\]:;,]|[^\s{}<>\[\]:;,"'\#]+"""
)


def _proto_tokens(text: str) -> list[str]:
    tokens, at = [], 0
    while at < len(text):
        match = _PROTO_TOKEN.match(text, at)
        if not match:
            raise StageError(f"the schema is not a readable text proto near {text[at : at + 20]!r}")
        token, at = match.group(), match.end()
        if not token.isspace() and not token.startswith("#"):
            tokens.append(token)
    return tokens


def _proto_string(token: str) -> str:
    import codecs

    if token[:1] not in ("'", '"'):
        return token
    return codecs.escape_decode(token[1:-1].encode("utf-8"))[0].decode("utf-8", errors="replace")


def _schema_tags(text: str) -> dict[str, list[str]]:
    """feature name -> its annotation tags, read from a TFDV schema in text format (no TFDV needed)."""
    tokens = _proto_tokens(text)
    path: list[str] = []  # the messages we are in, outermost first
    tags: dict[str, list[str]] = {}
    name: str | None = None
    feature_tags: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("}", ">"):
            if path == ["feature"] and name is not None:
                tags[name] = feature_tags
            if path:
                path.pop()
            if not path:
                name, feature_tags = None, []
            i += 1
            continue
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if following == ":" and i + 2 < len(tokens) and tokens[i + 2] not in ("{", "<"):
            values, i = [], i + 2
            if tokens[i] == "[":
                i += 1
                while i < len(tokens) and tokens[i] != "]":
                    if tokens[i] != ",":
                        values.append(_proto_string(tokens[i]))
                    i += 1
                i += 1
            else:
                value = ""
                while i < len(tokens) and tokens[i][:1] in ("'", '"'):  # adjacent strings are one
                    value += _proto_string(tokens[i])
                    i += 1
                if not value and i < len(tokens):
                    value, i = tokens[i], i + 1
                values.append(value)
            if path == ["feature"] and token == "name":
                name = values[-1]
            elif path == ["feature", "annotation"] and token == "tag":
                feature_tags += values
            continue
        if following in ("{", "<"):
            path.append(token)
            i += 2
        elif following == ":" and i + 2 < len(tokens):
            path.append(token)
            i += 3
        else:
            i += 1
    return tags


def schema_kinds(schema_text: str | None, columns, target: str | None = None) -> dict[str, str]:
    """The kinds a schema sets (``annotation { tag: "kind: categorical" }`` on a feature): column -> kind.

    A kind that is not one of :data:`KINDS`, two kinds for one feature, or a kind on the target or on a
    column that is not a feature is a one-line StageError.
    """
    return check_kind_tags(kind_tags(schema_text), columns, target)


def kind_tags(schema_text: str | None) -> dict[str, str]:
    """The kind tags of a schema as feature -> kind, before they meet any data (the validate stage
    reads them so prepare's cache key holds them as a value); one kind per feature, each one of
    :data:`KINDS`, or a one-line StageError."""
    if not schema_text:
        return {}
    kinds: dict[str, str] = {}
    for feature, tags in _schema_tags(schema_text).items():
        chosen = [tag.split(":", 1)[1].strip() for tag in tags if tag.strip().startswith(KIND_TAG)]
        if not chosen:
            continue
        if len(chosen) > 1:
            raise StageError(f"the schema gives feature {feature!r} {len(chosen)} kind tags; keep one")
        if chosen[0] not in KINDS:
            raise StageError(
                f"the schema's tag 'kind: {chosen[0]}' on feature {feature!r} must name one of {', '.join(KINDS)}"
            )
        kinds[feature] = chosen[0]
    return kinds


def check_kind_tags(tags: dict[str, str], columns, target: str | None = None) -> dict[str, str]:
    """``tags`` (:func:`kind_tags`) against the data: a kind on the target or on a column that is not
    a feature is a one-line StageError."""
    for feature in tags:
        if feature == target:
            raise StageError(f"the schema sets a kind on {feature!r}, the target; kinds are for feature columns")
        if feature not in columns:
            raise StageError(f"the schema sets a kind on {feature!r}, which is not a feature column of this data")
    return dict(tags)


class CalendarParts(TransformerMixin, BaseEstimator):
    """Date columns as numbers: year, month, day of week, day of year, and hour when training had times."""

    def fit(self, X, y=None):
        frame = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        hours = []
        for column in frame.columns:
            stamps = parse_dates(frame[column])
            hours.append(bool((stamps.dt.hour.fillna(0) != 0).any()))
        self.with_hour_ = np.asarray(hours, dtype=bool)
        return self

    def transform(self, X):
        frame = pd.DataFrame(X)
        parts = []
        for index, column in enumerate(frame.columns):
            stamps = parse_dates(frame[column])
            parts += [stamps.dt.year, stamps.dt.month, stamps.dt.day_of_week, stamps.dt.day_of_year]
            if self.with_hour_[index]:
                parts.append(stamps.dt.hour)
        return np.column_stack([p.to_numpy(dtype=float, na_value=np.nan) for p in parts])

    def get_feature_names_out(self, input_features=None):
        names = []
        for index, column in enumerate(self.feature_names_in_):
            names += [f"{column}_{part}" for part in ("year", "month", "dayofweek", "dayofyear")]
            if self.with_hour_[index]:
                names.append(f"{column}_hour")
        return np.asarray(names, dtype=object)


class HashedCategories(TransformerMixin, BaseEstimator):
    """High-cardinality categories hashed (signed) into ``buckets`` columns per feature; the training
    values are kept (``categories_``) only to count unseen ones later."""

    def __init__(self, buckets: int = HASH_BUCKETS):
        self.buckets = buckets

    def fit(self, X, y=None):
        frame = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.categories_ = [np.asarray(sorted(set(_as_strings(frame[c]))), dtype=object) for c in frame.columns]
        return self

    def transform(self, X):
        from sklearn.feature_extraction import FeatureHasher

        frame = pd.DataFrame(X)
        hasher = FeatureHasher(n_features=self.buckets, input_type="string", alternate_sign=True)
        blocks = [hasher.transform([[value] for value in _as_strings(frame[c])]).toarray() for c in frame.columns]
        return np.hstack(blocks)

    def get_feature_names_out(self, input_features=None):
        return np.asarray([f"{c}_hash{i}" for c in self.feature_names_in_ for i in range(self.buckets)], dtype=object)


def _as_strings(column: pd.Series) -> list[str]:
    return [str(v) if pd.notna(v) else "(missing)" for v in column]


def fill_text(values) -> np.ndarray:
    """Free text as a 1-D array of strings (missing: empty), the input a word counter takes."""
    series = pd.Series(np.asarray(values, dtype=object).ravel())
    return series.where(series.notna(), "").astype(str).to_numpy(dtype=object)


class BagOfWords(TransformerMixin, BaseEstimator):
    """Free-text columns as 0/1 columns, one per word of the ``max_words`` most frequent training words of
    each column, named ``<column>__<word>`` (two text columns sharing a word give two inputs)."""

    def __init__(self, max_words: int = MAX_WORDS):
        self.max_words = max_words

    def fit(self, X, y=None):
        from sklearn.feature_extraction.text import CountVectorizer

        frame = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.vectorizers_ = [
            CountVectorizer(max_features=self.max_words, binary=True).fit(fill_text(frame[c])) for c in frame.columns
        ]
        return self

    def transform(self, X):
        frame = pd.DataFrame(X)
        blocks = [v.transform(fill_text(frame[c])).toarray() for v, c in zip(self.vectorizers_, frame.columns)]
        return np.hstack(blocks).astype(float)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(
            [
                f"{c}__{word}"
                for c, v in zip(self.feature_names_in_, self.vectorizers_)
                for word in v.get_feature_names_out()
            ],
            dtype=object,
        )


def unique_names(names) -> list[str]:
    """``names`` with each repeat renamed to the first free ``<name>__2``, ``__3``, ... (free: not among
    the names given, nor given out already), so the first in order keeps its name; deterministic."""
    names = [str(name) for name in names]
    taken, seen, result = set(names), set(), []
    for name in names:
        if name in seen:
            number = 2
            while f"{name}__{number}" in taken or f"{name}__{number}" in seen:
                number += 1
            name = f"{name}__{number}"
        seen.add(name)
        result.append(name)
    return result


class FeatureTransform(ColumnTransformer):
    """A ColumnTransformer whose model input names are made unique (:func:`unique_names`) instead of
    refused: a generated name (one-hot ``colour_red``, ``desc__cheap``) may equal a column's own name."""

    def _add_prefix_for_feature_names_out(self, transformer_with_feature_names_out):
        if self.verbose_feature_names_out is not False:
            return super()._add_prefix_for_feature_names_out(transformer_with_feature_names_out)
        names = [name for _, block in transformer_with_feature_names_out for name in block]
        return np.asarray(unique_names(names), dtype=object)


def unseen_categories(model, features: pd.DataFrame) -> dict[str, int]:
    """Rows whose value a categorical feature never had in training, by column (only columns with any).

    ``model``: a fitted ColumnTransformer from mlops.stages.prepare, or a Pipeline whose first step is one.
    """
    transform = model.steps[0][1] if hasattr(model, "steps") else model
    counts: dict[str, int] = {}
    for name, fitted, columns in getattr(transform, "transformers_", []):
        if name in ("one_hot", "hashed") and not isinstance(fitted, str):
            encoder = fitted.named_steps["encode"] if hasattr(fitted, "named_steps") else fitted
            for column, known in zip(columns, encoder.categories_):
                if column not in features.columns:
                    continue
                seen = set(map(str, known))
                values = features[column]
                present = values.notna()
                unseen = int((~values[present].astype(str).isin(seen)).sum())
                if unseen:
                    counts[str(column)] = unseen
    return counts
