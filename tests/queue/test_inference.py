"""The warm inference service: one long-lived process, models kept (LRU by memory), requests
for the same model batched, crashes failing only the requests in flight."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from elasticthought.config import config_from_env
from elasticthought.queue.inference import InferenceFailed, InferenceService

HANDLER = "tests.queue.inference_handler:open_test_model"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[InferenceService]:
    config = config_from_env(
        data_dir=str(tmp_path / "data"), classifier_cache_mb=100,
        runner_modules="elasticthought.jobs,tests.queue.runner",
    )  # fmt: skip
    svc = InferenceService(config, HANDLER)
    yield svc
    svc.close()


def spec(name: str, tmp_path: Path, mb: int = 1) -> dict:
    return {"name": name, "mb": mb, "loads-file": str(tmp_path / "loads.txt")}


def loads(tmp_path: Path) -> list[str]:
    path = tmp_path / "loads.txt"
    return path.read_text().split() if path.exists() else []


def test_a_model_is_loaded_once_and_serves_many_requests(service, tmp_path: Path) -> None:
    a = spec("a", tmp_path)
    answers = [service.run("a", "1", a, {"value": n}, 60) for n in range(5)]
    assert [r["value"] for r in answers] == [0, 2, 4, 6, 8]
    assert loads(tmp_path) == ["a"]
    assert len({r["pid"] for r in answers}) == 1
    assert service.run("a", "2", a, {"value": 1}, 60)["value"] == 2  # a new version reloads
    assert loads(tmp_path) == ["a", "a"]


def test_concurrent_requests_for_one_model_are_served_together(service, tmp_path: Path) -> None:
    a = spec("a", tmp_path)
    service.run("a", "1", a, {"value": 0}, 60)
    with ThreadPoolExecutor(16) as ex:
        answers = list(ex.map(lambda n: service.run("a", "1", a, {"value": n}, 60), range(64)))
    assert [r["value"] for r in answers] == [2 * n for n in range(64)]
    assert max(r["together"] for r in answers) > 1  # some arrived while another batch ran


def test_least_recently_used_model_is_evicted_and_reloads_transparently(
    service, tmp_path: Path
) -> None:
    big = {name: spec(name, tmp_path, mb=40) for name in ("a", "b", "c")}
    for name in ("a", "b"):
        assert service.run(name, "1", big[name], {"value": 1}, 60)["model"] == name
    assert service.stats()["loaded"] == ["a", "b"]
    service.run("a", "1", big["a"], {"value": 1}, 60)  # a used last: b is the oldest now
    service.run("c", "1", big["c"], {"value": 1}, 60)  # 3 x 40 MB > 100 MB: b goes
    stats = service.stats()
    assert stats["loaded"] == ["a", "c"] and stats["evictions"] == 1
    assert stats["bytes"] <= 100 * 1024 * 1024
    assert service.run("b", "1", big["b"], {"value": 3}, 60) == {
        "model": "b", "value": 6, "together": 1, "pid": stats["pid"]
    }  # fmt: skip
    assert loads(tmp_path) == ["a", "b", "c", "b"]
    assert not (tmp_path / "data" / "work" / "inference-a").exists()  # evicted: work removed


@pytest.mark.parametrize("action", ["segv", "abort"])
def test_a_crash_fails_the_request_in_flight_only(service, tmp_path: Path, action: str) -> None:
    a = spec("a", tmp_path)
    first = service.run("a", "1", a, {"value": 1}, 60)["pid"]
    with pytest.raises(InferenceFailed, match="died: SIG"):
        service.run("a", "1", a, {"action": action}, 60)
    again = service.run("a", "1", a, {"value": 2}, 60)  # a fresh process loads it again
    assert again["value"] == 4 and again["pid"] != first
    assert loads(tmp_path) == ["a", "a"]


def test_a_failing_model_fails_its_requests_and_the_process_serves_on(
    service, tmp_path: Path
) -> None:
    a = spec("a", tmp_path)
    pid = service.run("a", "1", a, {"value": 1}, 60)["pid"]
    with pytest.raises(InferenceFailed, match="failed as asked"):
        service.run("a", "1", a, {"action": "error"}, 60)
    with pytest.raises(InferenceFailed, match="KeyError|name"):
        service.run("bad", "1", {}, {"value": 1}, 60)  # cannot load
    assert service.run("a", "1", a, {"value": 1}, 60)["pid"] == pid


def test_a_request_past_the_memory_limit_fails_alone_naming_it(tmp_path: Path) -> None:
    """The inference process runs under the job memory limit (RLIMIT_AS), as a classify job
    would: a request that needs more fails with the limit named, and the process serves on."""
    config = config_from_env(
        data_dir=str(tmp_path / "data"), classifier_cache_mb=100, job_memory_limit=4096,
        runner_modules="elasticthought.jobs,tests.queue.runner",
    )  # fmt: skip
    svc = InferenceService(config, HANDLER)
    try:
        a = spec("a", tmp_path)
        pid = svc.run("a", "1", a, {"value": 1}, 60)["pid"]
        limit = r"out of memory: .*4096 MiB \(--job-memory-limit"
        with pytest.raises(InferenceFailed, match=limit):
            svc.run("a", "1", a, {"action": "allocate", "mb": 8192}, 60)
        assert svc.run("a", "1", a, {"action": "allocate", "mb": 64}, 60)["pid"] == pid
    finally:
        svc.close()
