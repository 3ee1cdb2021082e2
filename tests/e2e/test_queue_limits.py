"""The queue's per-user limits and its answers about waiting jobs, on a live `serve` (embedded
store): one user cannot take every worker (`--max-running-jobs-per-user`), and every pending
job says why it waits (`pending-reason`).

The jobs are datafile downloads from a gated local HTTP server: each archive is sent only once
the test opens its gate, so the test decides when each job ends."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api import helpers as h
from tests.e2e.training_support import seed_text, start_server
from tests.support.server import LiveServer

pytestmark = pytest.mark.slow

CAP = 2
GATE_WAIT = 120.0  # the longest a download waits for its gate


class GatedFiles:
    """Serves the alphabet archive at /<name>.tar.gz once `open(name)` was called."""

    def __init__(self) -> None:
        self.gates: dict[str, threading.Event] = {}
        self.all_open = False
        self.lock = threading.Lock()
        self.archive = h.ALPHABET.read_bytes()
        files = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                files.gate(self.path.strip("/").removesuffix(".tar.gz")).wait(GATE_WAIT)
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(files.archive)))
                self.end_headers()
                self.wfile.write(files.archive)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def gate(self, name: str) -> threading.Event:
        with self.lock:
            event = self.gates.setdefault(name, threading.Event())
            if self.all_open:
                event.set()
            return event

    def open(self, name: str) -> None:
        self.gate(name).set()

    def open_all(self) -> None:
        with self.lock:
            self.all_open = True
            for event in self.gates.values():
                event.set()

    def close(self) -> None:
        self.open_all()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def gated() -> Iterator[GatedFiles]:
    files = GatedFiles()
    yield files
    files.close()


def serve(tmp: Path, workers: int, *args: str) -> LiveServer:
    args = ("--cpus", str(max(1, workers)), "--fetch-timeout", str(GATE_WAIT), *args)
    return start_server(tmp, None, workers=workers, args=args)


def datafile(user: h.Client, files: GatedFiles, name: str) -> str:
    doc = user.ok("POST", "/datafiles", 201, json={"url": f"{files.url}/{name}.tar.gz"})
    return doc["id"]


def states(user: h.Client) -> dict[str, str]:
    """The user's datafiles: id -> processing-state."""
    items = user.ok("GET", "/datafiles")["items"]
    return {d["id"]: d["processing-state"] for d in items}


class RunningWatch:
    """Polls one user's datafiles in a thread and keeps the most seen `processing` at once."""

    def __init__(self, user: h.Client) -> None:
        self.user = user
        self.most = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.stop.wait(0.05):
            running = sum(s == "processing" for s in states(self.user).values())
            self.most = max(self.most, running)

    def close(self) -> int:
        self.stop.set()
        self.thread.join(30)
        return self.most


def test_one_user_never_runs_more_than_the_cap_while_others_run(
    tmp_path: Path, gated: GatedFiles
) -> None:
    """User A queues 4 downloads, user B one, on 4 workers with a cap of 2: B's job runs while
    A has 2 running and 2 pending (with the cap as their reason); when one of A's ends, the
    next starts; A never has more than 2 running at once."""
    srv = serve(tmp_path, 4, "--max-running-jobs-per-user", str(CAP))
    try:
        hog, other = h.new_user(srv.url, "hog"), h.new_user(srv.url, "other")
        watch = RunningWatch(hog)
        a_jobs = [datafile(hog, gated, f"a{n}") for n in range(4)]
        b_job = datafile(other, gated, "b0")
        h.wait_for(lambda: states(other)[b_job] == "processing", "B's job to start", 60)
        seen = h.wait_for(
            lambda: (s := states(hog)) and list(s.values()).count("processing") == CAP and s,
            "A to run as many jobs as the cap",
            60,
        )
        time.sleep(1.5)  # a free worker remains: nothing more of A's may start
        seen = states(hog)
        assert list(seen.values()).count("processing") == CAP, seen
        waiting = [j for j in a_jobs if seen[j] == "pending"]
        assert len(waiting) == 2
        cap_reason = (
            f"waiting: you have {CAP} jobs running, the most allowed (--max-running-jobs-per-user)"
        )
        for job_id in waiting:
            assert hog.ok("GET", f"/datafiles/{job_id}").get("pending-reason") == cap_reason
        listed = {d["id"]: d for d in hog.ok("GET", "/datafiles")["items"]}
        assert {listed[j].get("pending-reason") for j in waiting} == {cap_reason}
        assert all("pending-reason" not in listed[j] for j in a_jobs if j not in waiting)
        first = next(j for j in a_jobs if seen[j] == "processing")
        gated.open(f"a{a_jobs.index(first)}")
        assert hog.wait(f"/datafiles/{first}", 60)["processing-state"] == "finished_successfully"
        h.wait_for(
            lambda: sum(states(hog)[j] == "processing" for j in waiting) == 1,
            "A's next job to start",
            60,
        )
        gated.open_all()
        for job_id in [*a_jobs, b_job]:
            user = other if job_id == b_job else hog
            doc = user.wait(f"/datafiles/{job_id}", 90)
            assert doc["processing-state"] == "finished_successfully", doc
        assert watch.close() == CAP
    except AssertionError:
        print(srv.log_tail(20000))
        raise
    finally:
        gated.open_all()
        srv.stop()


