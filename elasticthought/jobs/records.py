"""Datum databases inside datafiles: find one, read it in key order, write splits, average.

Reading and writing go through the formats module `elasticthought.engine.db` (LMDB and
LevelDB); records are Caffe `Datum` messages (`elasticthought.engine.datum`). Backends are
named as in prototxt: "LEVELDB" / "LMDB".
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from elasticthought.blobs import layout
from elasticthought.documents.errors import JobError
from elasticthought.engine import db as caffe_db
from elasticthought.engine.caffemodel import write_mean_binaryproto
from elasticthought.engine.datum import datum_to_array
from elasticthought.engine.datum import parse_datum as _parse
from elasticthought.engine.errors import FormatError
from elasticthought.engine.proto import caffe_pb2

BACKENDS = ("LEVELDB", "LMDB")


def detect(folder: Path) -> str | None:
    try:
        return caffe_db.detect_backend(folder).upper()
    except FormatError:
        return None


def find_database(root: Path) -> tuple[Path, str]:
    """The one LevelDB or LMDB folder under `root` (itself or below)."""
    found = []
    for folder in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        kind = detect(folder)
        if kind:
            found.append((folder, kind))
    if not found:
        raise JobError("the archive holds no LevelDB (CURRENT file) or LMDB (data.mdb) database")
    if len(found) > 1:
        names = ", ".join(str(f.relative_to(root)) or "." for f, _ in found)
        raise JobError(f"the archive holds more than one database: {names}")
    return found[0]


def iter_records(folder: Path, backend: str) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs in key order."""
    try:
        with caffe_db.open_db(folder, backend.lower(), "r") as db:
            yield from db
    except FormatError as exc:
        raise JobError(f"cannot read the {backend} database: {exc}") from None
    except Exception as exc:  # lmdb.Error / plyvel.Error: a corrupt database
        raise JobError(f"cannot read the {backend} database: {type(exc).__name__}: {exc}") from None


class Writer:
    """Writes records into a new database of `backend` at `folder`."""

    def __init__(self, folder: Path, backend: str) -> None:
        self.backend = backend
        self.count = 0
        self._db = caffe_db.open_db(folder, backend.lower(), "w")

    def put(self, key: bytes, value: bytes) -> None:
        self._db.put(key, value)
        self.count += 1

    def close(self) -> None:
        self._db.close()
        lock = Path(self._db.path) / "lock.mdb"
        lock.unlink(missing_ok=True)


def parse_datum(key: bytes, value: bytes) -> caffe_pb2.Datum:
    try:
        return _parse(value, key[:64])
    except FormatError as exc:
        raise JobError(str(exc)) from None


def datum_array(datum: caffe_pb2.Datum) -> np.ndarray:
    """The datum's pixels as float64 (C, H, W); encoded images are decoded (gray or BGR)."""
    try:
        arr, _ = datum_to_array(datum)
    except FormatError as exc:
        raise JobError(f"cannot decode a record for the mean: {exc}") from None
    return np.asarray(arr, dtype=np.float64)


def mean_blob(total: np.ndarray, count: int) -> bytes:
    """A BlobProto (.binaryproto) of `total / count`, with Caffe's legacy 1xCxHxW dims."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / layout.MEAN
        write_mean_binaryproto(total / max(count, 1), path)
        return path.read_bytes()
