"""Safe fetching of user-given URLs.

Only http and https (and file:// when allowed). The host name is resolved once and every address
is checked: loopback, private, link-local, multicast, reserved and unspecified addresses are
refused unless private URLs are allowed; the connection then goes to the checked address (no
second resolution, so DNS rebinding cannot slip past). Redirects are followed by hand, each hop
checked the same way. Size, stall time and total time are limited.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_REDIRECTS = 5
CHUNK = 1 << 16


class FetchError(Exception):
    """The URL is refused or its download failed; the message says why."""


class TooLarge(FetchError):
    """The resource is larger than allowed: `size` bytes (declared, or received so far)."""

    def __init__(self, message: str, size: int | None = None) -> None:
        super().__init__(message)
        self.size = size

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.size))


@dataclass
class FetchPolicy:
    allow_private: bool = False
    allow_file: bool = False
    max_bytes: int = 512 * 1024 * 1024
    stall_timeout: float = 60.0
    total_timeout: float = 3600.0
    # Folders a file:// URL may never read: the service's own data (every user's blobs).
    forbidden_dirs: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config) -> FetchPolicy:
        return cls(
            allow_private=bool(config.allow_private_urls),
            allow_file=bool(config.allow_file_urls),
            max_bytes=int(config.max_upload_bytes),
            stall_timeout=float(config.fetch_timeout),
            total_timeout=max(float(config.fetch_timeout) * 30, 60.0),
            forbidden_dirs=_service_dirs(config),
        )


def _service_dirs(config) -> tuple[str, ...]:
    """The service's own folders: data dir, work dir and a file: blob store."""
    dirs = [config.data_dir, str(config.work_path)]
    blobs = str(config.blobs_url)
    if blobs.startswith("file:"):
        rest = blobs[len("file:") :]
        dirs.append(urllib.parse.unquote(rest[2:] if rest.startswith("//") else rest))
    return tuple(os.path.realpath(d) for d in dirs if d)


def _refused_reason(addr: str) -> str | None:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for attr, what in (
        ("is_loopback", "a loopback"),
        ("is_private", "a private"),
        ("is_link_local", "a link-local"),
        ("is_multicast", "a multicast"),
        ("is_reserved", "a reserved"),
        ("is_unspecified", "an unspecified"),
    ):
        if getattr(ip, attr):
            return f"{what} address ({ip})"
    if not ip.is_global:
        return f"a non-global address ({ip})"
    return None


