"""elasticthought.archive: safe extraction and its limits."""

from __future__ import annotations

import io
import tarfile

import pytest

from elasticthought.archive import ArchiveError, extract
from tests.api import helpers as h


def _tar(members, compress=True) -> io.BytesIO:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz" if compress else "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw.seek(0)
    return raw


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def test_extracts_regular_files_in_order(tmp_path):
    src = _tar([_file("a/1.png", b"one"), _file("./a/2.png", b"two"), _file("b/3.png")])
    assert extract(src, tmp_path, 1000, 10) == ["a/1.png", "a/2.png", "b/3.png"]
    assert (tmp_path / "a" / "2.png").read_bytes() == b"two"
    plain = _tar([_file("c.txt")], compress=False)
    assert extract(plain, tmp_path / "p", 1000, 10) == ["c.txt"]


@pytest.mark.parametrize(
    "member, reason",
    [
        (_file("/etc/evil"), "absolute"),
        (_file("a/../../evil"), "'..'"),
        (_special("a/link", tarfile.SYMTYPE, "/etc/passwd"), "links"),
        (_special("a/link", tarfile.SYMTYPE, "../../x"), "links"),
        (_special("a/hard", tarfile.LNKTYPE, "/etc/passwd"), "links"),
        (_special("a/dev", tarfile.CHRTYPE), "regular files"),
        (_special("a/fifo", tarfile.FIFOTYPE), "regular files"),
    ],
)
def test_refuses_unsafe_members(tmp_path, member, reason):
    with pytest.raises(ArchiveError, match=reason):
        extract(_tar([_file("ok.png"), member]), tmp_path / "out", 10_000, 10)
    assert not (tmp_path / "evil").exists()


def test_limits(tmp_path):
    with pytest.raises(ArchiveError, match="more than 3 members"):
        extract(_tar([_file(f"{i}.png") for i in range(4)]), tmp_path / "n", 10_000, 3)
    with pytest.raises(ArchiveError, match="exceeds 100 bytes"):
        extract(_tar([_file("a", b"x" * 60), _file("b", b"x" * 60)]), tmp_path / "s", 100, 10)
    with pytest.raises(ArchiveError, match="not a valid"):
        extract(io.BytesIO(b"\x1f\x8bgarbage" * 10), tmp_path / "g", 100, 10)


def test_gzip_bomb_is_refused_without_expanding(tmp_path):
    """50 MB of zeros compressed to ~50 KB; the limit is 1 MB: nothing big reaches the disk."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=1) as tar:
        small, data = _file("small.png", b"x")
        tar.addfile(small, io.BytesIO(data))
        info = tarfile.TarInfo("big.png")
        info.size = 50 << 20
        tar.addfile(info, h.Zeros(info.size))
    raw.seek(0)
    assert raw.getbuffer().nbytes < 1_000_000
    with pytest.raises(ArchiveError, match="exceeds 1048576 bytes.*big.png"):
        extract(raw, tmp_path / "bomb", 1 << 20, 10)
    assert not (tmp_path / "bomb" / "big.png").exists()


def test_decompressed_stream_is_counted(tmp_path):
    """Many members each under the limit but together over it stop at the limit."""
    members = [_file(f"f{i}.bin", bytes(300_000)) for i in range(10)]
    with pytest.raises(ArchiveError, match="exceeds"):
        extract(_tar(members), tmp_path / "many", 1_000_000, 100)
    total = sum(p.stat().st_size for p in (tmp_path / "many").iterdir())
    assert total <= 1_000_000


@pytest.mark.parametrize("kind", ["pax", "gnu"])
def test_huge_pax_or_gnu_long_header_is_refused_before_reading_it(tmp_path, kind):
    """Attack: a member whose pax header (or GNU long name) is huge; it is refused from its
    declared size, before tarfile reads it into memory."""
    import gzip

    from elasticthought.limits import MAX_ARCHIVE_HEADER_BYTES

    size = 4 * MAX_ARCHIVE_HEADER_BYTES
    buf = io.BytesIO()
    if kind == "pax":
        fmt, info = tarfile.PAX_FORMAT, tarfile.TarInfo("a.txt")
        info.pax_headers = {"comment": "x" * size}
    else:
        fmt, info = tarfile.GNU_FORMAT, tarfile.TarInfo("d/" * (size // 2) + "a.txt")
    info.size = 1
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        tar.addfile(info, io.BytesIO(b"x"))
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(gzip.compress(buf.getvalue()))
    with pytest.raises(ArchiveError, match=f"limit is {MAX_ARCHIVE_HEADER_BYTES} bytes"):
        extract(archive, tmp_path / "out", max_bytes=10**10, max_files=10)


def test_disk_budget_is_checked_before_writing(tmp_path):
    """A member that would take the written bytes past `disk_bytes` is refused before any of
    it is written (ArchiveLimit "disk"); the budget counts across members."""
    from elasticthought.archive import LIMIT_DISK, ArchiveLimit

    src = _tar([_file("a/1.png", b"x" * 400), _file("a/2.png", b"x" * 700)])
    with pytest.raises(ArchiveLimit, match="would write more than 1000 bytes") as caught:
        extract(src, tmp_path / "d", 10_000, 10, disk_bytes=1000)
    assert caught.value.limit == LIMIT_DISK
    assert not (tmp_path / "d" / "a").exists()  # the header pass refused it: nothing written
    src.seek(0)
    assert extract(src, tmp_path / "ok", 10_000, 10, disk_bytes=1100) == ["a/1.png", "a/2.png"]


class _OneWay(io.RawIOBase):
    """A stream that cannot seek (a download, say)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_member_count_is_refused_from_the_headers_before_writing(tmp_path):
    """Too many members: a seekable source is refused by the header pass, nothing written; a
    one-way stream (no header pass) stops at the limit."""
    from elasticthought.archive import LIMIT_FILES, ArchiveLimit

    members = [_file(f"a/{i}.png") for i in range(6)]
    with pytest.raises(ArchiveLimit, match="more than 5 members, the member-count") as caught:
        extract(_tar(members), tmp_path / "seek", 10_000, 5)
    assert caught.value.limit == LIMIT_FILES
    assert not (tmp_path / "seek" / "a").exists()
    one_way = _OneWay(_tar(members).getvalue())
    with pytest.raises(ArchiveLimit, match="more than 5 members"):
        extract(one_way, tmp_path / "stream", 10_000, 5)
    assert len(list((tmp_path / "stream" / "a").iterdir())) == 5
