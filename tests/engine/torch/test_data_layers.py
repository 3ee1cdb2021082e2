"""Data, ImageData and MemoryData layers and the transformer, against real Caffe's decodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import elasticthought.engine.torch.data  # noqa: F401 - registers the data layers
from elasticthought.engine.datum import array_to_datum
from elasticthought.engine.db import open_db
from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.prototxt import parse_net, read_net
from elasticthought.engine.torch.data.db_data import DataLayer, DataSourceError
from elasticthought.engine.torch.data.image_data import ImageDataLayer, ImageListError
from elasticthought.engine.torch.data.memory_data import MemoryDataError, MemoryDataLayer
from elasticthought.engine.torch.transformer import Transformer, TransformError
from tests.support.paths import SHARED, writable_copy

GOLDEN = SHARED / "golden" / "formats" / "imageset_png"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def imageset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of the imageset_png case (databases write lock/log files)."""
    return writable_copy(GOLDEN, tmp_path_factory.mktemp("imageset") / "case")


@pytest.fixture(scope="module")
def case() -> dict:
    with np.load(GOLDEN / "case.npz") as npz:
        return {k: npz[k] for k in npz.files}


def _layer(prototxt: Path, phase: str = "TEST"):
    param = read_net(prototxt).layer[0]
    cls = {"Data": DataLayer, "ImageData": ImageDataLayer}[param.type]
    return cls(param, phase, CPU)


@pytest.mark.parametrize(
    "tag",
    ["lmdb", "leveldb", "raw_lmdb", "lmdb_mean_scale", "lmdb_meanvalue_crop20", "lmdb_force_color"],
)
def test_data_layer_decodes_as_caffe(imageset, case, monkeypatch, tag):
    import json

    meta = json.loads((GOLDEN / "meta.json").read_text())["arrays"]
    monkeypatch.chdir(imageset)
    layer = _layer(imageset / f"read_{tag}.prototxt")
    try:
        data, label = layer.forward([])
        for name, got in (("data", data), ("label", label)):
            key = f"data_layer.{tag}.{name}"
            want = case[key]
            assert tuple(got.shape) == want.shape, key
            tol = meta[key]
            np.testing.assert_allclose(got.numpy(), want, rtol=tol["rtol"], atol=tol["atol"])
        assert layer.top_shape == tuple(case[f"data_layer.{tag}.data"].shape)
        # The next batch wraps around to the first record again (20 records, batch 20).
        data2, _ = layer.forward([])
        np.testing.assert_array_equal(data2.numpy(), data.numpy())
    finally:
        layer.close()


def _write_lmdb(path: Path, n: int, shape=(1, 4, 5)) -> np.ndarray:
    images = np.arange(n * int(np.prod(shape)), dtype=np.int64).reshape(n, *shape) % 251
    images = images.astype(np.uint8)
    with open_db(str(path), "lmdb", "w") as db:
        for i in range(n):
            db.put(f"{i:08d}", array_to_datum(images[i], i % 7).SerializeToString())
    return images


def _data_param(source: Path, batch: int, extra: str = "", top2: bool = True) -> object:
    tops = 'top: "data" top: "label"' if top2 else 'top: "data"'
    text = (
        f'layer {{ name: "d" type: "Data" {tops} '
        f'data_param {{ source: "{source}" batch_size: {batch} backend: LMDB }} {extra} }}'
    )
    return parse_net(text).layer[0]


def test_data_layer_order_wraps_like_caffe(tmp_path):
    images = _write_lmdb(tmp_path / "db", 10)
    layer = DataLayer(_data_param(tmp_path / "db", 4), "TRAIN", CPU)
    try:
        order = []
        for _ in range(5):  # 20 records = two passes over 10
            data, label = layer.forward([])
            assert data.dtype == torch.float32 and tuple(data.shape) == (4, 1, 4, 5)
            for item, lab in zip(data.numpy(), label.numpy(), strict=True):
                idx = int(np.flatnonzero((images == item.astype(np.uint8)).all(axis=(1, 2, 3)))[0])
                assert lab == idx % 7
                order.append(idx)
        assert order == [i % 10 for i in range(20)]
    finally:
        layer.close()


def test_data_layer_single_top_and_errors(tmp_path):
    _write_lmdb(tmp_path / "db", 3)
    layer = DataLayer(_data_param(tmp_path / "db", 2, top2=False), "TEST", CPU)
    try:
        tops = layer.forward([])
        assert len(tops) == 1
    finally:
        layer.close()
    with pytest.raises(DataSourceError, match="not found"):
        DataLayer(_data_param(tmp_path / "missing", 2), "TEST", CPU)
    with pytest.raises(DataSourceError, match="batch_size"):
        DataLayer(_data_param(tmp_path / "db", 0), "TEST", CPU)


