"""Arbitrary input never escapes as anything but FormatError (the API turns it into a 4xx)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from elasticthought.engine.caffemodel import read_caffemodel, read_mean_binaryproto
from elasticthought.engine.datum import datum_to_array, parse_datum
from elasticthought.engine.errors import FormatError
from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.prototxt import parse_net, parse_solver
from tests.engine.formats.fmt_support import FORMATS

TINY = (FORMATS / "v1_tiny_deploy" / "v1_deploy.prototxt").read_text()
TOKENS = st.sampled_from(
    [
        "layer",
        "layers",
        "{",
        "}",
        ":",
        "name",
        '"x"',
        "type",
        "CONVOLUTION",
        '"ReLU"',
        "1",
        "-2",
        "1e5",
        "input_dim",
        "include",
        "phase",
        "TRAIN",
        "blobs_lr",
        "\n",
        "#",
        "bogus",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(TOKENS, max_size=30).map(" ".join))
def test_token_soup_net(text):
    try:
        parse_net(text)
    except FormatError as exc:
        assert exc.line is None or exc.line >= 1


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(TINY)), st.text(max_size=3))
def test_edited_real_net(pos, insert):
    text = TINY[:pos] + insert + TINY[pos:]
    try:
        net = parse_net(text)
    except FormatError:
        return
    assert len(net.layers) == 0


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_everywhere(data):
    for fn in (read_caffemodel, read_mean_binaryproto, parse_datum, parse_solver):
        try:
            fn(data)
        except FormatError:
            pass


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 4),
    st.integers(0, 4),
    st.integers(0, 4),
    st.binary(max_size=40),
    st.booleans(),
)
def test_inconsistent_datums(c, h, w, data, encoded):
    datum = caffe_pb2.Datum(channels=c, height=h, width=w, data=data, label=1, encoded=encoded)
    try:
        arr, label = datum_to_array(datum.SerializeToString())
    except FormatError:
        return
    assert label == 1 and arr.ndim == 3
