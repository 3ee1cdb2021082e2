"""Requests that keep a request thread while they wait (`logs?follow=true`, `classify?wait=
true` on a queued job) are capped per user and in all, so one user's follow streams never
take every request thread of a live `serve`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from elasticthought import limits
from elasticthought.api.held_requests import HeldRequests, HeldStream
from tests.api import helpers as h
from tests.support.server import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # no worker: training jobs stay pending, so a follow stream waits its whole timeout
    with LiveServer(tmp_path_factory.mktemp("held"), workers=0,
                    args=["--http-threads", "16", "--allow-private-urls"]) as srv:  # fmt: skip
        yield srv


def _pending_job(user: h.Client) -> str:
    df = user.ok("POST", "/datafiles", 201, json={"url": "http://127.0.0.1:9/a.tar.gz"})
    ds = h.split_dataset(user, df["id"])
    net = (h.SEED / "alphabet" / "alpha_net.prototxt").read_text()
    solver = user.ok("POST", "/solvers", 201, json={
        "dataset-id": ds["id"], "specification-net": net,
        "specification": 'net: "x"\nbase_lr: 0.01\nmax_iter: 10'})  # fmt: skip
    return user.ok("POST", "/training-jobs", 201, json={"solver-id": solver["id"]})["id"]


def _follow(user: h.Client, job_id: str, seconds: float) -> requests.Response:
    return requests.get(  # a session of its own per call: streams run in threads
        f"{user.base}/training-jobs/{job_id}/logs", auth=(user.username, user.password),
        params={"follow": "true", "timeout": str(seconds)}, timeout=seconds + 60,
    )  # fmt: skip


def test_one_users_follow_streams_cannot_take_every_thread(server: LiveServer) -> None:
    hog, other = h.new_user(server.url, "hog"), h.new_user(server.url, "other")
    hog_job, other_job = _pending_job(hog), _pending_job(other)
    cap = limits.HELD_REQUESTS_PER_USER
    with ThreadPoolExecutor(cap) as pool:
        started = time.monotonic()
        streams = [pool.submit(_follow, hog, hog_job, 6) for _ in range(cap)]
        deadline = time.monotonic() + 5
        while True:  # once the hog holds its cap, its next follow is refused at once
            r = _follow(hog, hog_job, 0)
            if r.status_code == 429 or time.monotonic() > deadline:
                break
        assert r.status_code == 429, r.text
        assert "too many requests waiting at once" in r.json()["detail"]
        assert int(r.headers["Retry-After"]) >= 1
        assert _follow(other, other_job, 0).status_code == 200  # others still follow
        assert requests.get(server.url + "/health", timeout=10).status_code == 200
        assert all(s.result().status_code == 200 for s in streams)
        assert time.monotonic() - started >= 5  # the streams did wait their timeout
    assert _follow(hog, hog_job, 0).status_code == 200  # given back when they ended


def test_held_requests_are_capped_per_owner_and_in_all() -> None:
    held = HeldRequests(per_owner=2, total=3)
    assert held.try_hold("a") and held.try_hold("a")
    assert not held.try_hold("a")  # a's cap
    assert held.try_hold("b")
    assert not held.try_hold("c")  # the total
    held.release("a")
    assert held.try_hold("c") and held.held() == 3
    for owner in ("a", "b", "c"):
        held.release(owner)
    assert held.held() == 0 and held.try_hold("a")


def test_a_stream_gives_its_hold_back_once_even_if_never_read() -> None:
    released: list[int] = []

    def chunks():  # noqa: ANN202
        yield b"a"
        yield b"b"

    never_read = HeldStream(chunks(), lambda: released.append(1))
    never_read.close()  # the client went away before the first chunk
    never_read.close()
    assert released == [1]
    read = HeldStream(chunks(), lambda: released.append(2))
    assert list(read) == [b"a", b"b"]
    read.close()
    assert released == [1, 2]
