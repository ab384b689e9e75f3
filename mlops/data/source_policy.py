"""Which data sources ingest may read: an allow-list, checked where it cannot be fooled.

Locally (MLOPS_INGEST_ALLOW unset or empty) ingest reads anything: it is your
machine and your data. On a cluster a data URI is an open door (cloud metadata
endpoints, the KFP API, other buckets, files in the pod), so the deploy sets
MLOPS_INGEST_ALLOW (manifests/base/kfp/mlops-store-config.yaml) to a comma
separated list of entries:

    s3://BUCKET[/PREFIX]      objects in that bucket (under that prefix)
    https://HOST[:PORT]       that host (``*.example.com`` for its subdomains); http:// too
    cidr:10.1.0.0/16          addresses a listed host may resolve to
    file:/ABSOLUTE/PREFIX     local files under that directory

An http(s) host must be listed, AND every address it resolves to must be public
or inside a listed ``cidr:`` range (loopback, link-local such as the metadata
endpoint 169.254.169.254, and private ranges are refused otherwise). The check
runs on the address each connection is actually opened to, so DNS rebinding
cannot slip past it, and again on every redirect.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlops import config
from mlops.data.uris import redact
from mlops.errors import StageError


@dataclass(frozen=True)
class SourcePolicy:
    entries: tuple[str, ...]

    @property
    def open(self) -> bool:
        """No allow-list: everything may be read (the local default)."""
        return not self.entries

    def _of(self, kind: str) -> list[str]:
        return [entry for entry in self.entries if entry.startswith(kind)]

    def check_uri(self, uri: str) -> None:
        """Raise StageError unless the allow-list admits ``uri`` (its scheme, bucket, host or path)."""
        if self.open:
            return
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        shown = redact(uri)
        if scheme in ("", "file"):
            path = Path(unquote(parts.path) if scheme == "file" else uri).resolve()
            if not any(path.is_relative_to(Path(entry.split(":", 1)[1]).resolve()) for entry in self._of("file:")):
                raise StageError(
                    f"ingest may not read the local file {path}: it is not under a file: entry of MLOPS_INGEST_ALLOW"
                )
            return
        if scheme == "s3":
            target = f"{parts.netloc}/{parts.path.lstrip('/')}"
            allowed = [entry[len("s3://") :].rstrip("/") for entry in self._of("s3://")]
            if not any(target == bucket or target.startswith(bucket + "/") for bucket in allowed):
                raise StageError(f"ingest may not read {shown}: that bucket is not in MLOPS_INGEST_ALLOW")
            return
        if scheme in ("http", "https"):
            if not self.host_allowed(scheme, parts.hostname or "", parts.port):
                raise StageError(f"ingest may not read {shown}: host {parts.hostname!r} is not in MLOPS_INGEST_ALLOW")
            return
        raise StageError(f"ingest may not read {shown}: scheme {scheme!r} is not allowed")

    def host_allowed(self, scheme: str, host: str, port: int | None) -> bool:
        for entry in self._of("http://") + self._of("https://"):
            allowed = urlsplit(entry)
            if allowed.scheme != scheme:
                continue
            if allowed.port is not None and allowed.port != (port or (443 if scheme == "https" else 80)):
                continue
            if fnmatch.fnmatch(host.lower(), (allowed.hostname or "").lower()):
                return True
        return False

    def check_address(self, host: str, address: str) -> None:
        """Raise StageError unless ``address`` (what ``host`` resolved to) may be connected to."""
        if self.open:
            return
        ip = ipaddress.ip_address(address)
        if any(ip in ipaddress.ip_network(entry[len("cidr:") :], strict=False) for entry in self._of("cidr:")):
            return
        if not ip.is_global:
            raise StageError(
                f"ingest may not connect to {host} at {address}: a loopback, link-local or private "
                "address (list it as a cidr: entry of MLOPS_INGEST_ALLOW to allow it)"
            )


def current() -> SourcePolicy:
    """The policy of this process (MLOPS_INGEST_ALLOW)."""
    text = config.INGEST_ALLOW.get()
    return SourcePolicy(tuple(entry.strip() for entry in text.split(",") if entry.strip()))


def connect(host: str, port: int, timeout: float, policy: SourcePolicy) -> socket.socket:
    """A TCP connection to ``host``, to an address the policy admits (checked on the address used)."""
    last_error: OSError | None = None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise OSError(f"cannot resolve {host}: {error.strerror}") from None
    for family, kind, protocol, _, address in infos:
        policy.check_address(host, address[0])
        sock = socket.socket(family, kind, protocol)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            return sock
        except OSError as error:
            sock.close()
            last_error = error
    raise last_error or OSError(f"cannot connect to {host}")
