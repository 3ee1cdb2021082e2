"""The blob store contract: streaming, atomic puts; keys are relative slash-separated paths."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from typing import BinaryIO


class BlobError(Exception):
    """A blob operation failed (bad key, missing blob, backend error)."""


class BlobNotFound(BlobError):
    """No blob under that key."""


class BlobStore(abc.ABC):
    """Put and get named byte streams. A reader never sees a partially written blob."""

    url: str

    @abc.abstractmethod
    def put(self, key: str, data: bytes | BinaryIO | Iterable[bytes]) -> int:
        """Store `data` under `key` atomically; return the number of bytes written."""

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Open the blob for streaming reads (`BlobNotFound` when missing)."""

    def get(self, key: str) -> bytes:
        """The whole blob as bytes."""
        with self.open(key) as f:
            return f.read()

    def iter_chunks(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        """Stream the blob in chunks (for HTTP responses)."""
        with self.open(key) as f:
            while chunk := f.read(chunk_size):
                yield chunk

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def size(self, key: str) -> int: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove a blob; missing is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys that start with `prefix`, sorted."""

    def delete_prefix(self, prefix: str) -> None:
        for key in self.list(prefix):
            self.delete(key)

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise `BlobError` when the backend is not usable."""
