"""The scaling rule, the per-capability demand, and the autoscaler's decisions (no processes)."""

from __future__ import annotations

import pytest

from elasticthought.commands.autoscale import Autoscaler, ComposeTarget
from elasticthought.metrics.scaling import (
    ScalingRule,
    capability_of,
    demands,
    raw_workers,
    select,
)
from elasticthought.queue.registry import PENDING, PROCESSING


def cpu_jobs(pending: int, running: int = 0, engine: str = "any") -> list:
    return [((engine, "false"), PENDING)] * pending + [((engine, "false"), PROCESSING)] * running


def test_ten_pending_cpu_jobs_on_two_slot_workers_want_five() -> None:
    rule = ScalingRule(min_workers=0, max_workers=10, slots_per_worker=2, cooldown=60)
    assert rule.recommend("cpu", running=0, pending=10, now=0.0) == 5


def test_recommendation_is_bounded_by_max_and_min() -> None:
    rule = ScalingRule(min_workers=1, max_workers=3, slots_per_worker=2, cooldown=0)
    assert rule.recommend("cpu", running=0, pending=10, now=0.0) == 3
    assert rule.recommend("cpu", running=0, pending=0, now=1.0) == 1
    assert rule.recommend("cpu", running=4, pending=2, now=2.0) == 3


@pytest.mark.parametrize(
    ("running", "pending", "slots", "expected"),
    [(0, 0, 2, 0), (0, 1, 2, 1), (1, 1, 2, 1), (1, 2, 2, 2), (3, 4, 3, 3), (7, 0, 1, 7),
     (0, 17, 4, 5), (16, 0, 4, 4)],
)  # fmt: skip
def test_raw_rule_is_ceil_of_work_over_slots(running, pending, slots, expected) -> None:
    assert raw_workers(running, pending, slots) == expected


def test_scale_down_waits_for_the_cooldown_then_reaches_min() -> None:
    rule = ScalingRule(min_workers=1, max_workers=8, slots_per_worker=2, cooldown=30)
    assert rule.recommend("cpu", 0, 10, now=100.0) == 5
    # Demand drops: within the cool-down the recommendation holds.
    assert rule.recommend("cpu", 1, 0, now=110.0) == 5
    assert rule.recommend("cpu", 0, 0, now=129.9) == 5
    # Past the cool-down since the last high value: down to what demand needs, i.e. min.
    assert rule.recommend("cpu", 0, 0, now=130.1) == 1
    # Up again at once.
    assert rule.recommend("cpu", 0, 7, now=131.0) == 4


def test_scale_down_goes_to_the_highest_value_still_inside_the_window() -> None:
    rule = ScalingRule(min_workers=0, max_workers=20, slots_per_worker=1, cooldown=10)
    for now, pending in ((0, 9), (4, 6), (8, 2)):
        rule.recommend("k", 0, pending, now=float(now))
    assert rule.recommend("k", 0, 0, now=10.5) == 6  # the 9 left the window, the 6 did not
    assert rule.recommend("k", 0, 0, now=14.5) == 2
    assert rule.recommend("k", 0, 0, now=18.5) == 0


def test_keys_have_their_own_cooldown() -> None:
    rule = ScalingRule(min_workers=0, max_workers=10, slots_per_worker=1, cooldown=100)
    assert rule.recommend(("any", "false"), 0, 4, now=0.0) == 4
    assert rule.recommend(("torch", "true"), 0, 1, now=1.0) == 1
    assert rule.recommend(("torch", "true"), 0, 0, now=2.0) == 1
    assert rule.recommend(("any", "false"), 0, 0, now=2.0) == 4


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="min-workers"):
        ScalingRule(min_workers=3, max_workers=2)
    with pytest.raises(ValueError, match="cool-down"):
        ScalingRule(cooldown=-1)


