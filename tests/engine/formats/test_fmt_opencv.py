"""Image decoding and resizing equal OpenCV's (what Caffe uses), from recorded OpenCV outputs
(data/opencv_reference.npz, made by data/gen_opencv_reference.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elasticthought.engine.datum import decode_image
from elasticthought.engine.imageset import resize_bilinear

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
