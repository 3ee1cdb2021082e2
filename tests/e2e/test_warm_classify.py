"""Warm classification over HTTP (a live `elasticthought serve`): `classify?wait=true` is
answered by the inference process without the queue (even with no worker at all), with the
same results as the queued classify job, across evictions (a 1 MB classifier cache holds one
classifier at a time, so alternating classifiers reload each time)."""

from __future__ import annotations

import pytest

from elasticthought.engine.datum import MAX_IMAGE_PIXELS
from tests.api import helpers as h
from tests.e2e.classify_support import classify, finished_job, golden_digits, upload_classifier
from tests.e2e.training_support import start_server
from tests.support.images import blank_png

pytestmark = pytest.mark.slow


def test_wait_true_is_answered_warm_like_the_queued_job(tmp_path, classify_files) -> None:
    srv = start_server(tmp_path / "one", None, workers=1, args=("--classifier-cache-mb", "1"))
    try:
        user = h.new_user(srv.url, "warm")
        first = upload_classifier(user, classify_files).json()
        second = upload_classifier(user, classify_files, **{"transform": None}).json()
        images, _, probs = golden_digits()
        uploads = [(f"digit{i}.png", images[i]) for i in range(8)]
        queued = finished_job(classify(user, first["id"], uploads=uploads, wait=False))
        assert queued["worker-id"] != "inference"
        for _ in range(2):  # alternating: each answer loads its classifier again (evicted)
            for clf in (first, second):
                job = finished_job(classify(user, clf["id"], uploads=uploads))
                assert job["worker-id"] == "inference" and job["attempts"] == 1
                assert job["classified-images"] == 8 and job["failed-images"] == 0
                if clf is first:
                    for name, got in job["results"].items():
                        want = queued["results"][name]
                        assert got["label"] == want["label"]
                        assert got["probability"] == pytest.approx(want["probability"], abs=1e-5)
                assert user.ok("GET", f"/classify-jobs/{job['id']}")["results"] == job["results"]
        broken = classify(user, first["id"], uploads=[("not-an-image.png", b"no")])
        assert broken["processing-state"] == "finished_successfully"
        assert "error" in broken["results"]["not-an-image.png"]
    finally:
        srv.stop()


def test_no_worker_needed_for_wait_true(tmp_path, classify_files) -> None:
    """No worker: wait=true is answered warm (with its Server-Timing phases); without wait
    the job is queued, and counts against the per-user queue quota, which a warm answer (it
    never waits in the queue) does not need."""
    srv = start_server(tmp_path / "api", None, workers=0,
                       args=("--max-queued-jobs-per-user", "1"))  # fmt: skip
    try:
        user = h.new_user(srv.url, "apionly")
        clf = upload_classifier(user, classify_files).json()
        images, _, probs = golden_digits()
        job = finished_job(classify(user, clf["id"], uploads=[("d.png", images[0])]))
        assert job["results"]["d.png"]["label"] == int(probs[0].argmax())
        parts = [("files", ("d.png", images[0], "image/png"))]
        url = f"/classifiers/{clf['id']}/classify"
        pending = user.post(url, files=parts)
        assert pending.json()["processing-state"] == "pending"  # no wait: the queue, as before
        refused = user.post(url, files=parts)  # a second queued job: past the quota
        assert refused.status_code == 429, refused.text
        warm = user.post(url, files=parts, params={"wait": "true"})
        assert warm.status_code == 201, warm.text
        assert warm.json()["results"]["d.png"]["label"] == int(probs[0].argmax())
        phases = dict(p.strip().split(";dur=") for p in warm.headers["Server-Timing"].split(","))
        assert {"app", "read", "infer", "model", "store", "total"} <= set(phases)
        assert 0 < float(phases["model"]) <= float(phases["infer"]) <= float(phases["total"])
        assert "Server-Timing" not in pending.headers
    finally:
        srv.stop()


def test_an_image_of_too_many_pixels_fails_alone_warm_or_queued(tmp_path, classify_files) -> None:
    """A small PNG that would decode to more than MAX_IMAGE_PIXELS (a 12500 x 12500 one took
    7.4 GB in the shared inference process before the limit) gets its own error, warm and
    queued; the other images are classified and the server keeps answering."""
    srv = start_server(tmp_path / "bomb", None, workers=1)
    try:
        user = h.new_user(srv.url, "pixels")
        clf = upload_classifier(user, classify_files).json()
        images, _, probs = golden_digits()
        side = int(MAX_IMAGE_PIXELS**0.5) + 1
        uploads = [("huge.png", blank_png(side, side, "RGB")), ("d.png", images[0])]
        for wait in (True, False):
            job = finished_job(classify(user, clf["id"], uploads=uploads, wait=wait))
            assert (job["worker-id"] == "inference") is wait
            assert job["processing-state"] == "finished_successfully"
            assert job["classified-images"] == 1 and job["failed-images"] == 1
            assert "pixels, over the limit" in job["results"]["huge.png"]["error"]
            assert job["results"]["d.png"]["label"] == int(probs[0].argmax())
        assert user.ok("GET", f"/classifiers/{clf['id']}")["id"] == clf["id"]
    finally:
        srv.stop()
