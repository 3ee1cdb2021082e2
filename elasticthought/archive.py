"""Safe extraction of .tar.gz (and plain .tar) archives, streaming.

Refused, with the member named: absolute paths, `..` components, links (symbolic or hard),
devices, FIFOs; more than `max_files` members; more than `max_bytes` of content; more than
`disk_bytes` written (the job's disk budget); pax or GNU long-name headers over
`limits.MAX_ARCHIVE_HEADER_BYTES`; more than `MAX_EXTRACT_SECONDS`. The decompressed stream
itself is counted as it is read, so a gzip bomb stops at the limit instead of filling the disk
or memory.

When the source can be read twice (a path, a seekable file) the headers are first checked in a
pass that writes nothing, so a refused archive (too many members, too large) fails after
reading only its headers, with nothing written. Memory stays flat whatever the member count
(tarfile's list of seen members is not kept). A limit that is hit raises `ArchiveLimit`, whose
`limit` says which (`LIMIT_*`), so a caller can name its setting.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from elasticthought.limits import MAX_ARCHIVE_HEADER_BYTES, MAX_EXTRACT_SECONDS

#: Bytes of tar headers and padding allowed per member on top of the content limit.
_HEADER_ALLOWANCE = 1536
LIMIT_FILES = "files"  # max_files
LIMIT_BYTES = "bytes"  # max_bytes (content, or the decompressed stream)
LIMIT_DISK = "disk"  # disk_bytes
LIMIT_HEADER = "header"  # MAX_ARCHIVE_HEADER_BYTES
LIMIT_TIME = "time"  # MAX_EXTRACT_SECONDS


class ArchiveError(Exception):
    """The archive is malformed, unsafe or too large; the message says which member and why."""


class ArchiveLimit(ArchiveError):
    """The archive passes one of the limits; `limit` is its `LIMIT_*` name."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass
class _Limits:
    max_bytes: int
    max_files: int
    disk_bytes: int | None
    deadline: float


class _CountingReader(io.RawIOBase):
    """Wraps the decompressed stream and fails once more than `limit` bytes were read."""

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self._raw = raw
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        self.count += len(data)
        if self.count > self._limit:
            raise ArchiveLimit(
                f"archive expands to more than {self._limit} bytes, past the extracted-size "
                "limit (a gzip bomb?)",
                LIMIT_BYTES,
            )
        buffer[: len(data)] = data
        return len(data)


def member_path(name: str) -> str:
    """The safe relative path of a member, or `ArchiveError`."""
    if "\x00" in name:
        raise ArchiveError(f"member {name!r}: NUL in name")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"member {name!r}: absolute paths are not allowed")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ArchiveError(f"member {name!r}: '..' paths are not allowed")
    return posixpath.join(*parts) if parts else ""


def extract(
    source: str | os.PathLike | BinaryIO,
    dest: str | os.PathLike,
    max_bytes: int,
    max_files: int,
    disk_bytes: int | None = None,
) -> list[str]:
    """Extract regular files and folders of `source` under `dest`; return the file paths
    (relative, in archive order). Gzip-compressed or plain tar are both accepted. At most
    `disk_bytes` (None: no budget beyond `max_bytes`) are written."""
    dest_path = Path(dest).resolve()
    dest_path.mkdir(parents=True, exist_ok=True)
    limits = _Limits(max_bytes, max_files, disk_bytes, time.monotonic() + MAX_EXTRACT_SECONDS)
    owns = not hasattr(source, "read")
    raw: BinaryIO = open(source, "rb") if owns else source  # type: ignore[arg-type]
    try:
        if owns or (raw.seekable() if hasattr(raw, "seekable") else False):
            start = raw.tell()
            _walk(_open_stream(raw, limits), dest_path, limits, write=False)
            raw.seek(start)
        return _walk(_open_stream(raw, limits), dest_path, limits, write=True)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(f"not a valid .tar.gz archive: {exc}") from None
    finally:
        if owns:
            raw.close()


def _open_stream(raw: BinaryIO, limits: _Limits) -> BinaryIO:
    """The decompressed (when gzip), counted tar stream of `raw` from where it stands."""
    head = raw.read(2)
    rest = io.BufferedReader(_Prepend(head, raw))
    if head == b"\x1f\x8b":
        import gzip

        stream: BinaryIO = gzip.GzipFile(fileobj=rest, mode="rb")  # type: ignore[assignment]
    else:
        stream = rest  # type: ignore[assignment]
    limit = limits.max_bytes + _HEADER_ALLOWANCE * (limits.max_files + 2) + 10240
    return io.BufferedReader(_CountingReader(stream, limit), buffer_size=1 << 16)  # type: ignore[return-value]


