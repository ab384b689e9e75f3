"""Downloading an ingest source over http(s): streamed, capped, on a deadline, under the policy.

- The size cap is enforced while reading (and from Content-Length up front), so a
  large file fails before it fills the pod's memory.
- The deadline covers the whole exchange (connecting, the status line, the
  headers, the body, every redirect), not one socket read: when it passes, every
  connection the download opened is shut down, so a server that drips its
  headers or its body one byte at a time cannot hang the stage.
- User-info in the URL (``https://user:token@host/x.csv``) becomes HTTP basic
  auth and never appears in a message (mlops.data.uris); it is not sent on to
  another host when the server redirects.
- The source policy (mlops.data.source_policy) is checked on the URL, on every
  redirect, and on the address each connection is opened to.
"""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit

from mlops import config
from mlops.data.uris import redact, split_userinfo
from mlops.errors import StageError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


def _without_userinfo(uri: str) -> tuple[str, str | None]:
    """The URL without user-info (up to the last ``@``, as mlops.data.uris reads it), and the
    Authorization header it implied."""
    userinfo, url = split_userinfo(uri)
    if userinfo is None:
        return uri, None
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return url, f"Basic {token}"


class Deadline:
    """A point in time after which every connection watched under it is shut down, whatever is
    being read from it (a socket timeout bounds one read only)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._watched: list[tuple[threading.Timer, socket.socket]] = []

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock``'s connection down at the deadline (through a duplicate: a TLS wrapper
        takes the original over, and a shutdown acts on the connection, not on one descriptor)."""
        duplicate = sock.dup()

        def shut() -> None:
            try:
                duplicate.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        timer = threading.Timer(max(self.at - time.monotonic(), 0.0), shut)
        timer.daemon = True
        timer.start()
        self._watched.append((timer, duplicate))

    def close(self) -> None:
        for timer, duplicate in self._watched:
            timer.cancel()
            duplicate.close()
        self._watched.clear()


def _opener(policy, deadline: Deadline | None = None):
    """urllib, with every connection and every redirect checked against ``policy``, and every
    connection shut down at ``deadline``."""
    from mlops.data import source_policy

    def connect(host, port, timeout):
        sock = source_policy.connect(host, port, timeout, policy)
        if deadline is not None:
            deadline.watch(sock)
        return sock

    class PolicyHTTPConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = connect(self.host, self.port, self.timeout)

    class PolicyHTTPSConnection(http.client.HTTPSConnection):
        def connect(self):
            sock = connect(self.host, self.port, self.timeout)
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
            log.debug("HTTP %s: redirected to %s", code, redact(new_url))
            follow = super().redirect_request(request, fp, code, msg, headers, new_url)
            if follow is not None and urlsplit(new_url).netloc != urlsplit(request.full_url).netloc:
                follow.remove_header("Authorization")  # credentials are for the host they were given for
            return follow

    return urllib.request.build_opener(HTTPHandler, HTTPSHandler, RedirectHandler)


def open_url(url: str, headers: dict, timeout: float, policy=None, deadline: Deadline | None = None):
    """Open ``url`` through the policy's opener (its connections shut down at ``deadline``)."""
    from mlops.data import source_policy

    policy = policy or source_policy.current()
    policy.check_uri(url)
    return _opener(policy, deadline).open(urllib.request.Request(url, headers=headers), timeout=timeout)


def download(uri: str, *, max_bytes: int | None = None, deadline_seconds: float | None = None) -> bytes:
    """The body behind ``uri``, or a StageError (one line, no credentials) for each failure."""
    chunks: list[bytes] = []
    download_into(uri, chunks.append, max_bytes=max_bytes, deadline_seconds=deadline_seconds)
    return b"".join(chunks)


def download_into(uri: str, write, *, max_bytes: int | None = None, deadline_seconds: float | None = None) -> None:
    """:func:`download`, the body passed to ``write`` as it arrives (a big source to a file)."""
    shown = redact(uri)
    deadline_seconds = deadline_seconds or config.HTTP_TIMEOUT_SECONDS.get()
    max_bytes = max_bytes or config.MAX_DOWNLOAD_BYTES.get()
    url, authorization = _without_userinfo(uri)
    headers = {"User-Agent": "kfp-mlops-ingest"}
    if authorization:
        headers["Authorization"] = authorization
    deadline = Deadline(deadline_seconds)
    too_slow = f"downloading {shown} took longer than {deadline_seconds:g} s (MLOPS_HTTP_TIMEOUT_SECONDS)"
    log.debug("GET %s (deadline %g s, at most %d bytes)", shown, deadline_seconds, max_bytes)
    try:
        with open_url(url, headers, timeout=deadline_seconds, deadline=deadline) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise StageError(f"{shown} is {int(declared)} bytes, over the limit of {max_bytes}")
            total = 0
            while True:
                if deadline.expired():
                    raise StageError(too_slow)
                chunk = response.read1(CHUNK_BYTES)  # what has arrived: the deadline is checked between reads
                if not chunk:
                    if deadline.expired():  # the connection was shut down at the deadline
                        raise StageError(too_slow)
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise StageError(f"{shown} is larger than the limit of {max_bytes} bytes")
                write(chunk)
    except urllib.error.HTTPError as error:
        raise StageError(f"could not download {shown}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        if deadline.expired():
            raise StageError(too_slow) from None
        raise StageError(f"could not download {shown}: {error.reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as error:
        if deadline.expired():
            raise StageError(too_slow) from None
        # InvalidURL (a bad port, say) is an HTTPException; timeouts and resets are OSErrors.
        detail = str(error).replace(url, shown)
        raise StageError(f"could not download {shown}: {type(error).__name__}: {detail}") from None
    finally:
        deadline.close()
    log.debug("%s: %d bytes", shown, total)