def check_url(url: str, policy: FetchPolicy) -> urllib.parse.SplitResult:
    """Parse and vet the URL's form (scheme, host); raise `FetchError` naming the problem."""
    if not isinstance(url, str) or not url or len(url) > 4096:
        raise FetchError("the URL must be a non-empty string of at most 4096 characters")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError(f"malformed URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if not policy.allow_file:
            raise FetchError(
                "file:// URLs are not allowed (start the server with --allow-file-urls)"
            )
        return parts
    if scheme not in ("http", "https"):
        raise FetchError(
            f"URL scheme {parts.scheme or '(none)'!r} is not allowed; use http or https"
        )
    if not parts.hostname:
        raise FetchError(f"URL {url!r} has no host")
    if port == 0:
        raise FetchError(f"URL {url!r} has port 0")
    return parts


def resolve(host: str, port: int, policy: FetchPolicy) -> str:
    """Resolve `host` and return one address to connect to, after checking all of them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise FetchError(f"cannot resolve host {host!r}: {exc}") from None
    addrs = [info[4][0] for info in infos]
    if not addrs:
        raise FetchError(f"host {host!r} has no addresses")
    if not policy.allow_private:
        for addr in addrs:
            reason = _refused_reason(addr)
            if reason:
                raise FetchError(
                    f"host {host!r} resolves to {reason}, which is refused "
                    "(start the server with --allow-private-urls to allow it)"
                )
    return addrs[0]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, addr: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addr = addr

    def connect(self) -> None:
        self.sock = socket.create_connection((self._addr, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, addr: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._addr = addr

    def connect(self) -> None:
        sock = socket.create_connection((self._addr, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def open_url(url: str, policy: FetchPolicy) -> tuple[Iterator[bytes], int | None]:
    """Open `url` and return (chunk iterator limited to `policy.max_bytes`, declared length)."""
    deadline = time.monotonic() + policy.total_timeout
    for _ in range(MAX_REDIRECTS + 1):
        parts = check_url(url, policy)
        if parts.scheme.lower() == "file":
            return _open_file(parts, policy)
        https = parts.scheme.lower() == "https"
        port = parts.port or (443 if https else 80)
        addr = resolve(parts.hostname or "", port, policy)
        cls = _PinnedHTTPS if https else _PinnedHTTP
        conn = cls(parts.hostname or "", port, addr, policy.stall_timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            conn.request("GET", path, headers={"User-Agent": "elasticthought", "Accept": "*/*"})
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            conn.close()
            raise FetchError(f"cannot fetch {url!r}: {exc}") from None
        if resp.status in (301, 302, 303, 307, 308):
            location = resp.getheader("Location")
            conn.close()
            if not location:
                raise FetchError(f"{url!r} redirects without a Location")
            url = urllib.parse.urljoin(url, location)
            continue
        if resp.status != 200:
            conn.close()
            raise FetchError(f"{url!r} answered HTTP {resp.status} {resp.reason}")
        length_text = resp.getheader("Content-Length")
        length = int(length_text) if length_text and length_text.isdigit() else None
        if length is not None and length > policy.max_bytes:
            conn.close()
            raise TooLarge(
                f"{url!r} is {length} bytes, over the limit of {policy.max_bytes}", length
            )
        chunks = _read_http(resp, conn, url, deadline, length)
        return _limited(chunks, policy.max_bytes, url), length
    raise FetchError(f"{url!r}: more than {MAX_REDIRECTS} redirects")


def _read_http(
    resp: http.client.HTTPResponse,
    conn: http.client.HTTPConnection,
    url: str,
    deadline: float,
    length: int | None,
) -> Iterator[bytes]:
    """The body in chunks; a body that ends before its declared length is an error (a
    connection closed early must not pass for a complete file)."""
    received = 0
    try:
        while True:
            if time.monotonic() > deadline:
                raise FetchError(f"downloading {url!r} took too long")
            try:
                chunk = resp.read1(CHUNK) if hasattr(resp, "read1") else resp.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise FetchError(f"download of {url!r} failed: {exc}") from None
            if not chunk:
                if length is not None and received < length:
                    raise FetchError(
                        f"download of {url!r} ended after {received} of {length} bytes"
                    )
                return
            received += len(chunk)
            yield chunk
    finally:
        conn.close()


def _open_file(
    parts: urllib.parse.SplitResult, policy: FetchPolicy
) -> tuple[Iterator[bytes], int | None]:
    if parts.netloc not in ("", "localhost"):
        raise FetchError("file:// URLs must name a local path")
    path = Path(urllib.parse.unquote(parts.path))
    real = os.path.realpath(path)
    for folder in policy.forbidden_dirs:
        if real == folder or real.startswith(folder.rstrip("/") + "/"):
            raise FetchError("file:// URLs may not read the service's own data folders")
    if not path.is_file():
        raise FetchError(f"file {str(path)!r} does not exist or is not a file")
    size = path.stat().st_size
    if size > policy.max_bytes:
        raise TooLarge(f"file is {size} bytes, over the limit of {policy.max_bytes}", size)

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    return _limited(chunks(), policy.max_bytes, str(path)), size


def _limited(chunks: Iterator[bytes], max_bytes: int, what: str) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise TooLarge(f"{what!r} is larger than the limit of {max_bytes} bytes", total)
        yield chunk


def fetch_bytes(url: str, policy: FetchPolicy) -> bytes:
    """The whole resource (for small files such as prototxt)."""
    chunks, _ = open_url(url, policy)
    return b"".join(chunks)


def fetch_to_file(url: str, policy: FetchPolicy, path: str) -> int:
    """Stream the resource into the (existing, empty) file at `path`; return its size. The file
    is left for the caller to move or remove, whatever happens."""
    chunks, _ = open_url(url, policy)
    written = 0
    with open(path, "r+b") as out:
        for chunk in chunks:
            out.write(chunk)
            written += len(chunk)
    return written


def fetch_to(url: str, policy: FetchPolicy, sink: Callable[[Iterator[bytes]], object]) -> object:
    """Stream the resource into `sink(chunks)` (e.g. `blobs.put` with a key bound)."""
    chunks, _ = open_url(url, policy)
    return sink(chunks)
