"""Blob stores: `open_blobs(url)` picks the backend from the URL scheme; `layout` says where
each document's files live (every blob key is built there). Imports nothing above it."""

from __future__ import annotations

from elasticthought.blobs.base import BlobError, BlobNotFound, BlobStore

__all__ = ["BlobError", "BlobNotFound", "BlobStore", "open_blobs"]


def open_blobs(url: str, create: bool = True) -> BlobStore:
    """Open the blob store named by `url` (`file:///ABS/DIR` or `file:REL/DIR`).

    A malformed or unsupported URL raises `BlobError` naming it."""
    if not isinstance(url, str) or not url.strip():
        raise BlobError(f"blob store URL {url!r} is empty")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "file":
        from elasticthought.blobs.file import FileBlobStore

        return FileBlobStore(url, create=create)
    if scheme == "cbfs":
        raise BlobError(
            f"blob store URL {url!r}: cbfs:// (the seed's CBFS blob store) is not supported; "
            "use a folder every node mounts, as file:///ABSOLUTE/DIR (e.g. an NFS share)"
        )
    raise BlobError(
        f"blob store URL {url!r} is not supported: use file:///ABSOLUTE/DIR or file:RELATIVE/DIR"
    )
