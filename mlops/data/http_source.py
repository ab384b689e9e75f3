"""Downloading an ingest source over http(s): streamed, capped, on a deadline, under the policy.

- The size cap is enforced while reading (and from Content-Length up front), so a
  large file fails before it fills the pod's memory.
- The deadline covers the whole download, not one socket read, so a slow-drip
  server cannot hang the stage.
- User-info in the URL (``https://user:token@host/x.csv``) becomes HTTP basic
  auth and never appears in a message (mlops.data.uris); it is not sent on to
  another host when the server redirects.
- The source policy (mlops.data.source_policy) is checked on the URL, on every
  redirect, and on the address each connection is opened to.
"""

from __future__ import annotations

import base64
import http.client
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

from mlops import config
from mlops.data.uris import redact
from mlops.errors import StageError

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


def _opener(policy):
    """urllib, with every connection and every redirect checked against ``policy``."""
    from mlops.data import source_policy

    class PolicyHTTPConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = source_policy.connect(self.host, self.port, self.timeout, policy)

    class PolicyHTTPSConnection(http.client.HTTPSConnection):
        def connect(self):
            sock = source_policy.connect(self.host, self.port, self.timeout, policy)
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, request):
            return self.do_open(PolicyHTTPConnection, request)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, request):
            return self.do_open(PolicyHTTPSConnection, request, context=self._context)

    class RedirectHandler(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, request, fp, code, msg, headers, new_url):
            policy.check_uri(new_url)
            follow = super().redirect_request(request, fp, code, msg, headers, new_url)
            if follow is not None and urlsplit(new_url).netloc != urlsplit(request.full_url).netloc:
                follow.remove_header("Authorization")  # credentials are for the host they were given for
            return follow

    return urllib.request.build_opener(HTTPHandler, HTTPSHandler, RedirectHandler)


def open_url(url: str, headers: dict, timeout: float, policy=None):
    """Open ``url`` through the policy's opener."""
    from mlops.data import source_policy

    policy = policy or source_policy.current()
    policy.check_uri(url)
    return _opener(policy).open(urllib.request.Request(url, headers=headers), timeout=timeout)


def download(uri: str, *, max_bytes: int | None = None, deadline_seconds: float | None = None) -> bytes:
    """The body behind ``uri``, or a StageError (one line, no credentials) for each failure."""
    shown = redact(uri)
    deadline_seconds = deadline_seconds or config.HTTP_TIMEOUT_SECONDS.get()
    max_bytes = max_bytes or config.MAX_DOWNLOAD_BYTES.get()
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
                    raise StageError(
                        f"downloading {shown} took longer than {deadline_seconds:g} s (MLOPS_HTTP_TIMEOUT_SECONDS)"
                    )
                chunk = response.read1(CHUNK_BYTES)  # what has arrived: the deadline is checked between reads
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
