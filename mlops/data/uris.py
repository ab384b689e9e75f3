"""URIs as they may be shown or recorded: without credentials.

A data URI can carry a secret in its user-info (``https://user:token@host/x.csv``)
or its query string (a presigned URL). Everything this project writes down or
prints (data-version manifests, lineage, reports, logs, CLI output, error
messages) goes through :func:`redact` first.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from mlops import config

REDACTED = "REDACTED"


def redact(uri: str) -> str:
    """``uri`` with its user-info and query string replaced, so no credential is kept.

    >>> redact("https://alice:s3cret@example.com/data.csv?X-Amz-Signature=abc")
    'https://REDACTED@example.com/data.csv?REDACTED'
    >>> redact("/data/wine.csv")
    '/data/wine.csv'
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    if not parts.scheme or len(parts.scheme) == 1:  # a plain path (or a Windows drive letter)
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# Where a data URI that carries a secret travels instead of the pipeline parameter
# (which KFP records, logs and shows): the environment of the task that reads it.
SECRET_URI_ENV = config.DATA_URI.name


def carries_secret(uri: str) -> bool:
    """Whether ``uri`` holds a credential (user-info or a query string) that must not be recorded."""
    return redact(uri) != uri


def with_secret(uri: str) -> str:
    """``uri`` as given, or the full URI from MLOPS_DATA_URI when ``uri`` is its redacted form.

    The CLI passes a secret-bearing URI to a run as its redacted form (the pipeline
    parameter) plus the full one in the task's environment; on a cluster the full
    one comes from the optional Secret ``mlops-data-source`` (key ``uri``).
    """
    full = config.DATA_URI.get()
    return full if full and redact(full) == uri else uri