def test_train_crop_and_mirror_are_random_but_seeded(tmp_path):
    _write_lmdb(tmp_path / "db", 8, shape=(3, 6, 6))
    extra = "transform_param { crop_size: 4 mirror: true }"

    def batches(seed: int) -> list[np.ndarray]:
        torch.manual_seed(seed)
        layer = DataLayer(_data_param(tmp_path / "db", 8, extra), "TRAIN", CPU)
        try:
            return [layer.forward([])[0].numpy() for _ in range(3)]
        finally:
            layer.close()

    a, b, c = batches(1), batches(1), batches(2)
    assert a[0].shape == (8, 3, 4, 4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    # TEST phase: centre crop, no randomness, never mirrored.
    layer = DataLayer(
        _data_param(tmp_path / "db", 8, "transform_param { crop_size: 4 }"), "TEST", CPU
    )
    try:
        data = layer.forward([])[0].numpy()
    finally:
        layer.close()
    with open_db(str(tmp_path / "db"), "lmdb", "r") as db:
        from elasticthought.engine.datum import datum_to_array

        first = datum_to_array(next(iter(db))[1])[0]
    np.testing.assert_array_equal(data[0], first[:, 1:5, 1:5].astype(np.float32))


def test_transformer_order_mean_crop_scale_mirror():
    p = caffe_pb2.TransformationParameter(scale=0.5, crop_size=2, mirror=True)
    p.mean_value.extend([1.0, 2.0])
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    t = Transformer(p, "TEST", seed=0)
    out = [t(img) for _ in range(20)]
    plain = (
        img[:, 0:2, 0:2].astype(np.float32) - np.array([1, 2], np.float32)[:, None, None]
    ) * np.float32(0.5)
    seen = {tuple(o.ravel()) for o in out}
    assert seen == {tuple(plain.ravel()), tuple(plain[:, :, ::-1].ravel())}
    with pytest.raises(TransformError, match="mean_value"):
        Transformer(caffe_pb2.TransformationParameter(mean_value=[1, 2]), "TEST")(
            np.zeros((3, 2, 2), np.uint8)
        )
    with pytest.raises(TransformError, match="crop_size"):
        Transformer(caffe_pb2.TransformationParameter(crop_size=5), "TEST")(
            np.zeros((1, 3, 3), np.uint8)
        )


def _png(path: Path, value: int, size=(6, 5), mode="L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, value // 2, 255 - value)
    Image.new(mode, size, color).save(path)


def _image_layer(tmp_path: Path, extra: str, batch: int = 2, phase: str = "TRAIN"):
    text = (
        f'layer {{ name: "img" type: "ImageData" top: "data" top: "label" '
        f'image_data_param {{ source: "{tmp_path / "list.txt"}" batch_size: {batch} '
        f"{extra} }} }}"
    )
    return ImageDataLayer(parse_net(text).layer[0], phase, CPU)


def test_image_data_list_root_resize_color(tmp_path):
    for i in range(3):
        _png(tmp_path / "imgs" / f"a b{i}.png", 10 * i, mode="RGB")
    (tmp_path / "list.txt").write_text("".join(f"a b{i}.png {i + 3}\n" for i in range(3)))
    layer = _image_layer(tmp_path, f'root_folder: "{tmp_path}/imgs/" new_height: 4 new_width: 3')
    try:
        assert layer.top_shape == (2, 3, 4, 3)
        d1, l1 = layer.forward([])
        d2, l2 = layer.forward([])
        assert l1.tolist() == [3, 4] and l2.tolist() == [5, 3]  # wraps after 3 lines
        # BGR order: channel 0 is blue = 255 - value
        assert d1[1, 0, 0, 0].item() == 245 and d1[1, 2, 0, 0].item() == 10
    finally:
        layer.close()
    layer = _image_layer(tmp_path, f'root_folder: "{tmp_path}/imgs/" is_color: false')
    try:
        data, _ = layer.forward([])
        assert tuple(data.shape) == (2, 1, 5, 6)
    finally:
        layer.close()


def test_image_data_shuffle_is_seeded_and_covers_all(tmp_path):
    for i in range(6):
        _png(tmp_path / f"{i}.png", i)
    (tmp_path / "list.txt").write_text("".join(f"{tmp_path}/{i}.png {i}\n" for i in range(6)))

    def labels(seed: int) -> list[float]:
        torch.manual_seed(seed)
        layer = _image_layer(tmp_path, "shuffle: true is_color: false", batch=3)
        try:
            return [v for _ in range(2) for v in layer.forward([])[1].tolist()]
        finally:
            layer.close()

    a = labels(5)
    assert sorted(a) == [0, 1, 2, 3, 4, 5]
    assert a == labels(5)


def test_image_data_errors(tmp_path):
    (tmp_path / "list.txt").write_text("x.png 1\nno_label_here\n")
    with pytest.raises(ImageListError, match="list.txt:2"):
        _image_layer(tmp_path, "")
    (tmp_path / "list.txt").write_text("missing.png 1\n")
    with pytest.raises(ValueError, match="missing.png"):
        _image_layer(tmp_path, "")


def test_memory_data_batches_wrap():
    text = (
        'layer { name: "m" type: "MemoryData" top: "data" top: "label" '
        "memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }"
    )
    layer = MemoryDataLayer(parse_net(text).layer[0], "TRAIN", CPU)
    with pytest.raises(MemoryDataError, match="set_input_arrays"):
        layer.forward([])
    data = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    with pytest.raises(MemoryDataError, match="multiple"):
        layer.set_input_arrays(data[:3], np.arange(3))
    layer.set_input_arrays(data, np.arange(4))
    got = [layer.forward([]) for _ in range(3)]
    assert [t[1].tolist() for t in got] == [[0, 1], [2, 3], [0, 1]]
    np.testing.assert_array_equal(got[1][0].numpy(), data[2:4])


def test_layers_share_one_database_handle_and_release_it(tmp_path):
    import gc

    from elasticthought.engine.torch.data import shared_db

    _write_lmdb(tmp_path / "db", 6)
    a = DataLayer(_data_param(tmp_path / "db", 4), "TRAIN", CPU)
    b = DataLayer(_data_param(tmp_path / "db", 4), "TEST", CPU)  # a second open would fail
    first_a, first_b = a.forward([])[1], b.forward([])[1]
    assert first_a.tolist() == first_b.tolist() == [0, 1, 2, 3]  # each has its own cursor
    a.close()
    assert b.forward([])[1].tolist() == [4, 5, 0, 1]
    del b  # never closed: collected all the same (the prefetch thread holds it weakly)
    gc.collect()
    assert not shared_db._OPEN
