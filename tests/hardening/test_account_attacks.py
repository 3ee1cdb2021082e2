"""Smaller attacks on a live `serve` (embedded store): look-alike usernames, tokens that
outlive a password, a forged Host header, unbounded priority and max_iter, job floods."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.api import helpers as h
from tests.support.server import LiveServer

PUBLIC_URL = "https://et.example.org"
QUEUE_LIMIT = 3
STORE_LIMIT = 100_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    args = [
        "--allow-private-urls",
        "--public-url", PUBLIC_URL,
        "--max-queued-jobs-per-user", str(QUEUE_LIMIT),
        "--max-stored-bytes-per-user", str(STORE_LIMIT),
    ]  # fmt: skip
    with LiveServer(tmp_path_factory.mktemp("accounts"), workers=0, args=args) as srv:
        yield srv


def test_username_with_trailing_newline_is_refused(server: LiveServer) -> None:
    name = f"alice{uuid.uuid4().hex[:6]}"
    for bad in (name + "\n", name + "\r\n", " " + name):
        r = requests.post(server.url + "/users", json={"username": bad, "password": "p" * 12})
        assert r.status_code == 400, (bad, r.text)
    r = requests.post(server.url + "/users", json={"username": name, "password": "p" * 12})
    assert r.status_code == 201


def test_password_change_revokes_tokens(server: LiveServer) -> None:
    user = h.new_user(server.url, "tok")
    token = user.ok("POST", "/tokens", 201, json={"name": "laptop"})["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(server.url + "/datafiles", headers=bearer).status_code == 200
    me = user.ok("GET", "/users/me") if user.get("/users/me").status_code == 200 else None
    user_id = me["id"] if me else f"user:{user.session.auth[0]}"
    user.ok(
        "POST",
        f"/users/{user_id}/password",
        200,
        json={"current-password": user.session.auth[1], "password": "new-password-123"},
    )
    assert requests.get(server.url + "/datafiles", headers=bearer).status_code == 401


def _pending_training_job(user: h.Client, **fields: object) -> tuple[requests.Response, str]:
    df = user.ok("POST", "/datafiles", 201, json={"url": "http://127.0.0.1:9/a.tar.gz"})
    ds = user.ok(
        "POST", "/datasets", 201,
        json={"training": {"datafile-id": df["id"], "split-percentage": 0.7},
              "testing": {"datafile-id": df["id"], "split-percentage": 0.3}},
    )  # fmt: skip
    net = (h.SEED / "alphabet" / "alpha_net.prototxt").read_text()
    solver = user.ok(
        "POST", "/solvers", 201,
        json={"dataset-id": ds["id"], "specification-net": net,
              "specification": 'net: "x"\nbase_lr: 0.01\nmax_iter: 10\nlr_policy: "fixed"'},
    )  # fmt: skip
    return user.post("/training-jobs", json={"solver-id": solver["id"], **fields}), solver["id"]


def test_priority_out_of_range_and_forged_host(server: LiveServer) -> None:
    """priority 1e9 is a 400 naming the range; links come from --public-url, not Host."""
    user = h.new_user(server.url, "prio")
    r, solver_id = _pending_training_job(user, priority=10**9)
    assert r.status_code == 400 and "at most 100" in r.json()["detail"], r.text
    job = user.ok("POST", "/training-jobs", 201, json={"solver-id": solver_id, "priority": 100})
    status = user.get(f"/training-jobs/{job['id']}/status", headers={"Host": "evil.example"})
    assert status.json()["logs"] == f"{PUBLIC_URL}/training-jobs/{job['id']}/logs"


def test_negative_max_iter_is_refused(server: LiveServer) -> None:
    user = h.new_user(server.url, "iter")
    df = user.ok("POST", "/datafiles", 201, json={"url": "http://127.0.0.1:9/a.tar.gz"})
    ds = user.ok(
        "POST", "/datasets", 201,
        json={"training": {"datafile-id": df["id"], "split-percentage": 0.7},
              "testing": {"datafile-id": df["id"], "split-percentage": 0.3}},
    )  # fmt: skip
    net = (h.SEED / "alphabet" / "alpha_net.prototxt").read_text()
    r = user.post(
        "/solvers",
        json={"dataset-id": ds["id"], "specification-net": net,
              "specification": 'net: "x"\nbase_lr: 0.01\nmax_iter: -5'},
    )  # fmt: skip
    assert r.status_code == 422 and "max_iter" in r.json()["detail"], r.text


@pytest.mark.parametrize(
    ("part", "edit", "where"),
    [
        ("solver", ("base_lr: 0.01", "base_lr: nan"), "base_lr is nan"),
        ("solver", ("base_lr: 0.01", "base_lr: 0.01\nmomentum: 1e400"), "momentum is inf"),
        ("net", ("scale: 0.00390625", "scale: -inf"), "scale is -inf"),
        ("deploy", ("std: 0.1", "std: Infinity"), "std is inf"),
    ],
)
def test_non_finite_numbers_in_prototxt_are_refused(
    server: LiveServer, part: str, edit: tuple[str, str], where: str
) -> None:
    """NaN and infinite numbers (`nan`, `inf`, `Infinity`, or a literal past the float
    range) would only make a job diverge or a classifier answer NaN: 422 naming the field,
    its line and column, before anything is stored."""
    user = h.new_user(server.url, "finite")
    df = user.ok("POST", "/datafiles", 201, json={"url": "http://127.0.0.1:9/a.tar.gz"})
    ds = h.split_dataset(user, df["id"])
    solver = 'net: "x"\nbase_lr: 0.01\nmax_iter: 5'
    net = (h.SEED / "alphabet" / "alpha_net.prototxt").read_text()
    if part == "deploy":
        deploy = (
            'input: "data"\ninput_shape { dim: 1 dim: 1 dim: 28 dim: 28 }\n'
            'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
            '  inner_product_param { num_output: 2 weight_filler { type: "gaussian" '
            "std: 0.1 } } }\n"
        ).replace(*edit)
        r = user.post("/classifiers", json={"specification": deploy, "model-url": "http://x/m"})
        text = deploy
    else:
        if part == "solver":
            solver = text = solver.replace(*edit)
        else:
            net = text = net.replace(*edit, 1)
        r = user.post(
            "/solvers",
            json={"dataset-id": ds["id"], "specification-net": net, "specification": solver},
        )
    line = text[: text.index(edit[1].splitlines()[-1])].count("\n") + 1
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert where in detail and f"line {line}, column" in detail, detail
    assert not user.ok("GET", "/solvers")["items"] and not user.ok("GET", "/classifiers")["items"]


def test_job_flood_hits_the_per_user_queue_limit(server: LiveServer) -> None:
    """One user queues jobs as fast as they can: past the limit, 429 naming the flag; another
    user can still queue."""
    flooder = h.new_user(server.url, "flood")
    for _ in range(QUEUE_LIMIT):
        flooder.ok("POST", "/datafiles", 201, json={"url": "http://127.0.0.1:9/a.tar.gz"})
    r = flooder.post("/datafiles", json={"url": "http://127.0.0.1:9/a.tar.gz"})
    assert r.status_code == 429 and "--max-queued-jobs-per-user" in r.json()["detail"], r.text
    other = h.new_user(server.url, "calm")
    other.ok("POST", "/datafiles", 201, json={"url": "http://127.0.0.1:9/a.tar.gz"})


def test_a_concurrent_job_flood_cannot_pass_the_queue_limit(server: LiveServer) -> None:
    """The same flood sent all at once (each request alone would see fewer jobs than the
    limit): exactly the limit's worth are queued, every other one is 429."""
    flooder = h.new_user(server.url, "burst")
    tries = 4 * QUEUE_LIMIT
    start = threading.Barrier(tries)

    def queue(_: int) -> requests.Response:
        start.wait(30)
        return flooder.post("/datafiles", json={"url": "http://127.0.0.1:9/a.tar.gz"})

    with ThreadPoolExecutor(tries) as pool:
        codes = sorted(r.status_code for r in pool.map(queue, range(tries)))
    assert codes == [201] * QUEUE_LIMIT + [429] * (tries - QUEUE_LIMIT), codes
    assert len(flooder.ok("GET", "/datafiles")["items"]) == QUEUE_LIMIT


def test_uploads_past_the_storage_quota_are_refused(server: LiveServer) -> None:
    """One user uploads until the blob store fills: past their quota, 413 naming the flag."""
    user = h.new_user(server.url, "hoard")
    blob = b"\0" * 60_000
    r = user.post("/datafiles", files={"file": ("a.tar.gz", blob)})
    assert r.status_code == 201, r.text
    r = user.post("/datafiles", files={"file": ("b.tar.gz", blob)})
    assert r.status_code == 413 and "--max-stored-bytes-per-user" in r.json()["detail"], r.text
