"""A recorded contract of Sync Gateway's admin port, in front of a real PouchDB Server.

No Sync Gateway binary can run on these machines, so this is a MOCK of the parts ElasticThought
calls that PouchDB Server lacks, answering as Sync Gateway 3.x documents them:

- `GET /`: the admin root, `{"ADMIN": true, "couchdb": "Welcome", "vendor": {"name": "Couchbase
  Sync Gateway", ...}, "version": ...}`;
- `/{db}/_user/{name}` (docs/api/paths/admin/db-_user-name.yaml of couchbase/sync_gateway):
  GET 200 with the user (never a password) or 404; PUT (upsert) 201 created / 200 updated,
  a new user needs a password, names must match Sync Gateway's principal-name rule
  (`^[-+.@%\\w]*$`); DELETE 200 or 404; HEAD 200/404.

Every other request (the document calls: `_all_docs`, `_changes`, document GET/PUT/DELETE, ...)
is forwarded unchanged to the real PouchDB Server. Passwords are kept hashed, as Sync Gateway
does; `check_password` says whether a credential would log in on the public port. `calls`
records the `_user` requests (method, name, JSON body) in order.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import secrets
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

ROOT = {
    "ADMIN": True,
    "couchdb": "Welcome",
    "vendor": {"name": "Couchbase Sync Gateway", "version": "3.2"},
    "version": "Couchbase Sync Gateway/3.2.1(15;release) CE",
    "persistent_config": False,
}
USER_PATH = re.compile(r"^/([^/]+)/_user/([^/]+)$")
VALID_NAME = re.compile(r"^[-+.@%\w]*$")
HOP_HEADERS = {
    "connection",
    "transfer-encoding",
    "content-encoding",
    "content-length",
    "keep-alive",
}


def _hash(password: str, salt: str) -> str:
    return hashlib.sha256((salt + password).encode()).hexdigest()


class SyncGatewayContract:
    """The mock admin port (see the module docstring) on a loopback port."""

    def __init__(self, pouchdb_url: str) -> None:
        self.backend = pouchdb_url.rstrip("/")
        self.users: dict[str, dict[str, Any]] = {}  # name -> {"salt", "hash"}
        self.calls: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()
        contract = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _answer(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _dispatch(self) -> None:
                path = urlsplit(self.path).path
                body = self._body()
                if path == "/" and self.command == "GET":
                    return self._answer(200, ROOT)
                match = USER_PATH.match(path)
                if match:
                    status, answer = contract.user_call(self.command, unquote(match.group(2)), body)
                    return self._answer(status, answer)
                self._forward(body)

            def _forward(self, body: bytes) -> None:
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS | {"host"}
                }
                try:
                    response = requests.request(
                        self.command,
                        contract.backend + self.path,
                        headers=headers,
                        data=body or None,
                        timeout=120,
                    )
                except requests.RequestException as exc:
                    return self._answer(502, {"error": "bad_gateway", "reason": str(exc)})
                data = response.content
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _dispatch

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def db_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def user_call(self, method: str, name: str, raw: bytes) -> tuple[int, Any]:
        """One `_user/{name}` request, as Sync Gateway answers it."""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return 400, {"error": "Bad Request", "reason": "Bad JSON"}
        with self.lock:
            self.calls.append((method, name, body))
            known = self.users.get(name)
            if method in ("GET", "HEAD"):
                if known is None:
                    return 404, {"error": "not_found", "reason": "missing"}
                return 200, {"name": name, "admin_channels": [], "all_channels": ["!"]}
            if method == "DELETE":
                if self.users.pop(name, None) is None:
                    return 404, {"error": "not_found", "reason": "missing"}
                return 200, None
            if method != "PUT":
                return 405, {"error": "Method Not Allowed", "reason": method}
            if not isinstance(body, dict) or not VALID_NAME.match(name):
                return 400, {"error": "Bad Request", "reason": "Invalid user or body"}
            if body.get("name", name) != name:
                return 400, {"error": "Bad Request", "reason": "Name mismatch (can't change name)"}
            password = body.get("password")
            if known is None and not password:
                return 400, {"error": "Bad Request", "reason": "Empty passwords are not allowed"}
            entry = known or {}
            if password:
                entry["salt"] = secrets.token_hex(8)
                entry["hash"] = _hash(password, entry["salt"])
            self.users[name] = entry
            return (200 if known else 201), None

    def check_password(self, name: str, password: str) -> bool:
        """Whether `name`/`password` would log in on Sync Gateway's public port."""
        with self.lock:
            entry = self.users.get(name)
            return bool(entry) and entry["hash"] == _hash(password, entry["salt"])

    def user_calls(self, name: str) -> list[tuple[str, Any]]:
        with self.lock:
            return [(method, body) for method, who, body in self.calls if who == name]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
