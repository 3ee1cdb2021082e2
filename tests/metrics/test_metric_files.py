"""Multi-process metric files: ended processes' files fold into one archive per type, values
kept; and a live `serve` exposes its metrics without user names or ids in any label."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.multiprocess import MultiProcessCollector

from elasticthought.metrics.process import compact
from tests.support.server import REPO

CHILD = """
from elasticthought.metrics import hooks
hooks.training_iterations("torch", {n})
hooks.job_written({{"type": "queue-test", "processing-state": "finished_successfully",
                    "started-at": 10.0, "finished-at": 12.5}})
"""


def samples(directory: Path) -> dict:
    out = {}
    for metric in MultiProcessCollector(None, path=str(directory)).collect():
        for s in metric.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def run_child(directory: Path, n: int) -> None:
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(directory), PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", CHILD.format(n=n)], env=env, check=True, timeout=60)


def test_compact_folds_ended_processes_and_keeps_the_values(tmp_path: Path) -> None:
    for n in (3, 4, 5):
        run_child(tmp_path, n)
    assert len(list(tmp_path.glob("*.db"))) == 6  # a counter and a histogram file per child
    before = samples(tmp_path)
    iterations = ("elasticthought_training_iterations_total", (("engine", "torch"),))
    assert before[iterations] == 12
    assert compact(str(tmp_path), os.getpid()) == 6
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_archive.db",
        "histogram_archive.db",
    ]
    assert samples(tmp_path) == before
    run_child(tmp_path, 10)  # later children add to the archive
    assert compact(str(tmp_path), os.getpid()) == 2
    after = samples(tmp_path)
    assert after[iterations] == 22
    ended = [v for (name, _), v in after.items() if name == "elasticthought_jobs_ended_total"]
    assert ended == [4.0]
    durations = [
        v for (name, _), v in after.items() if name == "elasticthought_job_duration_seconds_sum"
    ]
    assert durations == [10.0]


def test_compact_leaves_live_processes_alone(tmp_path: Path) -> None:
    run_child(tmp_path, 1)
    own = tmp_path / f"counter_{os.getpid()}.db"
    own.write_bytes((tmp_path / next(p.name for p in tmp_path.glob("counter_*.db"))).read_bytes())
    compact(str(tmp_path), os.getpid())
    assert own.exists()


def test_serve_metrics_carry_no_user_names_or_ids(live_server) -> None:
    import requests

    from tests.api import helpers as h

    srv = live_server(workers=0)
    user = h.new_user(srv.url)
    user.ok("GET", "/workers")
    user.get("/datafiles/datafile:nobody:0000")
    user.get("/no/such/route")
    text = requests.get(srv.url + "/metrics", timeout=10).text
    assert user.username not in text and "nobody" not in text
    assert 'method="GET",route="/datafiles/<doc_id>",status="404"' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "elasticthought_queue_depth 0.0" in text


def test_leftover_directories_of_dead_services_are_removed() -> None:
    import tempfile

    from elasticthought.metrics.process import TEMP_PREFIX, _remove_leftovers

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(30)
    gone = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{dead.pid}-"))
    mine = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
    try:
        _remove_leftovers()
        assert not gone.exists()
        assert mine.exists()
    finally:
        for path in (gone, mine):
            if path.exists():
                path.rmdir()


def test_bad_scaling_bounds_stop_start_up(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "elasticthought", "serve", "--data-dir", str(tmp_path),
         "--port", "0", "--scale-min-workers", "5", "--scale-max-workers", "2"],
        cwd=str(REPO), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "min-workers <= max-workers, got 5, 2" in done.stderr
