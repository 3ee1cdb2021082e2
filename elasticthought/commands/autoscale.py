"""`elasticthought autoscale`: scale job workers on the scaling signal of the API (`/scaling`).

Every `--interval` seconds it reads `/scaling`, takes the running and pending jobs of the pool
it manages (`--gpu` or not; `--engine` or every engine), applies the scaling rule with its own
`--min`, `--max`, `--slots-per-worker` and `--cooldown` (elasticthought/metrics/scaling.py), and
acts when the number changes:

- `compose`: runs (or with `--dry-run` prints) `docker compose -f FILE up -d --no-deps
  --no-recreate --scale SERVICE=N SERVICE`; compose stops surplus containers with SIGTERM
  (give the service a `stop_grace_period` longer than the workers' `--grace-seconds`).
- `local`: starts `elasticthought worker --workers SLOTS <--worker-args>` processes on this
  host, and stops surplus ones (newest first) with SIGTERM.

Workers drain before they stop: on SIGTERM a worker claims nothing more, lets its running jobs
finish for `--grace-seconds`, then returns those still running to `pending` for another worker
(their next attempt starts afresh, a training job from its last snapshot). When the signal
cannot be read, nothing changes. SIGTERM/SIGINT stop the autoscaler (local mode: its workers
drain first).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

HELP = "scale job workers (docker compose, or local processes) on the API's /scaling signal"

log = logging.getLogger("elasticthought.autoscale")

POOL = "pool"  # the rule's key: this autoscaler manages one pool


def say(text: str) -> None:
    print(f"autoscale: {text}", file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mode", choices=("compose", "local"), help="how to act on the signal")
    parser.add_argument(
        "--scaling-url",
        default="http://127.0.0.1:8080/scaling",
        help="the API's (or its metrics port's) /scaling URL (default: %(default)s)",
    )
    parser.add_argument("--min", type=int, default=0, dest="min_workers", help="fewest workers")
    parser.add_argument("--max", type=int, default=4, dest="max_workers", help="most workers")
    parser.add_argument(
        "--slots-per-worker",
        type=int,
        default=2,
        help="job slots of one worker (its --workers; local mode passes it) (default: %(default)s)",
    )
    parser.add_argument(
        "--cooldown",
        type=float,
        default=300.0,
        help="seconds demand must stay lower before scaling down (default: %(default)s)",
    )
    parser.add_argument(
        "--interval", type=float, default=10.0, help="seconds between decisions (default: 10)"
    )
    parser.add_argument(
        "--engine", default=None, help="the engine the pool's workers offer (default: any job)"
    )
    parser.add_argument("--gpu", action="store_true", help="the pool's workers have GPUs")
    parser.add_argument("--once", action="store_true", help="decide and act once, then exit")
    group = parser.add_argument_group("compose mode")
    group.add_argument("--compose-file", default="docker/compose.yml", help="compose file")
    group.add_argument("--service", default="worker", help="compose service of the workers")
    group.add_argument("--docker", default="docker", help="docker command (default: docker)")
    group.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    group = parser.add_argument_group("local mode")
    group.add_argument(
        "--drain-timeout",
        type=float,
        default=600.0,
        help="seconds a stopping worker may take before SIGKILL (default: %(default)s)",
    )
    group.add_argument(
        "--worker-args",
        default="",
        help="arguments (one shell-quoted string) for every `elasticthought worker`, e.g. "
        '"--store sqlite:///srv/et.db --grace-seconds 60"',
    )


class ComposeTarget:
    """Scale a compose service with `docker compose up --scale`."""

    def __init__(self, docker: str, compose_file: str, service: str, dry_run: bool) -> None:
        self.base = [*shlex.split(docker), "compose", "-f", compose_file]
        self.service = service
        self.dry_run = dry_run
        self.current: int | None = None

    def command(self, count: int) -> list[str]:
        return [*self.base, "up", "-d", "--no-deps", "--no-recreate",
                "--scale", f"{self.service}={count}", self.service]  # fmt: skip

    def scale(self, count: int) -> None:
        if count == self.current:
            return
        cmd = self.command(count)
        print(shlex.join(cmd), flush=True)
        if self.dry_run:
            self.current = count
            return
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, check=False)
        except OSError as exc:
            say(f"could not run {cmd[0]}: {exc}")
            return
        if done.returncode == 0:
            self.current = count
        else:
            say(f"{shlex.join(cmd)} exited with {done.returncode}; will retry")

    def close(self) -> None:
        """Compose keeps its containers; nothing to stop."""


class LocalTarget:
    """`elasticthought worker` processes on this host."""

    def __init__(self, slots: int, worker_args: list[str], drain_timeout: float) -> None:
        self.command = [sys.executable, "-m", "elasticthought", "worker", "--workers", str(slots)]
        self.command += worker_args
        self.drain_timeout = drain_timeout
        self.active: list[subprocess.Popen] = []
        self.draining: dict[subprocess.Popen, float] = {}
        self.current: int | None = None

    def reap(self) -> None:
        for proc in list(self.active):
            if proc.poll() is not None:
                say(f"worker pid {proc.pid} exited with {proc.returncode} unasked")
                self.active.remove(proc)
        now = time.monotonic()
        for proc, since in list(self.draining.items()):
            if proc.poll() is not None:
                say(f"worker pid {proc.pid} drained and stopped ({proc.returncode})")
                del self.draining[proc]
            elif now - since > self.drain_timeout:
                say(f"worker pid {proc.pid} did not stop in {self.drain_timeout:g} s: SIGKILL")
                proc.kill()

    def scale(self, count: int) -> None:
        self.reap()
        while len(self.active) < count:
            proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL)
            self.active.append(proc)
            say(f"started worker pid {proc.pid}")
        while len(self.active) > count:
            proc = self.active.pop()  # the newest first
            self._drain(proc)
        self.current = count

    def _drain(self, proc: subprocess.Popen) -> None:
        say(f"stopping worker pid {proc.pid} (it drains)")
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.draining[proc] = time.monotonic()

    def close(self) -> None:
        """Drain every worker and wait for them (bounded by the drain timeout)."""
        while self.active:
            self._drain(self.active.pop())
        deadline = time.monotonic() + self.drain_timeout
        while self.draining and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.1)
        for proc in list(self.draining):
            proc.kill()
            proc.wait(10)
        self.reap()


class Autoscaler:
    """Read the signal, apply the rule, act on the target."""

    def __init__(
        self,
        rule: Any,
        fetch: Callable[[], dict],
        target: Any,
        engine: str | None,
        gpu: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rule = rule
        self.fetch = fetch
        self.target = target
        self.engine = engine
        self.gpu = gpu
        self.clock = clock

    def step(self) -> int | None:
        """One decision; returns the workers wanted (None: the signal could not be read)."""
        from elasticthought.metrics.scaling import select

        try:
            signal_doc = self.fetch()
            running, pending = select(signal_doc, self.engine, self.gpu)
        except Exception as exc:  # noqa: BLE001 - an unreadable signal changes nothing
            say(f"cannot read the scaling signal: {exc}")
            return None
        wanted = self.rule.recommend(POOL, running, pending, now=self.clock())
        before = self.target.current
        if wanted != before:
            shown = "none" if before is None else before
            say(f"workers {shown} -> {wanted} (running {running}, pending {pending})")
        self.target.scale(wanted)
        return wanted

    def run(self, interval: float, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(interval)


def _fetcher(url: str) -> Callable[[], dict]:
    import requests

    session = requests.Session()

    def fetch() -> dict:
        response = session.get(url, timeout=10)
        response.raise_for_status()
        return response.json()

    return fetch


def run(args: argparse.Namespace) -> int:
    from elasticthought.metrics.scaling import ScalingRule

    try:
        rule = ScalingRule(
            min_workers=args.min_workers,
            max_workers=args.max_workers,
            slots_per_worker=max(1, args.slots_per_worker),
            cooldown=args.cooldown,
        )
    except ValueError as exc:
        print(f"elasticthought: error: {exc}", file=sys.stderr)
        return 2
    if args.once and args.mode == "local":
        print("elasticthought: error: --once is for compose mode (local runs until stopped)",
              file=sys.stderr)  # fmt: skip
        return 2
    worker_args = shlex.split(args.worker_args)
    if args.mode == "compose":
        target: Any = ComposeTarget(args.docker, args.compose_file, args.service, args.dry_run)
    else:
        target = LocalTarget(max(1, args.slots_per_worker), worker_args, args.drain_timeout)
    scaler = Autoscaler(rule, _fetcher(args.scaling_url), target, args.engine, args.gpu)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if args.once:
            return 0 if scaler.step() is not None else 1
        scaler.run(args.interval, stop)
    finally:
        if args.mode == "local":
            say("stopping: draining the workers")
        target.close()
    return 0
