"""convert-imageset / compute-image-mean / upgrade-net against Caffe's own tool outputs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from elasticthought.cli import main
from elasticthought.engine.db import iter_datums, open_db
from elasticthought.engine.errors import FormatError
from elasticthought.engine.imageset import (
    compute_image_mean,
    convert_imageset,
    read_list_file,
    resize_bilinear,
)
from tests.engine.formats.fmt_support import FORMATS, IMAGESET, copy_tree

PNG = IMAGESET / "png"
LIST = IMAGESET / "list.txt"


def _records(path):
    with open_db(path) as db:
        return list(db)


@pytest.mark.parametrize(
    "golden, flags",
    [
        ("imageset_lmdb", ["--gray", "--encoded", "--encode_type=png", "--backend=lmdb"]),
        (
            "imageset_leveldb",
            ["--gray", "--encoded", "--encode-type", "png", "--backend", "leveldb"],
        ),
        ("imageset_raw_lmdb", ["--gray", "--backend=lmdb"]),
    ],
)
def test_cli_convert_imageset_equals_caffes_output(golden, flags, tmp_path, capsys):
    out = tmp_path / "db"
    assert main(["convert-imageset", f"{PNG}/", str(LIST), str(out), *flags]) == 0
    assert "20" in capsys.readouterr().out
    ours = _records(out)
    caffes = _records(copy_tree(IMAGESET / golden, tmp_path / "golden"))
    # Same keys, labels, shapes and decoded pixels ...
    a = list(iter_datums(out))
    b = list(iter_datums(tmp_path / "golden"))
    assert [(k, lb) for k, _, lb in a] == [(k, lb) for k, _, lb in b]
    for (_, x, _), (_, y, _) in zip(a, b, strict=True):
        assert x.shape == y.shape == (1, 28, 28)
        np.testing.assert_array_equal(x, y)
    # ... and in fact byte-identical records.
    assert ours == caffes


def test_folder_per_label_tree(tmp_path):
    root = tmp_path / "tree"
    names = {0: "zero", 1: "one", 2: "two"}  # sorted folder order: one, two, zero
    for name, label in read_list_file(LIST):
        if label in names:
            (root / names[label]).mkdir(parents=True, exist_ok=True)
            shutil.copy(PNG / name, root / names[label] / name)
    (root / "one" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    result = convert_imageset(root, None, tmp_path / "db", "leveldb", gray=True)
    assert result.labels == ["one", "two", "zero"]
    rows = list(iter_datums(tmp_path / "db"))
    assert result.count == len(rows) > 0
    folder_label = {"one": 0, "two": 1, "zero": 2}
    originals = {name: lb for name, lb in read_list_file(LIST)}
    pixels = {
        name: np.load(IMAGESET / "case.npz")["png_pixels"][i]
        for i, (name, _) in enumerate(read_list_file(LIST))
    }
    for index, (key, arr, label) in enumerate(rows):
        prefix, rel = key.split("_", 1)
        assert prefix == f"{index:08d}"
        folder, name = rel.split("/")
        assert label == folder_label[folder]
        assert names[originals[name]] == folder
        np.testing.assert_array_equal(arr.astype(np.float32), pixels[name])


def test_shuffle_is_seeded_and_keeps_records(tmp_path):
    def keys(out, **kw):
        convert_imageset(PNG, LIST, out, "lmdb", gray=True, **kw)
        return [k.split("_", 1)[1] for k, _, _ in iter_datums(out)]

    plain = keys(tmp_path / "a")
    s1 = keys(tmp_path / "b", shuffle=True, seed=3)
    s2 = keys(tmp_path / "c", shuffle=True, seed=3)
    s3 = keys(tmp_path / "d", shuffle=True, seed=4)
    assert s1 == s2 and sorted(s1) == sorted(plain) and s1 != plain and s1 != s3


def test_resize_colour_and_reencode(tmp_path):
    convert_imageset(PNG, LIST, tmp_path / "a", "lmdb", resize_height=14, resize_width=10)
    rows = list(iter_datums(tmp_path / "a"))
    assert all(arr.shape == (3, 14, 10) for _, arr, _ in rows)
    for _, arr, _ in rows:  # grey sources: colour channels equal
        np.testing.assert_array_equal(arr[0], arr[2])
    convert_imageset(
        PNG,
        LIST,
        tmp_path / "b",
        "lmdb",
        resize_height=14,
        resize_width=10,
        gray=True,
        encoded=True,
        encode_type="png",
    )
    encoded = list(iter_datums(tmp_path / "b"))
    for (_, x, _), (_, y, _) in zip(rows, encoded, strict=True):
        np.testing.assert_array_equal(x[:1], y)  # lossless PNG round trip of the resized image


def test_resize_uses_opencv_pixel_mapping():
    img = np.uint8([[[0, 100]]])
    np.testing.assert_array_equal(resize_bilinear(img, 1, 4), np.uint8([[[0, 25, 75, 100]]]))
    flat = np.full((1, 5, 7), 9, np.uint8)
    np.testing.assert_array_equal(resize_bilinear(flat, 3, 2), np.full((1, 3, 2), 9, np.uint8))


def test_unreadable_images_are_skipped_and_bad_lists_rejected(tmp_path):
    root = copy_tree(PNG, tmp_path / "png")
    (root / "00003.png").write_bytes(b"garbage")
    result = convert_imageset(root, LIST, tmp_path / "db", "lmdb", gray=True)
    assert result.skipped == ["00003.png"] and result.count == 19
    bad = tmp_path / "list.txt"
    bad.write_text("00000.png 1\n00001.png one\n")
    with pytest.raises(FormatError) as info:
        convert_imageset(root, bad, tmp_path / "db2", "lmdb")
    assert info.value.line == 2 and "one" in str(info.value)
    assert main(["convert-imageset", str(root), str(bad), str(tmp_path / "db3")]) == 1


@pytest.mark.parametrize(
    "db, mean",
    [
        (IMAGESET / "imageset_lmdb", IMAGESET / "imageset_mean.binaryproto"),
        (
            FORMATS.parent / "lenet/lenet_mnist_200/mnist_train_lmdb",
            FORMATS / "mean_binaryproto" / "mean.binaryproto",
        ),
    ],
    ids=["imageset_png", "mnist_4000"],
)
def test_cli_compute_image_mean_equals_caffes(db, mean, tmp_path, capsys):
    out = tmp_path / "mean.binaryproto"
    assert main(["compute-image-mean", str(db), str(out)]) == 0
    assert "mean_value channel [0]" in capsys.readouterr().out
    assert out.read_bytes() == mean.read_bytes()


def test_compute_image_mean_of_leveldb_and_empty_db(tmp_path, copy_db):
    mean = compute_image_mean(copy_db(IMAGESET / "imageset_leveldb"))
    golden = np.load(IMAGESET / "case.npz")["imageset_mean"][0]
    np.testing.assert_array_equal(mean, golden)
    open_db(tmp_path / "empty", "lmdb", "w").close()
    with pytest.raises(FormatError, match="empty"):
        compute_image_mean(tmp_path / "empty")


def test_cli_upgrade_net_and_solver(tmp_path, capsys):
    v1 = FORMATS / "v1_lenet"
    out = tmp_path / "up.prototxt"
    assert main(["upgrade-net", str(v1 / "lenet_v1_train_test.prototxt"), str(out)]) == 0
    assert out.read_text() == (v1 / "lenet_v1_train_test.upgraded.prototxt").read_text()
    assert main(["upgrade-net", "--solver", str(v1 / "lenet_v1_solver.prototxt")]) == 0
    assert capsys.readouterr().out == (v1 / "lenet_v1_solver.upgraded.prototxt").read_text()
    tiny = FORMATS / "v1_tiny_deploy"
    out_bin = tmp_path / "w.caffemodel"
    assert main(["upgrade-net", str(tiny / "weights_v1.caffemodel"), str(out_bin)]) == 0
    from elasticthought.engine.caffemodel import read_caffemodel

    up = read_caffemodel(out_bin, upgrade=False)
    assert len(up.layers) == 0 and [la.type for la in up.layer] == ["Convolution", "InnerProduct"]
    bad = tmp_path / "bad.prototxt"
    bad.write_text("layers {\n  type: WHAT\n}\n")
    assert main(["upgrade-net", str(bad)]) == 1
    assert "2:" in capsys.readouterr().err


def test_check_size_and_labels_file(tmp_path):
    from PIL import Image

    root = copy_tree(PNG, tmp_path / "png")
    Image.new("L", (30, 28)).save(root / "00005.png")
    assert convert_imageset(root, LIST, tmp_path / "a", "lmdb", gray=True).count == 20
    with pytest.raises(FormatError, match="00005.png"):
        convert_imageset(root, LIST, tmp_path / "b", "lmdb", gray=True, check_size=True)
    tree = tmp_path / "tree"
    for label in ("cat", "ant"):
        (tree / label).mkdir(parents=True)
        shutil.copy(PNG / "00000.png", tree / label / "x.png")
    labels = tmp_path / "labels.txt"
    assert (
        main(
            [
                "convert-imageset",
                str(tree),
                str(tmp_path / "c"),
                "--labels-file",
                str(labels),
                "--check-size",
            ]
        )
        == 0
    )
    assert labels.read_text() == "ant\ncat\n"
    assert [lb for *_, lb in iter_datums(tmp_path / "c")] == [0, 1]
