"""Blob stores: `open_blobs(url)` picks the backend from the URL scheme."""

from __future__ import annotations

from elasticthought.blobs.base import BlobError, BlobNotFound, BlobStore
from elasticthought.metrics.hooks import timed_blobs

__all__ = ["BlobError", "BlobNotFound", "BlobStore", "open_blobs"]


def open_blobs(url: str, create: bool = True) -> BlobStore:
    """Open the blob store named by `url` (`file:///ABS/DIR` or `file:REL/DIR`).

    A malformed or unsupported URL raises `BlobError` naming it."""
    if not isinstance(url, str) or not url.strip():
        raise BlobError(f"blob store URL {url!r} is empty")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "file":
        from elasticthought.blobs.file import FileBlobStore

        return timed_blobs(FileBlobStore(url, create=create), "file")
    raise BlobError(
        f"blob store URL {url!r} is not supported: use file:///ABSOLUTE/DIR or file:RELATIVE/DIR"
    )
