"""Shared pieces of the training end-to-end tests: the served test data, live servers on both
store backends, and the seed's flow (datafile -> dataset -> solver -> training job) over HTTP.

Import the fixtures into a test module with `from tests.e2e.training_support import *`-style
explicit imports (pytest picks fixtures up from the module namespace)."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api import helpers as h
from tests.support.server import LiveServer

MNIST_TRAIN_LMDB = h.SHARED / "golden" / "lenet" / "lenet_mnist_200" / "mnist_train_lmdb"
SERVER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SERVER_ARGS = ["--allow-private-urls", "--fetch-timeout", "30"]
wait_for = h.wait_for  # the e2e tests import it from here


@pytest.fixture(scope="session")
def train_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[h.FileServer]:
    """The seed's alphabet archive and prototxts, and the golden MNIST digits (4000 training
    Datums) as a LevelDB and as an LMDB datafile, over a local HTTP server."""
    root = tmp_path_factory.mktemp("train-served")
    work = tmp_path_factory.mktemp("train-build")
    shutil.copyfile(h.ALPHABET, root / "alphabet.tar.gz")
    for name in ("alphabet", "mnist"):
        shutil.copytree(h.SEED / name, root / name)
    lmdb_dir = work / "mnist_lmdb"
    lmdb_dir.mkdir()
    shutil.copyfile(MNIST_TRAIN_LMDB / "data.mdb", lmdb_dir / "data.mdb")
    h.tar_folder(root / "mnist_lmdb.tar.gz", lmdb_dir, "mnist_lmdb")
    leveldb_dir = h.lmdb_to_leveldb(lmdb_dir, work / "mnist_leveldb")
    h.tar_folder(root / "mnist_leveldb.tar.gz", leveldb_dir, "mnist_leveldb")
    small = h.copy_lmdb(work / "mnist_small_lmdb")  # the 1000 test digits: quick datasets
    h.tar_folder(root / "mnist_small_lmdb.tar.gz", small, "mnist_small_lmdb")
    server = h.FileServer(root)
    yield server
    server.close()


def store_url(request: pytest.FixtureRequest, backend: str) -> str | None:
    """None (the embedded sqlite store) or a fresh database on the shared PouchDB Server."""
    if backend == "sqlite":
        return None
    pouch = request.getfixturevalue("pouchdb_server")
    return pouch.db_url(f"train{uuid.uuid4().hex[:12]}")


def start_server(tmp: Path, store: str | None, workers: int = 1, args: tuple = ()) -> LiveServer:
    return LiveServer(
        tmp, store=store, workers=workers, args=[*SERVER_ARGS, *args], env=SERVER_ENV
    ).start()


def edit_solver(text: str, **values: Any) -> str:
    """The solver text with `key: value` lines replaced (or added)."""
    for name, value in values.items():
        line = f"{name}: {value}"
        text, n = re.subn(rf"(?m)^{name}:.*$", line, text)
        if not n:
            text += f"\n{line}\n"
    return text


def seed_text(name: str) -> str:
    return (h.SEED / name).read_text()


def alphabet_solver(user: h.Client, files: h.FileServer, **solver_edits: Any) -> dict:
    """Datafile (alphabet by URL), dataset split 0.7, solver (the seed's V1 prototxts)."""
    _, ds = h.alphabet_dataset(user, files)
    return _seed_solver(user, files, ds["id"], "alphabet/alpha", solver_edits)


def mnist_solver(
    user: h.Client, files: h.FileServer, backend: str, small: bool = False, **solver_edits: Any
) -> dict:
    """A DATA datafile (LEVELDB or LMDB) of the golden digits (4000, or 1000 when `small`),
    dataset split 0.7, solver (the seed's unmodified mnist prototxts unless `solver_edits`)."""
    assert not small or backend == "LMDB", "the small digits datafile is an LMDB"
    name = "small_lmdb" if small else backend.lower()
    df = user.ok(
        "POST",
        "/datafiles",
        201,
        json={
            "url": f"{files.url}/mnist_{name}.tar.gz",
            "layers_type": "DATA",
            "layers_data_param": {"backend": backend},
        },
    )
    ds = h.split_dataset(user, df["id"])
    return _seed_solver(user, files, ds["id"], "mnist/mnist", solver_edits)


def _seed_solver(
    user: h.Client, files: h.FileServer, dataset_id: str, stem: str, solver_edits: dict
) -> dict:
    """A solver of the seed's `<stem>_net.prototxt` (by URL) and `<stem>_solver.prototxt` (by
    URL, or as text with `solver_edits` applied) on the dataset."""
    body: dict[str, Any] = {
        "dataset-id": dataset_id,
        "specification-net-url": f"{files.url}/{stem}_net.prototxt",
    }
    if solver_edits:
        body["specification"] = edit_solver(seed_text(f"{stem}_solver.prototxt"), **solver_edits)
    else:
        body["specification-url"] = f"{files.url}/{stem}_solver.prototxt"
    return user.ok("POST", "/solvers", 201, json=body)


def train(user: h.Client, solver_id: str, **fields: Any) -> dict:
    made = user.ok("POST", "/training-jobs", 201, json={"solver-id": solver_id, **fields})
    assert made["processing-state"] == "pending"
    return made


def finished(user: h.Client, job_id: str, timeout: float = 240.0) -> dict:
    doc = user.wait(f"/training-jobs/{job_id}", timeout=timeout)
    assert doc["processing-state"] == "finished_successfully", doc.get("processing-log")
    return doc
