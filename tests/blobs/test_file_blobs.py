"""The file: blob store: URLs, streaming atomic puts, reads, listing, key validation."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from elasticthought.blobs import BlobError, BlobNotFound, open_blobs
from elasticthought.blobs.file import FileBlobStore


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    store = open_blobs(f"file://{tmp_path / 'blobs'}")
    assert isinstance(store, FileBlobStore)
    return store


def test_absolute_url_creates_root(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    store = open_blobs(f"file://{root}")
    assert root.is_dir()
    store.ping()


def test_relative_url_is_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_blobs("file:rel/blobs")
    store.put("k", b"v")
    assert (tmp_path / "rel" / "blobs" / "k").read_bytes() == b"v"


@pytest.mark.parametrize(
    "url", ["", "s3://bucket/x", "file:", "file://host/dir", "ftp:///x", "nocolon"]
)
def test_malformed_urls_name_the_url(url: str) -> None:
    with pytest.raises(BlobError) as info:
        open_blobs(url)
    assert repr(url) in str(info.value)


def test_put_bytes_file_and_chunks(blobs: FileBlobStore) -> None:
    assert blobs.put("a/one", b"hello") == 5
    assert blobs.put("a/two", io.BytesIO(b"x" * 3_000_000)) == 3_000_000
    assert blobs.put("b/three", (bytes([i]) * 1000 for i in range(10))) == 10_000
    assert blobs.get("a/one") == b"hello"
    assert blobs.size("a/two") == 3_000_000
    assert b"".join(blobs.iter_chunks("b/three", chunk_size=333)) == b"".join(
        bytes([i]) * 1000 for i in range(10)
    )
    assert blobs.exists("a/one") and not blobs.exists("a/none")


def test_overwrite_replaces(blobs: FileBlobStore) -> None:
    blobs.put("k", b"old")
    blobs.put("k", b"newer")
    assert blobs.get("k") == b"newer"


def test_missing_blob(blobs: FileBlobStore) -> None:
    with pytest.raises(BlobNotFound):
        blobs.get("nope")
    with pytest.raises(BlobNotFound):
        blobs.size("nope")
    blobs.put("dir/file", b"1")
    with pytest.raises(BlobNotFound):
        blobs.open("dir")  # a folder is not a blob
    blobs.delete("nope")  # missing is not an error


def test_failed_put_leaves_old_blob_and_no_temp(blobs: FileBlobStore) -> None:
    blobs.put("k", b"original")

    def broken():
        yield b"partial data"
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError):
        blobs.put("k", broken())
    assert blobs.get("k") == b"original"
    assert os.listdir(blobs.root / ".tmp") == []
    assert blobs.list() == ["k"]


def test_reader_never_sees_partial_blob(blobs: FileBlobStore) -> None:
    """While a big blob is being written in slow chunks, readers see the old one whole."""
    old = b"A" * 100_000
    new = b"B" * 100_000
    blobs.put("k", old)
    gate = threading.Event()
    seen: list[bytes] = []

    def slow():
        for i in range(10):
            yield new[i * 10_000 : (i + 1) * 10_000]
            if i == 4:
                gate.set()

    writer = threading.Thread(target=blobs.put, args=("k", slow()))
    writer.start()
    assert gate.wait(5)
    seen.append(blobs.get("k"))
    writer.join(5)
    seen.append(blobs.get("k"))
    assert seen == [old, new]


def test_list_by_prefix(blobs: FileBlobStore) -> None:
    for key in ["jobs/1/log", "jobs/1/model", "jobs/12/log", "jobs/2/log", "data/x", "top"]:
        blobs.put(key, b".")
    assert blobs.list("jobs/1/") == ["jobs/1/log", "jobs/1/model"]
    assert blobs.list("jobs/1") == ["jobs/1/log", "jobs/1/model", "jobs/12/log"]
    assert blobs.list("t") == ["top"]
    assert blobs.list() == sorted(
        ["jobs/1/log", "jobs/1/model", "jobs/12/log", "jobs/2/log", "data/x", "top"]
    )
    assert blobs.list("missing/") == []


def test_delete_and_delete_prefix(blobs: FileBlobStore) -> None:
    blobs.put("a/b/c", b"1")
    blobs.put("a/b/d", b"2")
    blobs.put("a/e", b"3")
    blobs.delete("a/b/c")
    assert blobs.list("a/") == ["a/b/d", "a/e"]
    blobs.delete_prefix("a/b/")
    assert blobs.list() == ["a/e"]
    assert not (blobs.root / "a" / "b").exists()


@pytest.mark.parametrize(
    "key",
    ["", "../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a\\b", "a\x00b", "a/", ".tmp/x"],
)
def test_bad_keys_rejected(blobs: FileBlobStore, key: str) -> None:
    with pytest.raises(BlobError):
        blobs.put(key, b"x")
    with pytest.raises(BlobError):
        blobs.exists(key)


def test_symlink_out_of_root_rejected(blobs: FileBlobStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    os.symlink(outside, blobs.root / "link")
    with pytest.raises(BlobError):
        blobs.get("link/secret")
    with pytest.raises(BlobError):
        blobs.put("link/new", b"x")
    assert not (outside / "new").exists()
    os.symlink(outside / "secret", blobs.root / "filelink")
    with pytest.raises(BlobError):
        blobs.get("filelink")


def test_ping_fails_when_root_gone(tmp_path: Path) -> None:
    store = open_blobs(f"file://{tmp_path / 'r'}")
    store.ping()
    (tmp_path / "r" / ".tmp").rmdir()
    (tmp_path / "r").rmdir()
    with pytest.raises(BlobError):
        store.ping()


def test_concurrent_puts_and_deletes_in_one_folder(blobs: FileBlobStore) -> None:
    """Deletes prune empty folders while other threads put into them: every put lands whole."""
    errors: list[BaseException] = []

    def churn(n: int) -> None:
        try:
            for i in range(60):
                key = f"shared/dir/{n}-{i}"
                blobs.put(key, bytes([n]) * 1000)
                assert blobs.get(key) == bytes([n]) * 1000
                blobs.delete(key)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert blobs.list() == []
    assert os.listdir(blobs.root / ".tmp") == []


def test_key_under_an_existing_blob_is_an_error(blobs: FileBlobStore) -> None:
    blobs.put("a", b"file")
    with pytest.raises(BlobError):
        blobs.put("a/b", b"x")
    assert blobs.get("a") == b"file"
    assert os.listdir(blobs.root / ".tmp") == []
