"""URIs as they may be shown or recorded: without credentials.

A data URI can carry a secret in its user-info (``https://user:token@host/x.csv``)
or its query string (a presigned URL). Everything this project writes down or
prints (data-version manifests, lineage, reports, logs, CLI output, error
messages) goes through :func:`redact` first.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

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
