"""Key-value databases Caffe reads: LMDB (package `lmdb`) and LevelDB (package `plyvel`).

`open_db(path, backend, mode)` gives one small interface over both: iteration of (key, value)
in key order (the order Caffe's Data layer reads), `put` with batched commits, `count`,
`close`, and use as a context manager. Read-only opens never modify the database folder: LMDB is
opened without its lock file, and a LevelDB in a folder that is not writable is copied to a
temporary folder first (LevelDB rewrites LOG/MANIFEST files even when reading).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from elasticthought.engine.datum import datum_to_array, parse_datum
from elasticthought.engine.errors import FormatError

BACKENDS = ("lmdb", "leveldb")
COMMIT_EVERY = 1000
# A new LMDB's first map (it doubles whenever full). Its address space counts against a job's
# memory limit (RLIMIT_AS) from the start, so it starts small: three 1 GiB maps (a dataset
# split reads one database and writes two) already exceeded a 2 GiB limit.
_LMDB_INITIAL_MAP = 64 << 20


def _key_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def normalize_backend(backend: str | int) -> str:
    """`"lmdb"`/`"LMDB"`/`caffe_pb2.DataParameter.LMDB` (1) -> "lmdb"; likewise LevelDB (0)."""
    if isinstance(backend, int):
        if backend in (0, 1):
            return ("leveldb", "lmdb")[backend]
    elif str(backend).lower() in BACKENDS:
        return str(backend).lower()
    raise FormatError(f"unknown database backend {backend!r} (use lmdb or leveldb)")


def detect_backend(path: str | os.PathLike) -> str:
    """ "lmdb" for a folder holding data.mdb (or an LMDB file), "leveldb" for a LevelDB folder."""
    p = Path(path)
    if p.is_dir():
        if (p / "data.mdb").is_file():
            return "lmdb"
        names = {c.name for c in p.iterdir()}
        if "CURRENT" in names or any(n.startswith("MANIFEST-") for n in names):
            return "leveldb"
        raise FormatError(f"{p}: neither an LMDB nor a LevelDB database folder")
    if p.is_file():
        with open(p, "rb") as fh:
            head = fh.read(32)
        # LMDB meta page magic 0xBEEFC0DE at offset 16 (little-endian).
        if len(head) >= 20 and head[16:20] == bytes.fromhex("dec0efbe"):
            return "lmdb"
        raise FormatError(f"{p}: not a database (expected an LMDB or LevelDB folder)")
    raise FormatError(f"{p}: no such database")


class Database:
    """Common surface of the two backends (see the module docstring)."""

    path: Path
    backend: str
    mode: str

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        raise NotImplementedError

    def put(self, key: str | bytes, value: bytes) -> None:
        raise NotImplementedError

    def get(self, key: str | bytes) -> bytes | None:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def flush(self) -> None:
        """Commit pending writes."""

    def close(self) -> None:
        raise NotImplementedError

    def keys(self) -> Iterator[bytes]:
        for key, _ in self:
            yield key

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter shutdown
            pass


class LMDBDatabase(Database):
    backend = "lmdb"

    def __init__(self, path: Path, mode: str) -> None:
        import lmdb

        self.path, self.mode = path, mode
        self._pending: list[tuple[bytes, bytes]] = []
        subdir = not path.is_file()
        try:
            if mode == "r":
                self._env = lmdb.open(
                    str(path), readonly=True, lock=False, subdir=subdir, max_readers=126
                )
            else:
                self._env = lmdb.open(str(path), map_size=_LMDB_INITIAL_MAP, subdir=True)
        except lmdb.Error as exc:
            raise FormatError(f"{path}: cannot open LMDB: {exc}") from None

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        self.flush()
        with self._env.begin(buffers=False) as txn:
            yield from txn.cursor()

    def get(self, key: str | bytes) -> bytes | None:
        self.flush()
        with self._env.begin() as txn:
            return txn.get(_key_bytes(key))

    def put(self, key: str | bytes, value: bytes) -> None:
        if self.mode == "r":
            raise FormatError(f"{self.path}: opened read-only")
        self._pending.append((_key_bytes(key), bytes(value)))
        if len(self._pending) >= COMMIT_EVERY:
            self.flush()

    def flush(self) -> None:
        import lmdb

        if not self._pending:
            return
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in self._pending:
                        txn.put(key, value)
                break
            except lmdb.MapFullError:  # grow the map as Caffe does, then retry the batch
                self._env.set_mapsize(self._env.info()["map_size"] * 2)
        self._pending.clear()

    def count(self) -> int:
        self.flush()
        return int(self._env.stat()["entries"])

    def close(self) -> None:
        if self._env is not None:
            try:
                self.flush()
            finally:
                self._env.close()
                self._env = None


class LevelDBDatabase(Database):
    backend = "leveldb"

    def __init__(self, path: Path, mode: str, copy: bool | None = None) -> None:
        import plyvel

        self.path, self.mode = path, mode
        self._tmp: str | None = None
        self._batch = None
        self._pending = 0
        open_path = path
        if mode == "r" and (copy or (copy is None and not _writable_tree(path))):
            self._tmp = tempfile.mkdtemp(prefix="et-leveldb-")
            open_path = Path(self._tmp) / "db"
            shutil.copytree(path, open_path)
            for root, dirs, files in os.walk(open_path):
                for name in dirs + files:
                    os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
            os.chmod(open_path, 0o755)
        try:
            if mode == "r":
                self._db = plyvel.DB(str(open_path), create_if_missing=False)
            else:
                self._db = plyvel.DB(
                    str(open_path), create_if_missing=True, write_buffer_size=64 << 20
                )
        except plyvel.Error as exc:
            self._cleanup()
            raise FormatError(f"{path}: cannot open LevelDB: {exc}") from None

    def _cleanup(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        self.flush()
        with self._db.iterator() as it:
            yield from it

    def get(self, key: str | bytes) -> bytes | None:
        self.flush()
        return self._db.get(_key_bytes(key))

    def put(self, key: str | bytes, value: bytes) -> None:
        if self.mode == "r":
            raise FormatError(f"{self.path}: opened read-only")
        if self._batch is None:
            self._batch = self._db.write_batch()
        self._batch.put(_key_bytes(key), bytes(value))
        self._pending += 1
        if self._pending >= COMMIT_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._batch is not None:
            self._batch.write()
            self._batch = None
            self._pending = 0

    def count(self) -> int:
        self.flush()
        n = 0
        with self._db.iterator(include_value=False) as it:
            for _ in it:
                n += 1
        return n

    def close(self) -> None:
        if self._db is not None:
            try:
                self.flush()
            finally:
                self._db.close()
                self._db = None
                self._cleanup()


def _writable_tree(path: Path) -> bool:
    """Whether the folder is meant to be written: a writable filesystem and write permission
    bits on the folder and its files. Permission bits, not os.access: root may write anywhere,
    and a read-only-marked database (such as shared golden data) must stay untouched."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return False
        entries = [path, *(p for p in path.iterdir() if p.is_file() and p.name != "LOCK")]
        return all(e.stat().st_mode & 0o200 for e in entries)
    except OSError:
        return False


