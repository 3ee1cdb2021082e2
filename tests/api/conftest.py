"""Fixtures of the API tests: one live `elasticthought serve` per store backend (shared by the
tests of a session; each test works as its own fresh users) and a local file server with the
test data. The serve process fetches from loopback, so it runs with --allow-private-urls."""

from __future__ import annotations

import shutil
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from elasticthought.engine.datum import MAX_IMAGE_PIXELS
from tests.api import helpers as h
from tests.support.images import blank_png
from tests.support.server import LiveServer

MAX_UPLOAD = 3_000_000
MAX_EXTRACT = 8_000_000
SERVER_ARGS = [
    "--allow-private-urls",
    "--max-upload-bytes", str(MAX_UPLOAD),
    "--max-extract-bytes", str(MAX_EXTRACT),
    "--max-extract-files", "5000",
    "--fetch-timeout", "15",
]  # fmt: skip


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[h.FileServer]:
    """Test data over HTTP: the seed's files, MNIST DATA archives, hostile archives."""
    root = tmp_path_factory.mktemp("served")
    work = tmp_path_factory.mktemp("build")
    shutil.copyfile(h.ALPHABET, root / "alphabet.tar.gz")
    for name in ("alphabet", "mnist"):
        shutil.copytree(h.SEED / name, root / name)
    lmdb_dir = h.copy_lmdb(work / "mnist_test_lmdb")
    h.tar_folder(root / "mnist_lmdb.tar.gz", lmdb_dir, "mnist_test_lmdb")
    leveldb_dir = h.lmdb_to_leveldb(lmdb_dir, work / "mnist_test_leveldb")
    h.tar_folder(root / "mnist_leveldb.tar.gz", leveldb_dir, "mnist_test_leveldb")
    png = (root / "alphabet.tar.gz").read_bytes()  # any bytes; the member never gets extracted
    h.tar_gz(
        root / "dotdot.tar.gz",
        [h.file_member("0/a.png", png[:10]), h.file_member("../escape.png", b"x")],
    )
    link = tarfile.TarInfo("0/link.png")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    h.tar_gz(root / "symlink.tar.gz", [(link, None)])
    bomb = tarfile.TarInfo("0/zeros.png")
    bomb.size = MAX_EXTRACT * 3
    with tarfile.open(root / "bomb.tar.gz", "w:gz", compresslevel=9) as tar:
        tar.addfile(bomb, h.Zeros(bomb.size))
    h.tar_gz(root / "notimages.tar.gz", [h.file_member("0/readme.png", b"not an image")])
    side = int(MAX_IMAGE_PIXELS**0.5) + 1  # a 50 kB PNG of more pixels than any image may have
    h.tar_gz(root / "pixelbomb.tar.gz", [h.file_member("0/huge.png", blank_png(side, side))])
    bad = (h.SEED / "alphabet" / "alpha_net.prototxt").read_text().splitlines()
    bad[9] = bad[9].replace("is_color: false", "is_color: maybe")  # line 10
    (root / "bad_net.prototxt").write_text("\n".join(bad) + "\n")
    server = h.FileServer(root)
    yield server
    server.close()


def _start(tmp: Path, store: str | None, **kw) -> LiveServer:
    return LiveServer(tmp, store=store, workers=2, args=SERVER_ARGS, **kw).start()


@pytest.fixture(scope="session", params=["sqlite", "couch"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A live server (workers 2) on the embedded store or PouchDB Server."""
    store = None
    if request.param == "couch":
        pouch = request.getfixturevalue("pouchdb_server")
        store = pouch.db_url(f"api{uuid.uuid4().hex[:12]}")
    server = _start(tmp_path_factory.mktemp(f"serve-{request.param}"), store)
    server.backend = request.param  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="session")
def closed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Sign-up closed, an admin from the config, private URLs refused (the default)."""
    server = LiveServer(
        tmp_path_factory.mktemp("serve-closed"),
        workers=1,
        args=["--open-signup", "false", "--admin-user", "root", "--admin-password", "rootpass1"],
    ).start()
    yield server
    server.stop()
