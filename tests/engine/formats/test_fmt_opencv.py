"""Image decoding and resizing equal OpenCV's (what Caffe uses), from recorded OpenCV outputs
(data/opencv_reference.npz, made by data/gen_opencv_reference.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elasticthought.engine.datum import decode_image
from elasticthought.engine.imageset import resize_bilinear
from tests.support.images import blank_png

REF = np.load(Path(__file__).with_name("data") / "opencv_reference.npz")
RESIZES = sorted({int(k.split(".")[1]) for k in REF.files if k.startswith("resize.")})
DECODES = sorted({k.split(".")[1] for k in REF.files if k.startswith("decode.")})
FLAGS = {"unchanged": None, "color": True, "gray": False}


def test_reference_is_complete():
    assert len(RESIZES) >= 20 and len(DECODES) >= 9


@pytest.mark.parametrize("case", RESIZES)
def test_resize_matches_opencv_bit_for_bit(case):
    src = REF[f"resize.{case}.input"]
    want = REF[f"resize.{case}.output"]
    got = resize_bilinear(src.transpose(2, 0, 1), want.shape[0], want.shape[1])
    np.testing.assert_array_equal(got.transpose(1, 2, 0), want)


@pytest.mark.parametrize("flag", list(FLAGS))
@pytest.mark.parametrize("name", DECODES)
def test_decode_matches_opencv(name, flag):
    data = REF[f"decode.{name}.bytes"].tobytes()
    want = REF[f"decode.{name}.{flag}"]
    got = decode_image(data, FLAGS[flag])
    np.testing.assert_array_equal(got.transpose(1, 2, 0), want)


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(monkeypatch) -> None:
    from elasticthought.engine import datum
    from elasticthought.engine.errors import FormatError

    # the real limit, with a real file: a 50 kB PNG that would decode to 50.4 M pixels
    side = int(datum.MAX_IMAGE_PIXELS**0.5) + 2
    with pytest.raises(FormatError, match=f"{side} x {side} = .* pixels, over the limit"):
        decode_image(blank_png(side, side), False)
    monkeypatch.setattr(datum, "MAX_IMAGE_PIXELS", 100 * 100)
    assert decode_image(blank_png(100, 100, "RGB"), False).shape == (1, 100, 100)  # at the limit
    for color in (None, True, False):
        with pytest.raises(FormatError, match="101 x 100 = 10100 pixels"):
            decode_image(blank_png(101, 100, "RGB"), color)


def test_a_large_image_resized_channel_by_channel_gives_the_same_numbers(monkeypatch) -> None:
    from elasticthought.engine.torch.data import images

    arr = np.random.default_rng(7).integers(0, 256, size=(3, 97, 131), dtype=np.uint8)
    whole = images.resize(arr, 28, 41)
    monkeypatch.setattr(images, "_CHANNEL_AT_A_TIME_PIXELS", 1)  # this image counts as large
    np.testing.assert_array_equal(images.resize(arr, 28, 41), whole)
    split_up = images.resize(arr, 200, 45)  # upscaling too
    monkeypatch.setattr(images, "_CHANNEL_AT_A_TIME_PIXELS", 1 << 40)
    np.testing.assert_array_equal(split_up, images.resize(arr, 200, 45))
