"""WindowData (R-CNN fine-tuning) against real Caffe. Caffe draws windows with its own random
generator, so the comparison uses window files whose foreground and background pools hold one
window each (every draw is then the same) -- the crops, context padding, square mode, clipping,
mean subtraction and scale must equal Caffe's exactly. Sampling itself (fg/bg counts, labels,
thresholds, mirroring, seeding) is checked without Caffe."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from elasticthought.engine.caffemodel import write_mean_binaryproto
from elasticthought.engine.datum import encode_image
from elasticthought.engine.torch.net import Net
from tests.caffe.pycaffe_script import run_pycaffe

NET = """
name: "windows"
layer {{ name: "data" type: "WindowData" top: "data" top: "label"
        transform_param {{ crop_size: 16 {transform} }}
        window_data_param {{ source: "windows.txt" batch_size: 6 fg_fraction: 0.5
                            fg_threshold: 0.5 bg_threshold: 0.3 {window} }} }}
layer {{ name: "silence" type: "Silence" bottom: "data" bottom: "label" }}
"""

# image 0 is 30 x 40 (h x w), image 1 is 35 x 25; windows: label overlap x1 y1 x2 y2
WINDOWS = """# 0
img0.png
3 30 40
3
2 0.8 {fg}
1 0.4 3 3 10 10
0 0.1 {bg}
# 1
img1.png
3 35 25
1
3 0.35 0 0 5 5
"""


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _folder(tmp: Path, fg: str, bg: str, transform: str = "", window: str = "") -> Path:
    rng = np.random.RandomState(11)
    for name, (h, w) in (("img0.png", (30, 40)), ("img1.png", (35, 25))):
        (tmp / name).write_bytes(encode_image(rng.randint(0, 256, (3, h, w)).astype(np.uint8)))
    write_mean_binaryproto(
        np.random.RandomState(2).uniform(0, 255, (3, 20, 20)).astype(np.float32),
        tmp / "mean.binaryproto",
    )
    (tmp / "windows.txt").write_text(WINDOWS.format(fg=fg, bg=bg))
    (tmp / "net.prototxt").write_text(NET.format(transform=transform, window=window))
    return tmp


CASES = {
    "warp": ("5 4 20 18", "0 0 39 29", "", ""),
    "context_pad_clipped": ("1 2 15 25", "30 20 39 29", "", "context_pad: 3"),
    "square_mean_value": (
        "10 5 30 12", "2 8 9 28", "mean_value: 100 mean_value: 120 mean_value: 90",
        'context_pad: 2 crop_mode: "square"',
    ),
    "mean_file": ("0 0 12 29", "20 3 38 9", 'mean_file: "mean.binaryproto"', "context_pad: 1"),
}  # fmt: skip


@pytest.mark.caffe
@pytest.mark.parametrize("case", list(CASES))
def test_window_crops_match_caffe(case: str, tmp_path: Path, caffe_runtime):
    fg, bg, transform, window = CASES[case]
    folder = _folder(tmp_path, fg, bg, transform, window)
    script = (
        "net = caffe.Net('net.prototxt', caffe.TRAIN)\n"
        "net.forward()\n"
        "np.savez('caffe.npz', data=net.blobs['data'].data, label=net.blobs['label'].data)\n"
    )
    run_pycaffe(caffe_runtime, script, folder)
    want = np.load(folder / "caffe.npz")
    with _cwd(folder):
        net = Net("net.prototxt", "TRAIN")
        net.forward()
        data, label = net.blobs["data"].data.copy(), net.blobs["label"].data.copy()
        net.close()
    np.testing.assert_array_equal(label, want["label"])
    assert list(label) == [0, 0, 0, 2, 2, 2]
    np.testing.assert_allclose(data, want["data"], rtol=1e-6, atol=1e-4)
    assert np.abs(data).sum() > 0


def test_window_sampling_counts_labels_and_mirror(tmp_path: Path):
    folder = _folder(tmp_path, "5 4 20 18", "0 0 39 29", "mirror: true", "")
    many = WINDOWS.replace("3\n2 0.8", "4\n4 0.9 1 1 8 8\n2 0.8")
    (folder / "windows.txt").write_text(many.format(fg="5 4 20 18", bg="0 0 39 29"))
    with _cwd(folder):
        torch.manual_seed(3)
        net = Net("net.prototxt", "TRAIN")
        labels, flips = [], 0
        for _ in range(40):
            net.forward()
            lab = net.blobs["label"].data.copy()
            labels.append(lab)
            # the background window covers image 0 whole: mirrored or not, one of two crops
            bgs = net.blobs["data"].data[:3]
            flips += int(sum(not np.array_equal(b, bgs[0]) for b in bgs[1:]) > 0)
        net.close()
        torch.manual_seed(3)
        again = Net("net.prototxt", "TRAIN")
        again.forward()
        np.testing.assert_array_equal(again.blobs["label"].data, labels[0])
        again.close()
    labels = np.array(labels)
    assert (labels[:, :3] == 0).all()  # batch_size - int(6 * 0.5) background windows first
    fg = labels[:, 3:].reshape(-1)
    assert set(fg) == {2, 4}  # the 0.35 and 0.4 windows are neither foreground nor background
    assert 0.3 < (fg == 4).mean() < 0.7
    assert flips > 10  # mirrored crops appear
