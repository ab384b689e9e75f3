"""Downloading an ingest source over http(s): streamed, capped and on a deadline.

- The size cap is enforced while reading (and from Content-Length up front), so a
  large file fails before it fills the pod's memory.
- The deadline covers the whole download, not one socket read, so a slow-drip
  server cannot hang the stage.
- User-info in the URL (``https://user:token@host/x.csv``) becomes HTTP basic
  auth and never appears in a message; see components.uris.
"""

from __future__ import annotations

import base64
import http.client
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

from components import config
from components.errors import StageError
from components.uris import redact

CHUNK_BYTES = 1 << 20


def _without_userinfo(uri: str) -> tuple[str, str | None]:
    """The URL without user-info, and the Authorization header it implied."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), f"Basic {token}"


def open_url(url: str, headers: dict, timeout: float):
    """Open ``url`` (a seam: the ingest policy of a cluster wraps the opener)."""
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def download(uri: str, *, max_bytes: int, deadline_seconds: float | None = None) -> bytes:
    """The body behind ``uri``, or a StageError (one line, no credentials) for each failure."""
    shown = redact(uri)
    deadline_seconds = deadline_seconds or config.HTTP_TIMEOUT_SECONDS.get()
    url, authorization = _without_userinfo(uri)
    headers = {"User-Agent": "kfp-mlops-ingest"}
    if authorization:
        headers["Authorization"] = authorization
    started = time.monotonic()
    try:
        with open_url(url, headers, timeout=deadline_seconds) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise StageError(f"{shown} is {int(declared)} bytes, over the limit of {max_bytes}")
            chunks, total = [], 0
            while True:
                if time.monotonic() - started > deadline_seconds:
                    raise StageError(f"downloading {shown} took longer than {deadline_seconds:g} s "
                                     "(MLOPS_HTTP_TIMEOUT_SECONDS)")
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise StageError(f"{shown} is larger than the limit of {max_bytes} bytes")
                chunks.append(chunk)
    except urllib.error.HTTPError as error:
        raise StageError(f"could not download {shown}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise StageError(f"could not download {shown}: {error.reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as error:
        # InvalidURL (a bad port, say) is an HTTPException; timeouts and resets are OSErrors.
        detail = str(error).replace(url, shown)
        raise StageError(f"could not download {shown}: {type(error).__name__}: {detail}") from None
    return b"".join(chunks)
