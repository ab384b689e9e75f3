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


def split_userinfo(uri: str) -> tuple[str | None, str]:
    """``uri``'s user-info (everything between the scheme's ``//`` and the LAST ``@`` after it) and
    ``uri`` without it; ``(None, uri)`` when it has none.

    This is deliberately not urlsplit's reading: a password with an unencoded ``/``, ``?``
    or ``#`` ends urlsplit's authority early and would leave the rest of the secret in the
    "path". An ``@`` later in the path makes more of the URI count as user-info, never less.

    >>> split_userinfo("https://alice:pa/ss?#x@example.com/data.csv")
    ('alice:pa/ss?#x', 'https://example.com/data.csv')
    """
    if uri.startswith("//"):  # scheme-relative
        userinfo, at, host_and_path = uri[2:].rpartition("@")
        return (userinfo, f"//{host_and_path}") if at else (None, uri)
    scheme, colon, rest = uri.partition(":")
    if not colon or len(scheme) < 2 or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return None, uri  # a plain path (or a Windows drive letter)
    slashes = "//" if rest.startswith("//") else ""
    userinfo, at, host_and_path = rest[len(slashes) :].rpartition("@")
    if not at:
        return None, uri
    return userinfo, f"{scheme}:{slashes}{host_and_path}"


def redact(uri: str) -> str:
    """``uri`` with its user-info and query string replaced, so no credential is kept.

    >>> redact("https://alice:s3cret@example.com/data.csv?X-Amz-Signature=abc")
    'https://REDACTED@example.com/data.csv?REDACTED'
    >>> redact("https://alice:s3/cr#et@example.com/data.csv")
    'https://REDACTED@example.com/data.csv'
    >>> redact("/data/wine.csv")
    '/data/wine.csv'
    """
    userinfo, bare = split_userinfo(uri)
    try:
        parts = urlsplit(bare)
    except ValueError:
        return "<unparseable URI>"
    if (not parts.scheme or len(parts.scheme) == 1) and userinfo is None:  # a plain path (or a drive letter)
        return uri
    netloc = f"{REDACTED}@{parts.netloc}" if userinfo is not None else parts.netloc
    query = REDACTED if parts.query else ""
    if userinfo is not None and parts.scheme and not bare.startswith(f"{parts.scheme}://"):
        return urlunsplit((parts.scheme, "", f"{REDACTED}@{parts.path}", query, ""))
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