class _Prepend(io.RawIOBase):
    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's member header, refusing pax and GNU long-name records larger than
    `limits.MAX_ARCHIVE_HEADER_BYTES` before tarfile reads them into memory."""

    def _check_header_size(self, what: str) -> None:
        if self.size > MAX_ARCHIVE_HEADER_BYTES:
            raise ArchiveLimit(
                f"archive has a {what} of {self.size} bytes; the header limit is "
                f"{MAX_ARCHIVE_HEADER_BYTES} bytes",
                LIMIT_HEADER,
            )

    def _proc_pax(self, tarfile_: Any) -> Any:
        self._check_header_size("pax extended header")
        return super()._proc_pax(tarfile_)

    def _proc_gnulong(self, tarfile_: Any) -> Any:
        self._check_header_size("GNU long name/link record")
        return super()._proc_gnulong(tarfile_)


def _walk(stream: BinaryIO, dest: Path, limits: _Limits, write: bool) -> list[str]:
    """One pass over the members, checking each; writing them when `write`."""
    files: list[str] = []
    total = 0
    count = 0
    with tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo) as tar:
        while (member := tar.next()) is not None:
            tar.members.clear()  # stream mode keeps every member seen: keep memory flat
            if time.monotonic() > limits.deadline:
                raise ArchiveLimit(
                    f"archive took longer than {MAX_EXTRACT_SECONDS:g} s to extract", LIMIT_TIME
                )
            count += 1
            if count > limits.max_files:
                raise ArchiveLimit(
                    f"archive holds more than {limits.max_files} members, the member-count limit",
                    LIMIT_FILES,
                )
            rel = _checked_member(member)
            if member.isdir():
                if rel and write:
                    _inside(dest, rel, member.name).mkdir(parents=True, exist_ok=True)
                continue
            total += member.size
            if total > limits.max_bytes:
                raise ArchiveLimit(
                    f"archive content exceeds {limits.max_bytes} bytes, the extracted-size limit, "
                    f"at member {member.name!r}",
                    LIMIT_BYTES,
                )
            if limits.disk_bytes is not None and total > limits.disk_bytes:
                raise ArchiveLimit(
                    f"extracting member {member.name!r} would write more than "
                    f"{limits.disk_bytes} bytes",
                    LIMIT_DISK,
                )
            target = _inside(dest, rel, member.name)
            if write:
                _write_member(tar, member, target)
            files.append(rel)
    return files


def _checked_member(member: tarfile.TarInfo) -> str:
    """The member's safe relative path; `ArchiveError` for links, specials, bad paths."""
    rel = member_path(member.name)
    if member.issym() or member.islnk():
        raise ArchiveError(
            f"member {member.name!r}: links are not allowed (points to {member.linkname!r})"
        )
    if member.isdir():
        return rel
    if not member.isreg():
        raise ArchiveError(f"member {member.name!r}: only regular files and folders are allowed")
    if not rel:
        raise ArchiveError(f"member {member.name!r}: empty path")
    return rel


def _write_member(tar: Any, member: tarfile.TarInfo, target: Path) -> None:
    if target.exists():
        raise ArchiveError(f"member {member.name!r} appears twice")
    target.parent.mkdir(parents=True, exist_ok=True)
    src = tar.extractfile(member)
    if src is None:
        raise ArchiveError(f"member {member.name!r}: unreadable")
    with open(target, "xb") as out:
        while chunk := src.read(1 << 16):
            out.write(chunk)


def _inside(dest: Path, rel: str, name: str) -> Path:
    target = (dest / rel).resolve()
    if target != dest and dest not in target.parents:
        raise ArchiveError(f"member {name!r}: path leaves the extraction folder")
    return target


def pack(source_dir: str | os.PathLike, out: BinaryIO, names: list[str] | None = None) -> None:
    """Write a .tar.gz of `source_dir` (or only `names`, relative, in that order) to `out`."""
    base = Path(source_dir)
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6) as tar:
        if names is None:
            for path in sorted(base.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=str(path.relative_to(base)), recursive=False)
        else:
            for name in names:
                tar.add(base / name, arcname=name, recursive=False)
