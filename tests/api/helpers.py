"""Helpers for API tests: an HTTP client for one user, a local file server for datasets, and
the test archives (the seed's alphabet, MNIST digits from the golden data as LevelDB and LMDB
datafiles, and hostile archives)."""

from __future__ import annotations

import functools
import http.server
import io
import shutil
import tarfile
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tests.support.paths import SHARED

ALPHABET = SHARED / "data" / "alphabet.tar.gz"
SEED = SHARED / "data" / "seed-examples"
MNIST_LMDB = SHARED / "golden" / "lenet" / "lenet_mnist_200" / "mnist_test_lmdb"
FINAL = ("finished_successfully", "failed", "canceled")


class Client:
    """requests against one server as one user (HTTP Basic unless a token is set)."""

    def __init__(self, base: str, username: str | None = None, password: str | None = None):
        self.base = base
        self.session = requests.Session()
        # A GET whose pooled keep-alive connection was reset is retried, as HTTP clients do;
        # other methods are never retried (they may not be idempotent).
        retry = Retry(
            total=3, connect=3, read=2, status=0, backoff_factor=0.2,
            allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False,
        )  # fmt: skip
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        if username:
            self.session.auth = (username, password or "")
        self.username = username
        self.password = password

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, self.base + path, **kwargs)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.call("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.call("DELETE", path, **kw)

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        response = self.call(method, path, **kw)
        assert response.status_code == status, (response.status_code, response.text)
        return response.json() if response.content else None

    def wait(self, path: str, timeout: float = 90.0) -> dict:
        """Poll a job document until it reaches a final state (bounded)."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            doc = self.ok("GET", path)
            if doc.get("processing-state") in FINAL:
                return doc
            assert time.monotonic() < deadline, f"{path} still {doc.get('processing-state')}"
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)


def new_user(base: str, prefix: str = "u") -> Client:
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    password = f"pw-{uuid.uuid4().hex}"
    r = requests.post(
        base + "/users",
        json={"username": name, "password": password, "email": f"{name}@x.org"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return Client(base, name, password)


def alphabet_dataset(user: Client, files: FileServer) -> tuple[dict, dict]:
    """The seed's alphabet datafile (by URL from `files`) and its 70/30 dataset, both created."""
    df = user.ok("POST", "/datafiles", 201, json={"url": files.url + "/alphabet.tar.gz"})
    return df, split_dataset(user, df["id"])


def split_dataset(user: Client, datafile_id: str) -> dict:
    """The dataset made of one datafile split 70/30 (training/testing), created."""
    return user.ok(
        "POST",
        "/datasets",
        201,
        json={
            "training": {"datafile-id": datafile_id, "split-percentage": 0.7},
            "testing": {"datafile-id": datafile_id, "split-percentage": 0.3},
        },
    )


def wait_for(fn: Any, what: str, timeout: float = 120.0) -> Any:
    """Poll `fn()` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


class FileServer:
    """A local http.server on a loopback port serving one folder (in a thread)."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.root = root
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


# Archives -------------------------------------------------------------------------------------


def tar_gz(path: Path, members: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


class Zeros:
    """A file-like of `n` zero bytes (a gzip bomb's member, never held in memory)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return bytes(size)


def tar_folder(path: Path, folder: Path, arcname: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return path


def copy_lmdb(dest: Path) -> Path:
    """The golden MNIST test LMDB copied (LMDB writes lock files next to an opened database)."""
    dest.mkdir(parents=True)
    shutil.copyfile(MNIST_LMDB / "data.mdb", dest / "data.mdb")
    return dest


def lmdb_to_leveldb(source: Path, dest: Path) -> Path:
    """The same records, same keys, as a LevelDB (with the formats module)."""
    from elasticthought.engine.db import open_db

    with open_db(source, "lmdb", "r") as src, open_db(dest, "leveldb", "w") as out:
        for key, value in src:
            out.put(key, value)
    return dest


def labels_in_key_order(db_folder: Path, backend: str) -> list[int]:
    from elasticthought.engine.datum import parse_datum
    from elasticthought.engine.db import open_db

    with open_db(db_folder, backend, "r") as db:
        return [parse_datum(value).label for _, value in db]


def expected_split(labels: Iterable[Any], train_share_tenths: int) -> tuple[dict, dict]:
    """Per-label (training, testing) counts by the seed's rule, in integer arithmetic:
    training when train * test_share <= test * train_share (shares in tenths)."""
    test_share = 10 - train_share_tenths
    train: dict[Any, int] = {}
    test: dict[Any, int] = {}
    for label in labels:
        a, b = train.get(label, 0), test.get(label, 0)
        if a * test_share <= b * train_share_tenths:
            train[label] = a + 1
        else:
            test[label] = b + 1
    return train, test
