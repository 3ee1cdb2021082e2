"""Assemble and run an ElasticThought process from a `Config`.

`open_services` opens the document store and blob store (creating the data dir); `start_workers`
starts the job worker pool; `serve` adds the Flask app behind waitress; `run_workers` runs the
pool alone. Start-up problems (malformed or unreachable store/blob URL) raise `StartupError`,
which the commands print as one line and exit 2. SIGTERM and SIGINT shut down cleanly.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from elasticthought import limits, metrics
from elasticthought.api.health import redact_url
from elasticthought.blobs import BlobError, BlobStore, open_blobs
from elasticthought.config import Config
from elasticthought.metrics.hooks import backend_of, timed_blobs, timed_store
from elasticthought.store import Store, StoreError, open_store

log = logging.getLogger("elasticthought")

EXIT_STARTUP = 2


class StartupError(Exception):
    """The process cannot start; the message is one line for the user."""


@dataclass
class Opened:
    store: Store
    blobs: BlobStore

    def close(self) -> None:
        try:
            self.store.close()
        except Exception:  # closing is best effort at shutdown
            log.exception("closing the store failed")


def setup_logging(config: Config) -> None:
    level = getattr(logging, str(config.log_level).upper(), None)
    if not isinstance(level, int):
        raise StartupError(f"unknown log level {config.log_level!r}")
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def open_services(config: Config) -> Opened:
    """Create the data and work dirs, open and ping the store and the blob store."""
    for folder in (config.data_dir, str(config.work_path)):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create folder {folder!r}: {exc}") from None
    store: Store | None = None
    try:
        store = timed_store(
            open_store(config.store_url, create=config.create_db), backend_of(config.store_url)
        )
        store.ping()
        blobs = _open_blobs(config)
    except Exception as exc:  # any failure here is about a URL: one line, no traceback
        if store is not None:
            store.close()
        if isinstance(exc, StartupError):
            raise
        raise StartupError(_url_error("store", config.store_url, exc)) from None
    return Opened(store=store, blobs=blobs)


def _open_blobs(config: Config) -> BlobStore:
    try:
        blobs = timed_blobs(open_blobs(config.blobs_url), backend_of(config.blobs_url))
        blobs.ping()
    except Exception as exc:
        raise StartupError(_url_error("blob store", config.blobs_url, exc)) from None
    return blobs


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if not isinstance(exc, (StoreError, BlobError)):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text or type(exc).__name__


def _url_error(what: str, url: str, exc: BaseException) -> str:
    """One line naming the (credential-free) URL and the reason."""
    log.debug("opening %s %s failed", what, redact_url(url), exc_info=exc)
    shown = redact_url(url)
    reason = _one_line(exc).replace(url, shown)
    if shown in reason:
        return reason
    return f"cannot use {what} URL {shown!r}: {reason}"


# --- Worker pool integration point -----------------------------------------------------------
# The queue package (elasticthought/queue/) provides the pool. Until it does, starting workers
# is a logged no-op. Expected surface: `WorkerPool(config, store, blobs)` with `.start()` and
# `.stop(grace_seconds)`.


def start_workers(config: Config, store: Store, blobs: BlobStore) -> Any | None:
    """Start `config.workers` job workers; return the pool (None when workers == 0)."""
    if config.workers <= 0:
        return None
    try:
        import elasticthought.queue as queue
    except ImportError as exc:
        log.warning("job queue not available (%s): running without workers", exc)
        return None
    pool_class = getattr(queue, "WorkerPool", None)
    if pool_class is None:
        log.warning("elasticthought.queue has no WorkerPool yet: running without workers")
        return None
    pool = pool_class(config, store, blobs)
    pool.start()
    log.info("started %d worker(s)", config.workers)
    return pool


def stop_workers(pool: Any | None, config: Config) -> None:
    if pool is None:
        return
    try:
        pool.stop(config.grace_seconds)
    except Exception:
        log.exception("stopping the worker pool failed")


# --- Signals ---------------------------------------------------------------------------------


class _Stop(SystemExit):
    """Raised in the main thread by the signal handler to leave waitress's loop (which lets
    SystemExit through its dispatchers and returns from `run()`)."""


def _install_signal_handlers(on_signal: Any) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)


# --- Commands --------------------------------------------------------------------------------


def serve(config: Config) -> int:
    """Run the HTTP API (waitress) and the worker pool until SIGTERM/SIGINT."""
    import waitress

    from elasticthought.api.app import create_app
    from elasticthought.api.request_fetch import sweep_stale_downloads
    from elasticthought.http_front import harden, server_options
    from elasticthought.limits import http_max_held_bytes
    from elasticthought.web import APP_PATH

    setup_logging(config)
    _setup_metrics(config)
    opened = open_services(config)
    if removed := sweep_stale_downloads(config.work_path):
        log.info("removed %d temporary download file(s) a stopped server left", removed)
    pool = None
    app = None
    metrics_server = None
    try:
        pool = start_workers(config, opened.store, opened.blobs)
        app = create_app(config, opened.store, opened.blobs, pool=pool)
        metrics_server = _start_metrics(config, app.extensions["elasticthought.metrics.holder"])
        try:
            server = waitress.create_server(
                app,
                host=config.host,
                port=config.port,
                threads=max(limits.MIN_HTTP_THREADS, config.http_threads),
                ident="elasticthought",
                **server_options(config),
            )
            harden(
                server,
                config.http_header_timeout,
                config.http_min_body_rate,
                config.max_json_body_bytes,
                config.max_upload_bytes,
                http_max_held_bytes(config.http_max_held_bytes),
            )
        except (OSError, ValueError) as exc:
            raise StartupError(
                f"cannot listen on {config.host}:{config.port}: {_one_line(exc)}"
            ) from None
        for host, port in _listening(server):
            # Test helpers read this line to learn the port (also when --port 0).
            shown = f"[{host}]" if ":" in str(host) else host
            print(f"elasticthought: serving on http://{shown}:{port}", file=sys.stderr, flush=True)
            print(
                f"elasticthought: web app at http://{shown}:{port}{APP_PATH}",
                file=sys.stderr,
                flush=True,
            )
        log.info(
            "store %s, blobs %s, %d worker(s)",
            redact_url(config.store_url),
            redact_url(config.blobs_url),
            config.workers if pool is not None else 0,
        )

        def on_signal(signum: int, _frame: Any) -> None:
            log.info("received %s: shutting down", signal.Signals(signum).name)
            raise _Stop()

        _install_signal_handlers(on_signal)
        try:
            server.run()  # returns after the handler raises in this (main) thread
        except _Stop:
            pass
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            server.close()
            server.task_dispatcher.shutdown(timeout=5)
    finally:
        if metrics_server is not None:
            metrics_server.close()
        _close_inference(app)
        stop_workers(pool, config)
        opened.close()
    log.info("stopped")
    return 0


def _close_inference(app: Any) -> None:
    """End the API's warm inference process, when one was started."""
    services = app.extensions.get("elasticthought") if app is not None else None
    if services is not None and services.inference is not None:
        services.inference.close()


