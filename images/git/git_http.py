"""A Git smart-HTTP server for the kind cluster: `git http-backend` behind Python's
standard HTTP server (the image has Debian's git and python3, nothing else).

Flux's source-controller (go-git) speaks only the smart protocol, which is what
`git http-backend` serves. Reads (clone, fetch) are anonymous: the NetworkPolicy
decides who may connect. A push must authenticate with HTTP Basic as the user and
password of the mounted Secret (/etc/git-server/credentials/{username,password}),
compared in constant time; a wrong or missing password gets 401 and nothing runs.

Repositories live under GIT_ROOT (a PVC); REPOSITORIES (comma-separated names) are
created bare on start when missing, with `main` as their default branch.
"""

from __future__ import annotations

import base64
import hmac
import http.server
import os
import re
import subprocess
import sys
from pathlib import Path

GIT_ROOT = Path(os.environ.get("GIT_ROOT", "/srv/git"))
CREDENTIALS = Path(os.environ.get("GIT_CREDENTIALS_DIR", "/etc/git-server/credentials"))
PORT = int(os.environ.get("GIT_HTTP_PORT", "8080"))
# /<name>.git/<smart-protocol path>: nothing else is served.
ROUTE = re.compile(r"^/([A-Za-z0-9][A-Za-z0-9._-]{0,99})\.git(/(?:info/refs|git-upload-pack|git-receive-pack))$")
MAX_BODY = 64 * 1024 * 1024


def init_repositories(names: list[str]) -> None:
    for name in filter(None, (n.strip() for n in names)):
        path = GIT_ROOT / f"{name}.git"
        if not (path / "HEAD").exists():
            subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True)
        # Pushes are authenticated here, so http-backend may accept them.
        subprocess.run(["git", "-C", str(path), "config", "http.receivepack", "true"], check=True)


def is_pusher(header: str | None) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    want_user = (CREDENTIALS / "username").read_text().strip()
    want_password = (CREDENTIALS / "password").read_text().strip()
    return hmac.compare_digest(user, want_user) & hmac.compare_digest(password, want_password)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "mlops-git"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/healthz":
            self.reply(200, b"ok\n")
        else:
            self.backend()

    def do_POST(self) -> None:  # noqa: N802
        self.backend()

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def backend(self) -> None:
        path, _, query = self.path.partition("?")
        match = ROUTE.match(path)
        if not match or not (GIT_ROOT / f"{match.group(1)}.git").is_dir():
            self.reply(404, b"not found\n")
            return
        pushing = match.group(2) == "/git-receive-pack" or "service=git-receive-pack" in query
        if pushing and not is_pusher(self.headers.get("Authorization")):
            self.reply(401, b"push needs credentials\n", {"WWW-Authenticate": 'Basic realm="mlops-git"'})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY or (self.command == "POST" and "chunked" in self.headers.get("Transfer-Encoding", "")):
            self.reply(413, b"request too large (or chunked): raise http.postBuffer on the client\n")
            return
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(GIT_ROOT),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        if pushing:
            env["REMOTE_USER"] = (CREDENTIALS / "username").read_text().strip()
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = done.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers[name] = value.strip()
        if done.returncode != 0 and not done.stdout:
            sys.stderr.write(done.stderr.decode(errors="replace"))
            self.reply(500, b"git http-backend failed\n")
            return
        self.reply(status, payload, headers)

    def log_message(self, fmt: str, *args) -> None:  # one line per request, no credentials
        code = args[1] if len(args) > 1 else ""
        sys.stderr.write(f"{self.client_address[0]} {self.command} {self.path.partition('?')[0]} {code}\n")


def main() -> None:
    init_repositories(os.environ.get("REPOSITORIES", "").split(","))
    server = http.server.ThreadingHTTPServer(("", PORT), Handler)
    print(f"git smart-HTTP on :{PORT}, repositories under {GIT_ROOT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