def open_db(
    path: str | os.PathLike,
    backend: str | int | None = None,
    mode: str = "r",
    copy: bool | None = None,
) -> Database:
    """Open a database. `backend` None detects it (read mode only). `mode`: "r" read-only,
    "w" create a new database (the folder must not hold one yet), "a" open for adding.
    `copy` (LevelDB reads): True always reads from a temporary copy, None copies only when
    the folder is not writable (read-only filesystem or no write permission bits)."""
    if mode not in ("r", "w", "a"):
        raise ValueError(f"mode must be 'r', 'w' or 'a', not {mode!r}")
    p = Path(path)
    if backend is None:
        if mode == "w":
            raise FormatError("a backend (lmdb or leveldb) is needed to create a database")
        backend = detect_backend(p)
    backend = normalize_backend(backend)
    if mode == "r" and not p.exists():
        raise FormatError(f"{p}: no such database")
    if mode == "w":
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise FormatError(f"{p}: already exists; refusing to overwrite a database")
        p.mkdir(parents=True, exist_ok=True)
    if backend == "lmdb":
        return LMDBDatabase(p, mode)
    return LevelDBDatabase(p, mode, copy)


def iter_datums(
    path: str | os.PathLike, backend: str | int | None = None, color: bool | None = None
) -> Iterator[tuple[str, np.ndarray, int]]:
    """(key, C x H x W array, label) of every record in key order; non-Datum values raise
    `FormatError` naming the key."""
    with open_db(path, backend, "r") as db:
        for key, value in db:
            name = key.decode("utf-8", "replace")
            arr, label = datum_to_array(parse_datum(value, name), color)
            yield name, arr, label


def label_counts(path: str | os.PathLike, backend: str | int | None = None) -> dict[int, int]:
    """Label -> number of records (labels sorted ascending)."""
    counts: Counter[int] = Counter()
    with open_db(path, backend, "r") as db:
        for key, value in db:
            counts[int(parse_datum(value, key.decode("utf-8", "replace")).label)] += 1
    return dict(sorted(counts.items()))


def discover_labels(
    path: str | os.PathLike, backend: str | int | None = None
) -> list[tuple[int, int]]:
    """Sorted list of (label, count) pairs found in the database."""
    return list(label_counts(path, backend).items())
