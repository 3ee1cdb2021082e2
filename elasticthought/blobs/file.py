"""The `file:` blob store: one file per key under a root folder (a local disk or shared mount).

Puts stream into a temporary file in the root's `.tmp/` folder, fsync it, then `os.replace` it
into place, so a reader sees either the old blob, the new one, or none: never a partial one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from elasticthought.blobs.base import BlobError, BlobNotFound, BlobStore

TMP_DIR = ".tmp"
CHUNK = 1 << 20


def parse_file_url(url: str) -> Path:
    """`file:///ABS/DIR` -> /ABS/DIR; `file:REL/DIR` -> REL/DIR resolved against the cwd."""
    if not url.startswith("file:"):
        raise BlobError(f"blob store URL {url!r} is not a file: URL")
    rest = url[len("file:") :]
    if rest.startswith("//"):
        rest = rest[2:]
        if not rest.startswith("/"):
            raise BlobError(
                f"blob store URL {url!r}: use file:///ABSOLUTE/DIR (a host part is not supported)"
            )
    if not rest or "\x00" in rest or "?" in rest or "#" in rest:
        raise BlobError(f"blob store URL {url!r} does not name a folder")
    return Path(rest).expanduser().resolve()


def check_key(key: str) -> str:
    """Reject keys that could name something outside the root; return the key unchanged."""
    if not isinstance(key, str) or not key:
        raise BlobError(f"bad blob key {key!r}: empty")
    if "\x00" in key or "\\" in key:
        raise BlobError(f"bad blob key {key!r}: NUL or backslash")
    if key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        raise BlobError(f"bad blob key {key!r}: absolute path")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BlobError(f"bad blob key {key!r}: empty, '.' or '..' path segment")
    if parts[0] == TMP_DIR:
        raise BlobError(f"bad blob key {key!r}: {TMP_DIR}/ is reserved")
    return key


def _chunks(data: bytes | BinaryIO | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield bytes(data)
    elif hasattr(data, "read"):
        while chunk := data.read(CHUNK):  # type: ignore[union-attr]
            yield chunk
    else:
        for chunk in data:
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise BlobError(f"blob data chunks must be bytes, got {type(chunk).__name__}")
            yield bytes(chunk)


class FileBlobStore(BlobStore):
    """Blobs as files below `root`; keys are relative slash-separated paths."""

    kind = "file"

    def __init__(self, url: str, create: bool = True) -> None:
        self.url = url
        self.root = parse_file_url(url)
        if create:
            try:
                (self.root / TMP_DIR).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BlobError(f"blob store {url}: cannot create {self.root}: {exc}") from exc

    def _path(self, key: str) -> Path:
        """The file for `key`, checked to stay inside the root after resolving symlinks."""
        check_key(key)
        path = self.root / key
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise BlobError(f"bad blob key {key!r}: resolves outside the blob store")
        return path

    def put(self, key: str, data: bytes | BinaryIO | Iterable[bytes]) -> int:
        path = self._path(key)
        tmp_dir = self.root / TMP_DIR
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        except OSError as exc:
            raise BlobError(f"cannot write blob {key!r}: {exc}") from exc
        written = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(data):
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            self._move_into_place(tmp, path, key)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise BlobError(f"cannot write blob {key!r}: {exc}") from exc
            raise
        return written

    def _move_into_place(self, tmp: str, path: Path, key: str) -> None:
        """Create the parent folders and `os.replace` the temp file onto `path`, retrying when
        a concurrent delete prunes a folder in between."""
        for attempt in range(20):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._path(key)  # the folders exist now: re-check against symlinks out
                os.replace(tmp, path)
                return
            except (FileNotFoundError, FileExistsError):  # a folder vanished mid-way
                if attempt == 19:
                    raise

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise BlobNotFound(f"no blob {key!r}") from exc
        except OSError as exc:
            raise BlobError(f"cannot read blob {key!r}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        path = self._path(key)
        try:
            if not path.is_file():
                raise BlobNotFound(f"no blob {key!r}")
            return path.stat().st_size
        except OSError as exc:
            raise BlobError(f"cannot stat blob {key!r}: {exc}") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return
        except OSError as exc:
            raise BlobError(f"cannot delete blob {key!r}: {exc}") from exc
        self._prune(path.parent)

    def _prune(self, folder: Path) -> None:
        """Remove folders left empty by a delete, up to (not including) the root."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def list(self, prefix: str = "") -> list[str]:
        if "\x00" in prefix or "\\" in prefix or prefix.startswith("/"):
            raise BlobError(f"bad blob prefix {prefix!r}")
        # Walk only the deepest folder the prefix fully names.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base if base else self.root
        if base:
            check_key(base)
            if not start.resolve().is_relative_to(self.root):
                return []
        keys: list[str] = []
        if not start.is_dir():
            return keys
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = os.path.relpath(dirpath, self.root)
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d != TMP_DIR]
                rel_dir = ""
            for name in filenames:
                key = f"{rel_dir}/{name}" if rel_dir else name
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> None:
        for key in self.list(prefix):
            self.delete(key)
        if prefix.endswith("/"):
            folder = self._path(prefix.rstrip("/"))
            if folder.is_dir() and not any(folder.iterdir()):
                shutil.rmtree(folder, ignore_errors=True)
                self._prune(folder.parent)

    def ping(self) -> None:
        if not self.root.is_dir():
            raise BlobError(f"blob store {self.url}: {self.root} is not a folder")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise BlobError(f"blob store {self.url}: {self.root} is not writable")

    def path_of(self, key: str) -> Path:
        """The local file holding `key` (for engines that need a path, e.g. LMDB)."""
        return self._path(key)