def _setup_metrics(config: Config) -> None:
    try:
        metrics.setup(config)
    except (ValueError, OSError) as exc:
        raise StartupError(f"metrics: {exc}") from None


def _start_metrics(config: Config, holder: Any) -> Any:
    """The `--metrics-port` server (None without one); a busy port is a start-up error."""
    try:
        return metrics.start_server(config, holder)
    except (OSError, ValueError) as exc:
        raise StartupError(
            f"cannot listen on {config.metrics_host}:{config.metrics_port} (metrics): "
            f"{_one_line(exc)}"
        ) from None


def _listening(server: Any) -> list[tuple[str, int]]:
    if hasattr(server, "effective_listen"):
        return list(server.effective_listen)
    return [(server.effective_host, server.effective_port)]


def run_workers(config: Config) -> int:
    """Run only the worker pool (no HTTP) until SIGTERM/SIGINT."""
    setup_logging(config)
    if config.workers <= 0:
        raise StartupError("worker: --workers must be at least 1")
    if config.metrics_port > 0:  # without a port nobody reads this worker's metrics
        _setup_metrics(config)
    opened = open_services(config)
    stop = threading.Event()
    # Before the pool starts: a SIGTERM while it starts (an autoscaler changing its mind) must
    # drain the job just claimed, not kill the process mid-claim.
    _install_signal_handlers(lambda signum, _frame: stop.set())
    metrics_server = None
    try:
        metrics_server = _start_metrics(config, metrics.no_signal())
        pool = start_workers(config, opened.store, opened.blobs)
        if pool is None:
            raise StartupError("worker: the job queue (elasticthought.queue) is not available")
        print(
            f"elasticthought: {config.workers} worker(s) on {redact_url(config.store_url)}",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):
            pass
        log.info("shutting down")
        stop_workers(pool, config)
    finally:
        if metrics_server is not None:
            metrics_server.close()
        opened.close()
    return 0


def main_guard(func: Any, config: Config) -> int:
    """Run `func(config)`, turning start-up errors into one line on stderr and exit code 2."""
    try:
        return func(config)
    except StartupError as exc:
        print(f"elasticthought: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_STARTUP