def test_gpu_and_cpu_demand_are_counted_apart() -> None:
    jobs = cpu_jobs(pending=10) + [(("torch", "true"), PENDING)] * 3
    jobs += [(("torch", "true"), PROCESSING)]
    cpu_worker = {"capabilities": {"engines": ["torch"], "gpus": []}, "threads": 2, "running": []}
    gpu_worker = {
        "capabilities": {"engines": ["torch", "caffe"], "gpus": [0]},
        "threads": 1,
        "running": ["training-job:u:1"],
    }
    rows = {(d.engine, d.gpu): d for d in demands(jobs, [cpu_worker, gpu_worker])}
    assert (rows["all", "false"].pending, rows["all", "false"].running) == (10, 0)
    assert (rows["all", "true"].pending, rows["all", "true"].running) == (3, 1)
    assert (rows["torch", "true"].pending, rows["torch", "true"].running) == (3, 1)
    # CPU jobs run on either worker; GPU jobs only on the one with a GPU.
    assert (rows["all", "false"].workers, rows["all", "false"].free_slots) == (2, 2)
    assert (rows["all", "true"].workers, rows["all", "true"].free_slots) == (1, 0)
    rule = ScalingRule(min_workers=0, max_workers=10, slots_per_worker=2, cooldown=0)
    cpu = rule.recommend("cpu", rows["all", "false"].running, rows["all", "false"].pending, 0)
    gpu = rule.recommend("gpu", rows["all", "true"].running, rows["all", "true"].pending, 0)
    assert (cpu, gpu) == (5, 2)


def test_engine_specific_demand_and_workers() -> None:
    jobs = cpu_jobs(pending=2) + cpu_jobs(pending=3, running=1, engine="caffe")
    torch_only = {"capabilities": {"engines": ["torch"], "gpus": []}, "threads": 3, "running": []}
    rows = {(d.engine, d.gpu): d for d in demands(jobs, [torch_only])}
    assert rows["caffe", "false"].workers == 0  # nobody offers caffe
    assert rows["any", "false"].workers == 1
    signal = {
        "capabilities": [
            {"engine": d.engine, "gpu": d.gpu == "true", "running": d.running,
             "pending": d.pending}
            for d in rows.values() if d.engine != "all"
        ],
        "totals": [
            {"engine": "all", "gpu": d.gpu == "true", "running": d.running, "pending": d.pending}
            for d in rows.values() if d.engine == "all"
        ],
    }  # fmt: skip
    assert select(signal, None, False) == (1, 5)
    assert select(signal, "caffe", False) == (1, 5)  # caffe jobs plus engine-free ones
    assert select(signal, "torch", False) == (0, 2)
    assert select(signal, None, True) == (0, 0)


def test_capability_of_reads_the_runner_requirements() -> None:
    import elasticthought.jobs  # noqa: F401 - registers the runners

    assert capability_of({"type": "datafile"}) == ("any", "false")
    assert capability_of({"type": "training-job"}) == ("torch", "false")
    assert capability_of({"type": "training-job", "engine": "caffe", "gpu": 2}) == ("caffe", "true")
    assert capability_of({"type": "no-such-type", "gpu": True}) == ("any", "true")


class Recorded:
    """Collects the counts the autoscaler asks for (a target with no side effects)."""

    def __init__(self) -> None:
        self.current: int | None = None
        self.calls: list[int] = []

    def scale(self, count: int) -> None:
        self.calls.append(count)
        self.current = count


def totals(running: int, pending: int, gpu: bool = False) -> dict:
    return {"totals": [{"engine": "all", "gpu": gpu, "running": running, "pending": pending}]}


def test_autoscaler_follows_the_signal_with_cooldown() -> None:
    now = [0.0]
    readings = iter([totals(0, 10), totals(2, 0), totals(0, 0), totals(0, 0)])
    target = Recorded()
    rule = ScalingRule(min_workers=1, max_workers=4, slots_per_worker=2, cooldown=20)
    scaler = Autoscaler(rule, lambda: next(readings), target, None, False, clock=lambda: now[0])
    assert scaler.step() == 4  # 10 pending / 2 slots = 5, bounded by max 4
    now[0] = 5.0
    assert scaler.step() == 4  # inside the cool-down
    now[0] = 26.0
    assert scaler.step() == 1  # cool-down over, nothing to do: min
    now[0] = 27.0
    assert scaler.step() == 1
    assert target.calls == [4, 4, 1, 1]


def test_autoscaler_keeps_the_count_when_the_signal_fails() -> None:
    target = Recorded()
    target.current = 3

    def broken() -> dict:
        raise ConnectionError("API down")

    scaler = Autoscaler(ScalingRule(cooldown=0), broken, target, None, False)
    assert scaler.step() is None
    assert target.calls == [] and target.current == 3


def test_compose_command() -> None:
    target = ComposeTarget("docker", "docker/compose.yml", "worker", dry_run=True)
    assert target.command(3) == [
        "docker", "compose", "-f", "docker/compose.yml", "up", "-d", "--no-deps",
        "--no-recreate", "--scale", "worker=3", "worker",
    ]  # fmt: skip
