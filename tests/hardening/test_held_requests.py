"""Requests that keep a request thread while they wait (`logs?follow=true`, `classify?wait=
true` on a queued job) are capped per user and in all, so one user's follow streams never
take every request thread of a live `serve`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

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
    """A user's follow past their cap ends their oldest one (a tab left open); the threads
    of all users together are capped too (429)."""
    hog, other = h.new_user(server.url, "hog"), h.new_user(server.url, "other")
    hog_job, other_job = _pending_job(hog), _pending_job(other)
    cap = limits.HELD_REQUESTS_PER_USER
    with ThreadPoolExecutor(cap + 1) as pool:
        started = time.monotonic()
        streams = [pool.submit(_follow, hog, hog_job, 12) for _ in range(cap)]
        time.sleep(1)  # all of them are held by now (each waits its 12 s)
        assert not any(s.done() for s in streams)
        newest = pool.submit(_follow, hog, hog_job, 12)
        first = next(as_completed(streams, timeout=8))  # the oldest one made room
        assert first.result().status_code == 200 and time.monotonic() - started < 8
        assert not newest.done() and sum(s.done() for s in streams) == 1
        assert _follow(other, other_job, 0).status_code == 200  # others still follow
        assert requests.get(server.url + "/health", timeout=10).status_code == 200
        for i in range(limits.MIN_HTTP_THREADS):  # filling the cap of all users: 429
            user = h.new_user(server.url, f"crowd{i}")
            pool_of_one = ThreadPoolExecutor(1)
            pool_of_one.submit(_follow, user, _pending_job(user), 8)
            time.sleep(0.3)
            r = _follow(other, other_job, 0)
            pool_of_one.shutdown(wait=False)
            if r.status_code == 429:
                break
        assert r.status_code == 429, r.text
        assert "too many requests waiting at once" in r.json()["detail"]
        assert int(r.headers["Retry-After"]) >= 1


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


def test_held_requests_are_capped_per_owner_and_in_all() -> None:
    held = HeldRequests(per_owner=2, total=3)
    a1, a2 = held.try_hold("a"), held.try_hold("a")
    assert a1 and a2 and held.try_hold("a") is None  # a's cap
    a3 = held.try_hold("a", replace_oldest=True)  # a's newest ends a's oldest
    assert a3 and a1.stop.is_set() and not a2.stop.is_set() and held.held() == 2
    b = held.try_hold("b")
    assert b and held.try_hold("c") is None  # the total
    assert held.try_hold("c", replace_oldest=True) is None  # c holds nothing to replace
    held.release(a2)
    c = held.try_hold("c")
    assert c and held.held() == 3
    held.release(a1)  # already replaced: nothing changes
    assert held.held() == 3
    for hold in (a3, b, c):
        held.release(hold)
    assert held.held() == 0 and held.try_hold("a")