def reason_of(user: h.Client, path: str) -> str | None:
    return user.ok("GET", path).get("pending-reason")


def test_jobs_behind_a_long_one_say_where_they_are_in_line(
    tmp_path: Path, gated: GatedFiles
) -> None:
    """One worker, busy with a long download: the jobs behind it show their place in line
    (other users' turns come first), and a dataset names the datafile it waits for."""
    srv = serve(tmp_path, 1)
    try:
        me, other = h.new_user(srv.url, "me"), h.new_user(srv.url, "other")
        long_one = datafile(me, gated, "long")
        h.wait_for(lambda: states(me)[long_one] == "processing", "the long job to start", 60)
        assert reason_of(me, f"/datafiles/{long_one}") is None
        mine = [datafile(me, gated, f"m{n}") for n in range(2)]
        theirs = datafile(other, gated, "t0")
        dataset = me.ok(
            "POST",
            "/datasets",
            201,
            json={"training": {"datafile-id": mine[0], "split-percentage": 0.7},
                  "testing": {"datafile-id": mine[0], "split-percentage": 0.3}},
        )["id"]  # fmt: skip
        # Fair share: the other user's job goes first (I already have one running), then mine.
        assert reason_of(other, f"/datafiles/{theirs}") == (
            "waiting for a free worker (next in line)"
        )
        assert reason_of(me, f"/datafiles/{mine[0]}") == (
            "waiting for a free worker (1 job ahead of it: 1 of other users, whose turn comes "
            "first)"
        )
        assert reason_of(me, f"/datafiles/{mine[1]}") == (
            "waiting for a free worker (2 jobs ahead of it: 1 of other users, whose turn comes "
            "first; 1 of yours, of higher priority or submitted earlier)"
        )
        assert reason_of(me, f"/datasets/{dataset}") == f"waiting for datafile {mine[0]} to finish"
        gated.open_all()
        for job_id in mine:
            assert me.wait(f"/datafiles/{job_id}", 90)["processing-state"] == (
                "finished_successfully"
            )
        assert me.wait(f"/datasets/{dataset}", 90)["processing-state"] == "finished_successfully"
    finally:
        gated.open_all()
        srv.stop()


def test_without_workers_a_job_says_no_worker_is_running(tmp_path: Path, gated: GatedFiles) -> None:
    """`serve --workers 0` (and no worker elsewhere): every pending job says so."""
    srv = serve(tmp_path, 0)
    try:
        me = h.new_user(srv.url, "alone")
        job = datafile(me, gated, "never")
        assert reason_of(me, f"/datafiles/{job}") == "no worker is running"
        listed = me.ok("GET", "/datafiles")["items"]
        assert [d.get("pending-reason") for d in listed] == ["no worker is running"]
        # What a job waits for first: the job it needs (here the dataset, on the status route).
        dataset = me.ok(
            "POST",
            "/datasets",
            201,
            json={"training": {"datafile-id": job, "split-percentage": 0.7},
                  "testing": {"datafile-id": job, "split-percentage": 0.3}},
        )["id"]  # fmt: skip
        solver = me.ok(
            "POST",
            "/solvers",
            201,
            json={
                "dataset-id": dataset,
                "specification-net": seed_text("alphabet/alpha_net.prototxt"),
                "specification": seed_text("alphabet/alpha_solver.prototxt"),
            },
        )["id"]
        training = me.ok("POST", "/training-jobs", 201, json={"solver-id": solver})
        waits = f"waiting for dataset {dataset} to finish"
        assert training["pending-reason"] == waits
        status = me.ok("GET", f"/training-jobs/{training['id']}/status")
        assert status["state"] == "pending" and status["pending-reason"] == waits
    finally:
        srv.stop()
