"""A real Prometheus scrapes a live `serve` and a separate `elasticthought worker` (one SQLite
store file shared by both); jobs run; Prometheus's HTTP API answers the job counters and the
queue-depth gauge with the numbers the REST API reports."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.api import helpers as h
from tests.metrics.prometheus_support import Prometheus, prometheus_binary
from tests.support.pouchdb import free_port
from tests.support.server import REPO

FINISHED, FAILED, PENDING = "finished_successfully", "failed", "pending"


def states(user: h.Client) -> list[str]:
    return [d["processing-state"] for d in user.ok("GET", "/datafiles")["items"]]


def test_prometheus_scrapes_serve_and_worker(live_server, tmp_path: Path) -> None:
    prometheus_binary()
    served = tmp_path / "served"
    served.mkdir()
    shutil.copyfile(h.ALPHABET, served / "alphabet.tar.gz")
    files = h.FileServer(served)
    serve_metrics, worker_metrics = free_port(), free_port()
    srv = live_server(
        workers=0,
        args=["--allow-private-urls", "--metrics-port", str(serve_metrics),
              "--scale-slots-per-worker", "2", "--scale-cooldown-seconds", "0"],
    )  # fmt: skip
    db = srv.data_dir / "elasticthought.db"
    worker_log = tmp_path / "worker.log"
    with open(worker_log, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "elasticthought", "worker", "--workers", "2",
             "--store", f"sqlite:///{db}", "--blobs", f"file://{srv.data_dir / 'blobs'}",
             "--data-dir", str(tmp_path / "worker"), "--allow-private-urls",
             "--metrics-port", str(worker_metrics), "--grace-seconds", "5"],
            cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1"),
        )  # fmt: skip
    prom = Prometheus(
        tmp_path,
        {"serve": f"127.0.0.1:{serve_metrics}", "worker": f"127.0.0.1:{worker_metrics}"},
    )
    try:
        h.wait_for(lambda: prom.value('sum(up{job="elasticthought"})') == 2, "both targets up", 60)
        # /metrics moved to the metrics port (localhost), off the API port.
        assert requests.get(srv.url + "/metrics", timeout=10).status_code == 404
        scaling = requests.get(f"http://127.0.0.1:{serve_metrics}/scaling", timeout=10).json()
        assert {r["engine"] for r in scaling["totals"]} == {"all"}

        user = h.new_user(srv.url)
        good = [
            user.ok("POST", "/datafiles", 201, json={"url": files.url + "/alphabet.tar.gz"})
            for _ in range(4)
        ]
        bad = user.ok("POST", "/datafiles", 201, json={"url": files.url + "/missing.tar.gz"})
        ended = [user.wait(f"/datafiles/{d['id']}") for d in [*good, bad]]
        api = [d["processing-state"] for d in ended]
        assert api.count(FINISHED) == 4 and api.count(FAILED) == 1, ended[-1]

        def counted(state: str) -> float | None:
            expr = f'sum(elasticthought_jobs_ended_total{{type="datafile",state="{state}"}})'
            return prom.value(expr)

        h.wait_for(
            lambda: counted(FINISHED) == api.count(FINISHED) and counted(FAILED) == 1,
            "Prometheus to see the job counters", 60,
        )  # fmt: skip
        # Counted where the transition happened: the worker process (serve runs no workers).
        by_service = prom.query(
            'sum by (service) (elasticthought_jobs_ended_total{type="datafile"})'
        )
        assert [(r["metric"]["service"], r["value"]) for r in by_service] == [("worker", 5.0)]
        for expr in (
            'sum(elasticthought_jobs_started_total{type="datafile"})',
            "sum(elasticthought_job_duration_seconds_count)",
            "sum(elasticthought_job_queue_wait_seconds_count)",
        ):
            h.wait_for(lambda e=expr: prom.value(e) == 5, expr, 30)
        posts = 'sum(elasticthought_http_requests_total{route="/datafiles",method="POST"})'
        h.wait_for(lambda: prom.value(posts) == 5, "the POST counter", 30)
        # Job children's blob writes reach the worker's metrics (multi-process mode).
        puts = 'sum(elasticthought_blob_call_duration_seconds_count{service="worker",op="put"})'
        assert (prom.value(puts) or 0) >= 4
        # The gauge follows the store's changes feed (a second or two behind): poll.
        assert states(user).count(PENDING) == 0
        depth = "max(elasticthought_queue_depth)"
        h.wait_for(lambda: prom.value(depth) == 0, "an empty queue in Prometheus", 30)

        # Stop the worker (it drains), then queue jobs nobody runs.
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, worker_log.read_text()[-3000:]
        for _ in range(3):
            user.ok("POST", "/datafiles", 201, json={"url": files.url + "/alphabet.tar.gz"})
        pending = states(user).count(PENDING)
        assert pending == 3
        h.wait_for(
            lambda: prom.value(depth) == pending,
            "the queue depth in Prometheus", 60,
        )  # fmt: skip
        by_type = 'sum(elasticthought_jobs{state="pending",type="datafile",gpu="false"})'
        assert prom.value(by_type) == pending
        # The scaling signal: 3 pending CPU jobs, 2 slots per worker -> 2 workers.
        wanted = 'max(elasticthought_scaling_recommended_workers{engine="all",gpu="false"})'
        h.wait_for(lambda: prom.value(wanted) == 2, "the recommended workers", 30)
        # The finished counters survive in Prometheus only while the worker was up; the API's
        # totals did not change.
        assert states(user).count(FINISHED) == 4 and states(user).count(FAILED) == 1
        text = requests.get(f"http://127.0.0.1:{serve_metrics}/metrics", timeout=10).text
        assert "user-id" not in text and user.username not in text
        assert good[0]["id"] not in text
    finally:
        prom.stop()
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        files.close()
