"""Attacks through a datafile's archive, on a live `serve` (embedded store, one worker), each
ending the job `failed` naming the limit, quickly, with the worker free again: a ~1 MB .tar.gz
whose first member is a 1 GiB pax header (or GNU long name), 200,000 tiny files, an archive
(or download) larger than the job disk limit. The extraction's memory is measured in a child."""

from __future__ import annotations

import multiprocessing
import tarfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from elasticthought import limits
from tests.api import helpers as h
from tests.hardening.test_request_downloads import RecordingServer
from tests.support.server import LiveServer

HUGE_HEADER = 1 << 30
MANY_FILES = 200_000
DISK_LIMIT_MIB = 2


def huge_header_archive(path: Path, kind: str) -> Path:
    """A .tar.gz (about 1 MB) whose first member is a pax extended header (`kind` "pax") or
    GNU long-name record ("gnu") declaring 1 GiB, followed by that many zero bytes."""
    info = tarfile.TarInfo("././@PaxHeader" if kind == "pax" else "././@LongLink")
    info.type = tarfile.XHDTYPE if kind == "pax" else tarfile.GNUTYPE_LONGNAME
    info.size = HUGE_HEADER
    header = info.tobuf(format=tarfile.USTAR_FORMAT if kind == "pax" else tarfile.GNU_FORMAT)
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    with path.open("wb") as out:
        out.write(gz.compress(header))
        for _ in range(HUGE_HEADER // len(zeros)):
            out.write(gz.compress(zeros))
        out.write(gz.compress(bytes(1024)) + gz.flush())
    return path


def many_files_archive(path: Path, count: int) -> Path:
    """A .tar.gz of `count` one-byte files."""
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)
    with path.open("wb") as out:
        for i in range(count):
            info = tarfile.TarInfo(f"a/{i:07d}.txt")
            info.size = 1
            out.write(gz.compress(info.tobuf(format=tarfile.USTAR_FORMAT) + b"x" + bytes(511)))
        out.write(gz.compress(bytes(1024)) + gz.flush())
    return path


def big_member_archive(path: Path, size: int) -> Path:
    """A .tar.gz holding one member of `size` zero bytes (small compressed)."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("a/big.png")
        info.size = size
        tar.addfile(info, h.Zeros(size))
    return path


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("archives")
    return {
        "pax": huge_header_archive(root / "pax.tar.gz", "pax"),
        "gnu": huge_header_archive(root / "gnu.tar.gz", "gnu"),
        "many": many_files_archive(root / "many.tar.gz", MANY_FILES),
        "big": big_member_archive(root / "big.tar.gz", 3 * limits.MIB),
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Default archive limits; a small job disk limit (only the disk tests come near it)."""
    with LiveServer(
        tmp_path_factory.mktemp("archive-attacks"),
        workers=1,
        args=["--allow-private-urls", "--job-disk-limit", str(DISK_LIMIT_MIB)],
    ) as srv:
        yield srv


def _upload_and_wait(user: h.Client, archive: Path, timeout: float) -> tuple[dict, float]:
    started = time.monotonic()
    df = user.ok("POST", "/datafiles", 201, files={"file": ("a.tar.gz", archive.read_bytes())})
    doc = user.wait(f"/datafiles/{df['id']}", timeout=timeout)
    return doc, time.monotonic() - started


def _worker_is_free(user: h.Client, archive: Path) -> None:
    """The next job is taken and ends at once (the worker is not held)."""
    doc, seconds = _upload_and_wait(user, archive, timeout=60)
    assert doc["processing-state"] == "failed" and seconds < 30, (doc, seconds)


@pytest.mark.parametrize("kind", ["pax", "gnu"])
def test_huge_header_fails_the_job_naming_the_header_limit(
    server: LiveServer, archives: dict[str, Path], kind: str
) -> None:
    user = h.new_user(server.url, kind)
    assert archives[kind].stat().st_size < 2 * limits.MIB
    doc, seconds = _upload_and_wait(user, archives[kind], timeout=60)
    assert doc["processing-state"] == "failed", doc
    assert f"header limit is {limits.MAX_ARCHIVE_HEADER_BYTES} bytes" in doc["processing-log"]
    assert seconds < 30, f"took {seconds:.1f} s"


