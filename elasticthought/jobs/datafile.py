"""The datafile runner: fetch the archive (URL) into the blob store, extract it safely and
validate it (IMAGE_DATA: label folders of images; DATA: a LevelDB/LMDB of Datums).

What the job writes (the download, then the extracted files) is bounded by the job disk limit
(`DiskBudget`, `--job-disk-limit`), the download also by the owner's stored-bytes quota; a job
that meets a limit fails naming it and its flag."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from elasticthought import limits
from elasticthought.archive import (
    LIMIT_BYTES,
    LIMIT_DISK,
    LIMIT_FILES,
    ArchiveError,
    ArchiveLimit,
    extract,
)
from elasticthought.blobs import layout
from elasticthought.documents.errors import JobError
from elasticthought.documents.fields import LAYERS_TYPE, USER_ID
from elasticthought.fetch import FetchError, FetchPolicy, open_url
from elasticthought.jobs import imagefolders, records
from elasticthought.queue.context import JobContext
from elasticthought.storage_quota import QuotaExceeded, QuotaGuard, room_left


class DiskBudget:
    """What one job may still write downloading and extracting archives: the job disk limit
    (`--job-disk-limit`, see `limits.job_disk_limit`), measured when the job starts."""

    def __init__(self, ctx: JobContext) -> None:
        self.limit = limits.job_disk_limit(int(ctx.config.job_disk_limit or 0), ctx.work_dir)
        self.used = 0

    def room(self) -> int:
        return max(0, self.limit - self.used)

    def text(self) -> str:
        return f"the job disk limit of {self.limit // limits.MIB} MiB (--job-disk-limit)"

    def exceeded(self, what: str, size: int) -> JobError:
        return JobError(f"{what} would write past {self.text()}: {self.used + size} bytes")

    def stream(self, chunks: Iterable[bytes], what: str) -> Iterator[bytes]:
        """`chunks`, stopped (`JobError`) before they pass the room left."""
        room = self.room()
        total = 0
        for chunk in chunks:
            total += len(chunk)
            if total > room:
                raise self.exceeded(what, total)
            yield chunk
        self.used += total


#: The flag of each archive limit a user may meet (the header and time limits are fixed).
ARCHIVE_LIMIT_FLAGS = {LIMIT_FILES: "--max-extract-files", LIMIT_BYTES: "--max-extract-bytes"}


def extract_blob(
    ctx: JobContext, key: str, dest: Path, disk: DiskBudget | None = None
) -> list[str]:
    """Extract the blob `key` (a .tar.gz) under `dest` (emptied first) with the limits, writing
    at most what `disk` (default: the whole job disk limit) has room for."""
    shutil.rmtree(dest, ignore_errors=True)
    disk = disk or DiskBudget(ctx)
    try:
        with ctx.blobs.open(key) as stream:
            return extract(
                stream,
                dest,
                max_bytes=ctx.config.max_extract_bytes,
                max_files=ctx.config.max_extract_files,
                disk_bytes=disk.room(),
            )
    except ArchiveLimit as exc:
        if exc.limit == LIMIT_DISK:
            raise JobError(
                f"extracting the archive would write past {disk.text()} ({exc})"
            ) from None
        flag = ARCHIVE_LIMIT_FLAGS.get(exc.limit)
        raise JobError(
            f"unsafe or invalid archive: {exc}" + (f" ({flag})" if flag else "")
        ) from None
    except ArchiveError as exc:
        raise JobError(f"unsafe or invalid archive: {exc}") from None


def data_backend(doc: dict) -> str:
    param = doc.get("layers_data_param") or {}
    return str(param.get("backend") or "LEVELDB").upper()


def inspect_data(root: Path, backend: str) -> dict[str, Any]:
    """Record count and labels of the one database in `root`; it must be of `backend`."""
    folder, found = records.find_database(root)
    if found != backend:
        raise JobError(
            f"layers_data_param.backend is {backend} but the archive holds a {found} database"
        )
    counts: dict[int, int] = {}
    total = 0
    for key, value in records.iter_records(folder, found):
        datum = records.parse_datum(key, value)
        counts[datum.label] = counts.get(datum.label, 0) + 1
        total += 1
    if total == 0:
        raise JobError("the database holds no records")
    labels = sorted(counts)
    return {
        "backend": found,
        "record-count": total,
        "labels": labels,
        "label-counts": {str(label): counts[label] for label in labels},
    }


def download(ctx: JobContext, url: str, key: str, disk: DiskBudget) -> int:
    """Stream `url` into the blob `key`; stop (`JobError` naming the flag and the numbers)
    before the owner's stored bytes plus the download would pass their quota, or the download
    would pass the job disk limit."""
    limit = int(ctx.config.max_stored_bytes_per_user or 0)
    room = room_left(ctx.blobs, ctx.job[USER_ID], limit, ignore=(key,))
    quota = QuotaGuard(room, limit, "downloading the datafile")
    try:
        chunks, length = open_url(url, FetchPolicy.from_config(ctx.config))
        quota.check(length or 0)
        if length is not None and length > disk.room():
            raise disk.exceeded("downloading the datafile", length)
        return ctx.blobs.put(key, disk.stream(quota.stream(chunks), "downloading the datafile"))
    except FetchError as exc:
        raise JobError(f"download failed: {exc}") from None
    except QuotaExceeded as exc:
        raise JobError(f"download stopped: {exc}") from None


def run(ctx: JobContext) -> dict[str, Any]:
    doc = ctx.job
    key = layout.datafile_archive(ctx.job_id)
    disk = DiskBudget(ctx)
    if doc.get("url") and not doc.get("uploaded"):
        ctx.progress(step="downloading")
        size = download(ctx, doc["url"], key, disk)
    else:
        size = ctx.blobs.size(key)
    ctx.progress(step="validating", size=size)
    root = ctx.work_dir / "extracted"
    try:
        files = extract_blob(ctx, key, root, disk)
        if doc.get(LAYERS_TYPE) == "DATA":
            result = inspect_data(root, data_backend(doc))
        else:
            images = imagefolders.scan(root, files)
            counts = images.counts()
            result = {
                "labels": images.labels,
                "label-counts": counts,
                "image-count": sum(counts.values()),
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["size"] = size
    result["archive"] = key
    return result
