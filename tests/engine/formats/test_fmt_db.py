"""Datum databases: Caffe's LMDB and LevelDB records read back exactly; our writes and errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from elasticthought.engine.datum import (
    array_to_datum,
    datum_to_array,
    decode_image,
    encode_image,
    parse_datum,
)
from elasticthought.engine.db import (
    detect_backend,
    discover_labels,
    iter_datums,
    label_counts,
    open_db,
)
from elasticthought.engine.errors import FormatError
from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.wire import unknown_field_paths
from tests.engine.formats.fmt_support import IMAGESET, LENET, folder_digest

RECORDS = json.loads((IMAGESET / "records.json").read_text())
CASE = np.load(IMAGESET / "case.npz")
DATABASES = ["imageset_lmdb", "imageset_leveldb", "imageset_raw_lmdb"]


@pytest.mark.parametrize("name", DATABASES)
def test_golden_records_read_back_exactly(name, copy_db):
    path = copy_db(IMAGESET / name)
    expected = RECORDS["databases"][name]
    assert detect_backend(path) == ("leveldb" if "leveldb" in name else "lmdb")
    with open_db(path) as db:
        assert db.count() == len(expected) == 20
        rows = list(db)
    assert [k.decode() for k, _ in rows] == [r["key"] for r in expected]
    for (_key, value), rec in zip(rows, expected, strict=True):
        datum = parse_datum(value)
        assert unknown_field_paths(datum) == []
        assert datum.SerializeToString() == value
        assert len(value) == rec["value_bytes"]
        assert datum.label == rec["label"]
        assert (datum.channels, datum.height, datum.width) == (
            rec["channels"],
            rec["height"],
            rec["width"],
        )
        assert datum.encoded == rec["encoded"]
        assert len(datum.data) == rec["data_bytes"]
        assert len(datum.float_data) == rec["float_data_len"]
        assert hashlib.sha256(datum.data).hexdigest() == rec["data_sha256"]
        if rec.get("data_is_the_png_file_bytes"):
            assert datum.data == (IMAGESET / "png" / rec["source_file"]).read_bytes()
        arr, label = datum_to_array(datum)
        if "decoded_shape_hwc" in rec:
            h, w, c = rec["decoded_shape_hwc"]
            assert arr.shape == (c, h, w)
        assert label == rec["label"]
    # Decoded pixels and labels equal the arrays recorded from Caffe.
    items = list(iter_datums(path))
    pixels = np.stack([a for _, a, _ in items]).astype(np.float32)
    np.testing.assert_array_equal(pixels, CASE["png_pixels"])
    np.testing.assert_array_equal(np.float32([lb for *_, lb in items]), CASE["labels"])


def test_lmdb_and_leveldb_hold_identical_records(copy_db):
    assert RECORDS["lmdb_and_leveldb_records_byte_identical"]
    with open_db(copy_db(IMAGESET / "imageset_lmdb")) as a:
        lmdb_rows = list(a)
    with open_db(copy_db(IMAGESET / "imageset_leveldb")) as b:
        leveldb_rows = list(b)
    assert lmdb_rows == leveldb_rows


def test_force_color_decoding_matches_data_layer(copy_db):
    items = list(iter_datums(copy_db(IMAGESET / "imageset_lmdb"), color=True))
    data = np.stack([a for _, a, _ in items]).astype(np.float32)
    np.testing.assert_array_equal(data, CASE["data_layer.lmdb_force_color.data"])


def _read_only_copy(src: Path, dest: Path) -> Path:
    """A copy of a golden database with the permission bits of a read-only share (the test
    never opens ../shared itself: LevelDB would rewrite a writable original)."""
    shutil.copytree(src, dest)
    for p in [*dest.rglob("*"), dest]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    return dest


def test_reading_in_place_leaves_golden_databases_untouched(tmp_path):
    for name in DATABASES:
        path = _read_only_copy(IMAGESET / name, tmp_path / name)
        try:
            before = folder_digest(path)
            assert len(list(iter_datums(path))) == 20
            with open_db(path) as db:
                assert db.count() == 20
            assert folder_digest(path) == before, name
            assert not (path / "lock.mdb").exists()
        finally:
            for p in [path, *path.rglob("*")]:
                p.chmod(0o755 if p.is_dir() else 0o644)


def test_lenet_lmdb_first_batch_equals_caffes_first_input(copy_db):
    case = np.load(LENET / "case.npz")
    batch = case["iter000.input.data"]
    rows = []
    for key, arr, label in iter_datums(LENET / "mnist_train_lmdb"):
        rows.append((key, arr, label))
        if len(rows) == batch.shape[0]:
            break
    assert rows[0][0] == "00000000"
    data = np.stack([a for _, a, _ in rows]).astype(np.float32) * np.float32(0.00390625)
    np.testing.assert_array_equal(data, batch)
    np.testing.assert_array_equal(np.float32([r[2] for r in rows]), case["iter000.input.label"])
    counts = label_counts(LENET / "mnist_train_lmdb")
    assert counts == {label: 400 for label in range(10)}


def test_discover_labels(copy_db):
    path = copy_db(IMAGESET / "imageset_leveldb")
    labels = discover_labels(path)
    expected = {}
    for rec in RECORDS["databases"]["imageset_leveldb"]:
        expected[rec["label"]] = expected.get(rec["label"], 0) + 1
    assert labels == sorted(expected.items())
    assert [lb for lb, _ in labels] == sorted(lb for lb, _ in labels)


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_write_and_read_back_in_key_order(backend, tmp_path, monkeypatch):
    import elasticthought.engine.db as dbmod

    monkeypatch.setattr(dbmod, "COMMIT_EVERY", 7)  # exercise several batched commits
    rng = np.random.default_rng(0)
    arrays = {}
    path = tmp_path / "db"
    with open_db(path, backend, "w") as db:
        for i in rng.permutation(40):
            arr = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
            key = f"{i:08d}_img{i}.png"
            arrays[key] = (arr, int(i % 4))
            db.put(key, array_to_datum(arr, int(i % 4)).SerializeToString())
    assert detect_backend(path) == backend
    got = list(iter_datums(path))
    assert [k for k, _, _ in got] == sorted(arrays)
    for key, arr, label in got:
        np.testing.assert_array_equal(arr, arrays[key][0])
        assert label == arrays[key][1]
    with open_db(path) as db:
        assert db.count() == 40
        assert db.get("00000003_img3.png") is not None
    with pytest.raises(FormatError, match="exists"):
        open_db(path, backend, "w")


def test_lmdb_grows_its_map(tmp_path, monkeypatch):
    import elasticthought.engine.db as dbmod

    monkeypatch.setattr(dbmod, "_LMDB_INITIAL_MAP", 64 * 1024)
    with open_db(tmp_path / "db", "lmdb", "w") as db:
        for i in range(50):
            db.put(f"{i:04d}", bytes(4096))
    with open_db(tmp_path / "db") as db:
        assert db.count() == 50


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
@pytest.mark.parametrize("value", [b'{"not": "a datum"}', b"\x08", b"", b"\xff\xff\xff"])
def test_non_datum_values_raise_format_error(backend, value, tmp_path):
    with open_db(tmp_path / "db", backend, "w") as db:
        db.put("00000000_ok", array_to_datum(np.zeros((1, 2, 2), np.uint8), 1).SerializeToString())
        db.put("00000001_bad", value)
    with pytest.raises(FormatError, match="not a Caffe Datum") as info:
        list(iter_datums(tmp_path / "db"))
    assert "00000001_bad" in str(info.value)
    with pytest.raises(FormatError):
        discover_labels(tmp_path / "db")


def test_not_a_database(tmp_path):
    with pytest.raises(FormatError, match="neither"):
        detect_backend(tmp_path)
    with pytest.raises(FormatError, match="no such"):
        open_db(tmp_path / "missing", "lmdb")
    with pytest.raises(FormatError, match="backend"):
        open_db(tmp_path, "sqlite")


def test_datum_kinds():
    bgr = np.zeros((3, 2, 3), np.uint8)
    bgr[0] = 10  # blue
    bgr[2] = 200  # red
    png = encode_image(bgr, "png")
    from io import BytesIO

    from PIL import Image

    rgb = np.asarray(Image.open(BytesIO(png)))
    assert rgb[0, 0].tolist() == [200, 0, 10]  # Pillow sees RGB
    np.testing.assert_array_equal(decode_image(png), bgr)  # we return BGR like OpenCV
    assert decode_image(png, color=False).shape == (1, 2, 3)

    enc = array_to_datum(None, 3, encoded=png)
    assert enc.encoded and not enc.HasField("channels")
    arr, label = datum_to_array(enc.SerializeToString())
    np.testing.assert_array_equal(arr, bgr)
    assert label == 3

    floats = array_to_datum(np.float32([[[0.5, -1.0]]]), 0)
    assert list(floats.float_data) == [0.5, -1.0] and floats.label == 0
    arr, _ = datum_to_array(floats)
    assert arr.dtype == np.float32 and arr.shape == (1, 1, 2)

    bad = caffe_pb2.Datum(channels=1, height=2, width=2, data=b"abc")
    with pytest.raises(FormatError, match="needs 4"):
        datum_to_array(bad)
    broken = caffe_pb2.Datum(encoded=True, data=b"not an image")
    with pytest.raises(FormatError, match="decode"):
        datum_to_array(broken)


def test_decoding_jpeg_rgba_palette_and_16bit():
    from io import BytesIO

    from PIL import Image

    def encoded(img, fmt):
        buf = BytesIO()
        img.save(buf, format=fmt)
        return buf.getvalue()

    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 240  # red
    rgb[..., 2] = 16  # blue
    jpeg = decode_image(encoded(Image.fromarray(rgb), "JPEG"))
    assert jpeg.shape == (3, 4, 6)
    assert abs(int(jpeg[2].mean()) - 240) <= 3 and abs(int(jpeg[0].mean()) - 16) <= 3  # BGR

    rgba = Image.fromarray(np.dstack([rgb, np.full((4, 6), 7, np.uint8)]), "RGBA")
    arr = decode_image(encoded(rgba, "PNG"))
    assert arr.shape == (4, 4, 6)  # native read keeps alpha (BGRA), as Caffe's
    assert int(arr[3].min()) == 7
    arr = decode_image(encoded(rgba, "PNG"), color=True)
    assert arr.shape == (3, 4, 6)  # forced colour drops it
    np.testing.assert_array_equal(arr[2], rgb[..., 0])

    palette = Image.fromarray(rgb).convert("P")
    assert decode_image(encoded(palette, "PNG")).shape == (3, 4, 6)

    deep = Image.fromarray(np.full((2, 3), 0x1234, np.uint16))
    arr = decode_image(encoded(deep, "PNG"))
    assert arr.shape == (1, 2, 3) and int(arr.max()) == 0x12  # 16-bit scaled to 8-bit

    gray_forced = decode_image(encoded(Image.fromarray(rgb), "PNG"), color=False)
    assert gray_forced.shape == (1, 4, 6)