def test_two_hundred_thousand_files_fail_fast_naming_the_member_count_limit(
    server: LiveServer, archives: dict[str, Path]
) -> None:
    user = h.new_user(server.url, "many")
    doc, seconds = _upload_and_wait(user, archives["many"], timeout=120)
    print(f"200,000-member archive refused in {seconds:.1f} s")
    assert doc["processing-state"] == "failed", doc
    log = doc["processing-log"]
    assert "member-count limit" in log and "--max-extract-files" in log, log
    assert str(limits.MAX_EXTRACT_FILES) in log
    assert seconds < 60, f"took {seconds:.1f} s"
    _worker_is_free(user, archives["pax"])


def test_archive_past_the_job_disk_limit_fails_naming_it(
    server: LiveServer, archives: dict[str, Path]
) -> None:
    """3 MiB of content with a 2 MiB job disk limit: failed naming the limit and its flag;
    nothing of it stays in the work folder."""
    user = h.new_user(server.url, "disk")
    doc, _ = _upload_and_wait(user, archives["big"], timeout=60)
    assert doc["processing-state"] == "failed", doc
    log = doc["processing-log"]
    assert f"job disk limit of {DISK_LIMIT_MIB} MiB (--job-disk-limit)" in log, log
    assert not [p for p in (server.data_dir / "work").rglob("big.png")]


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "no-length"])
def test_download_past_the_job_disk_limit_fails_naming_it(
    server: LiveServer, declare: bool
) -> None:
    """A datafile URL of 50 MB with a 2 MiB job disk limit: the download stops (the URL's
    server sent far less) and the job fails naming the limit."""
    user = h.new_user(server.url, "dl")
    big = RecordingServer(drip=False, size=50_000_000, declare=declare)
    try:
        df = user.ok("POST", "/datafiles", 201, json={"url": big.url + "/a.tar.gz"})
        doc = user.wait(f"/datafiles/{df['id']}", timeout=60)
    finally:
        big.close()
    assert doc["processing-state"] == "failed", doc
    assert "(--job-disk-limit)" in doc["processing-log"], doc["processing-log"]
    assert big.sent < 25_000_000


def _extract_in_child(archive: str, dest: str, conn: object) -> None:
    """(In a child) extract with the default limits; send (error, seconds, VmHWM growth)."""
    from elasticthought.archive import ArchiveError, extract

    def hwm() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    before = hwm()
    started = time.monotonic()
    try:
        extract(archive, dest, limits.MAX_EXTRACT_BYTES, limits.MAX_EXTRACT_FILES)
        error = ""
    except ArchiveError as exc:
        error = str(exc)
    conn.send((error, time.monotonic() - started, hwm() - before))  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["pax", "gnu", "many"])
def test_extraction_memory_and_time_are_bounded(
    archives: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    """Measured in a child: the extracting process's peak memory grows < 100 MB, and it ends
    within a bounded time naming the limit (printed)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_extract_in_child, args=(str(archives[kind]), str(tmp_path / "out"), child)
    )
    proc.start()
    child.close()
    assert parent.poll(120), "the extraction did not end"
    error, seconds, grown = parent.recv()
    proc.join(10)
    print(f"{kind}: refused in {seconds:.2f} s, peak memory grew {grown >> 20} MB: {error}")
    assert "limit" in error, error
    assert grown < 100 * limits.MIB
    assert seconds < (60 if kind == "many" else 5)
    assert not (tmp_path / "out" / "a").exists() or not any((tmp_path / "out" / "a").iterdir())


def test_job_disk_limit_default(tmp_path: Path) -> None:
    """--job-disk-limit MiB when given; else the smaller of the cap and half the free disk."""
    import shutil

    assert limits.job_disk_limit(7, tmp_path) == 7 * limits.MIB
    free = shutil.disk_usage(tmp_path).free
    default = limits.job_disk_limit(0, tmp_path)
    assert default <= limits.JOB_DISK_CAP
    assert abs(default - min(limits.JOB_DISK_CAP, free // 2)) < 64 * limits.MIB
