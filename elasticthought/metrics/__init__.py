"""Metrics and the scaling signal (Prometheus text format, official `prometheus_client`).

What is counted where (one owner per number):
- Gauges of shared state (jobs pending/processing by type, engine, GPU need; the queue depth;
  live workers and free slots; the scaling signal) are computed at scrape time, in the API
  process, from the store: the truth every process shares (state.py).
- Counters and histograms of events are recorded by the process that performs them: HTTP
  requests by the API process; claims, ends, releases of jobs by the process that writes the
  transition (a worker; the API for a cancel of a pending job); store and blob call latencies
  and training iterations by whichever process makes them, job child processes included.
- Each service (`serve`, or a `worker` started with `--metrics-port`) records, with its job
  children, in prometheus_client's multi-process mode into its own directory (process.py);
  its `/metrics` merges that directory. Prometheus scrapes every service; sum() the counters
  across them, max() the shared-state gauges (every API replica reports the same store).

Entry points: `setup(config)` first in a service process, `attach(app, config, store, pool)` in
the app factory, `start_server(config, holder)` for `--metrics-port`; the queue, store and blob
code call `hooks`. Metric names and the scaling rule are listed in the README ("Monitoring and
scaling").
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

# Nothing heavy at import: the store and blob modules import `hooks` from here, and job child
# processes import those (they must start fast); Flask and prometheus_client load on use.
if TYPE_CHECKING:
    from elasticthought.config import Config
    from elasticthought.metrics.http import MetricsServer, SignalHolder
    from elasticthought.metrics.process import MetricsProcess


def setup(config: Config) -> MetricsProcess:
    """Multi-process metric storage for this service and its job children. Raises
    `ValueError` with the reason when the scaling settings make no sense."""
    from elasticthought.metrics.process import setup as setup_directory
    from elasticthought.metrics.scaling import ScalingRule

    ScalingRule(
        min_workers=config.scale_min_workers,
        max_workers=config.scale_max_workers,
        cooldown=config.scale_cooldown_seconds,
    )

    return setup_directory(config.metrics_dir)


def signal_holder(config: Config, store: Any, pool: Any = None) -> SignalHolder:
    """The lazily made scaling signal of an API process."""

    from elasticthought.metrics.http import SignalHolder

    def make() -> Any:
        from elasticthought.metrics.state import ScalingSignal

        return ScalingSignal(config, store, pool)

    return SignalHolder(make)


def no_signal() -> SignalHolder:
    """The holder of a process that computes no store gauges (an `elasticthought worker`)."""
    from elasticthought.metrics.http import SignalHolder

    return SignalHolder(None)


def attach(app: Any, config: Config, store: Any, pool: Any = None) -> SignalHolder:
    """Count the app's requests; serve `/metrics` and `/scaling` on it unless a separate
    `--metrics-port` is configured. Returns the signal holder (share it with that port)."""
    from elasticthought.metrics.http import install

    holder = signal_holder(config, store, pool)
    install(app, holder, serve_endpoints=config.metrics_port <= 0)
    return holder


def start_server(config: Config, holder: SignalHolder) -> MetricsServer | None:
    """Serve `/metrics` (and `/scaling` when `holder` makes a signal) on `--metrics-port`."""
    if config.metrics_port <= 0:
        return None
    from elasticthought.metrics.http import MetricsServer

    server = MetricsServer(holder, config.metrics_host, config.metrics_port).start()
    host = config.metrics_host
    shown = f"[{host}]" if ":" in host else host
    print(f"elasticthought: metrics on http://{shown}:{server.port}/metrics", file=sys.stderr,
          flush=True)  # fmt: skip
    return server


__all__ = ["attach", "no_signal", "setup", "signal_holder", "start_server"]
