"""Attacks through requests that make the server build something, on a live `serve` (embedded
store): an oversized deploy net cannot grow it; fetched content is never echoed. (Slow and big
downloads: test_request_downloads.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api import helpers as h
from tests.support.memory import MB, PeakRss
from tests.support.server import LiveServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(
        tmp_path,
        workers=0,
        args=["--allow-private-urls", "--job-memory-limit", "2048", "--http-threads", "16"],
    ) as srv:
        yield srv


DEPLOY = """
name: "huge"
input: "data"
input_shape { dim: 1 dim: 1 dim: 28 dim: 28 }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: NUM } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.mark.parametrize("num_output", [10_000_000, 1_000_000])
def test_oversized_deploy_net_never_grows_the_server(server: LiveServer, num_output: int) -> None:
    """A classifier whose deploy net has InnerProduct num_output huge: built in a bounded
    child, so the server's memory grows < 100 MB; the answer is a clean 4xx and nothing of
    the classifier is left behind."""
    user = h.new_user(server.url, "big")
    from elasticthought.engine.proto import caffe_pb2

    model = caffe_pb2.NetParameter(name="huge").SerializeToString()
    with PeakRss(server.proc.pid) as peak:
        response = user.post(
            "/classifiers",
            files={
                "model": ("m.caffemodel", model),
                "specification": ("deploy.prototxt", DEPLOY.replace("NUM", str(num_output))),
            },
            data={"image-width": "28", "image-height": "28"},
            timeout=180,
        )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    peak.assert_grew_less_than(100 * MB)
    assert "huge" not in user.get("/classifiers").text
    blobs = server.data_dir / "blobs"
    leftovers = [p for p in blobs.rglob("*") if p.is_file() and "classifier" in str(p)]
    assert not leftovers, leftovers


def test_fetched_content_is_never_echoed_in_errors(server: LiveServer, tmp_path: Path) -> None:
    """Attack: with --allow-private-urls, point a solver at a private resource that is not a
    prototxt and read it back from the parse error. The error gives the place, not the text."""
    secret = "TOPSECRET_token_0123456789"
    root = tmp_path / "private"
    root.mkdir()
    (root / "secret.txt").write_text(f"{secret}: 1\n")
    (root / "net.prototxt").write_text(f'layer {{ name: "{secret}" type: "{secret}" }}\n')
    files = h.FileServer(root)
    try:
        user = h.new_user(server.url, "leak")
        df = user.ok("POST", "/datafiles", 201, json={"url": files.url + "/a.tar.gz"})
        ds = user.ok(
            "POST", "/datasets", 201,
            json={"training": {"datafile-id": df["id"], "split-percentage": 0.7},
                  "testing": {"datafile-id": df["id"], "split-percentage": 0.3}},
        )  # fmt: skip
        for body in (
            {"specification-url": files.url + "/secret.txt", "specification-net": "name: 'x'"},
            {"specification": "base_lr: 0.1", "specification-net-url": files.url + "/net.prototxt"},
            {"specification": "base_lr: 0.1", "specification-net-url": files.url + "/secret.txt"},
        ):
            r = user.post("/solvers", json={"dataset-id": ds["id"], **body})
            assert r.status_code == 422, r.text
            assert secret not in r.text, r.text
        r = user.post("/classifiers", json={"specification-url": files.url + "/secret.txt"})
        assert 400 <= r.status_code < 500 and secret not in r.text, r.text
    finally:
        files.close()
