"""HTTP side of metrics: request counting for the API, and the `/metrics` and `/scaling`
endpoints, served on the API port or, with `--metrics-port`, on their own port (then only
there; bound to `--metrics-host`, 127.0.0.1 by default). Neither needs sign-in: they carry
counts only, no user names or ids."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from elasticthought.metrics import hooks
from elasticthought.metrics.process import current

log = logging.getLogger(__name__)

EXTENSION = "elasticthought.metrics"
UNMATCHED = "<unmatched>"  # the route label of requests no route matched (404s)

bp = Blueprint("metrics", __name__)


class SignalHolder:
    """Makes the process's `state.ScalingSignal` on first use (None: this process computes no
    store gauges, e.g. an `elasticthought worker`)."""

    def __init__(self, factory: Any = None) -> None:
        self.factory = factory
        self.signal: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self.factory is None:
            return None
        with self._lock:
            if self.signal is None:
                self.signal = self.factory()
            return self.signal

    def close(self) -> None:
        with self._lock:
            if self.signal is not None:
                self.signal.close()


def _signal() -> Any:
    return current_app.extensions[EXTENSION].get()


@bp.get("/metrics")
def get_metrics() -> Response:
    from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

    from elasticthought.metrics.state import StateCollector

    signal = _signal()
    collectors = [StateCollector(signal)] if signal is not None else []
    return Response(
        current().render(collectors), mimetype=None, content_type=CONTENT_TYPE_PLAIN_0_0_4
    )


@bp.get("/scaling")
def get_scaling() -> Response:
    signal = _signal()
    if signal is None:
        return _not_here("this process computes no scaling signal (ask the API process)")
    data = signal.compute()
    return jsonify({k: v for k, v in data.items() if not k.startswith("_")})


def _not_here(detail: str) -> Response:
    response = jsonify({"error": "Not Found", "detail": detail})
    response.status_code = 404
    return response


def _started() -> None:
    g.et_started = time.perf_counter()


def _finished(response: Response) -> Response:
    started = g.pop("et_started", None)
    if started is None:
        return response
    try:
        defs = hooks._defs()
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED
        method = request.method if request.method in KNOWN_METHODS else "other"
        defs.http_requests.labels(method, route, str(response.status_code)).inc()
        defs.http_duration.labels(method, route).observe(time.perf_counter() - started)
    except Exception:  # noqa: BLE001 - metrics never break a response
        log.debug("recording an HTTP metric failed", exc_info=True)
    return response


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def install(app: Flask, holder: SignalHolder, serve_endpoints: bool) -> None:
    """Count `app`'s requests; add `/metrics` and `/scaling` to it when `serve_endpoints`."""
    app.extensions[EXTENSION] = holder
    app.before_request(_started)
    app.after_request(_finished)
    if serve_endpoints:
        app.register_blueprint(bp)


def metrics_app(holder: SignalHolder) -> Flask:
    """A small app serving only `/metrics` and `/scaling` (for `--metrics-port`)."""
    app = Flask("elasticthought-metrics")
    app.extensions[EXTENSION] = holder
    app.register_blueprint(bp)
    return app


class MetricsServer:
    """`metrics_app` behind waitress on `host:port`, in a daemon thread."""

    def __init__(self, holder: SignalHolder, host: str, port: int) -> None:
        import waitress

        self.server = waitress.create_server(
            metrics_app(holder), host=host, port=port, threads=4, ident="elasticthought-metrics"
        )
        self.thread = threading.Thread(target=self.server.run, name="et-metrics-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def close(self) -> None:
        try:
            self.server.close()
        except Exception:  # noqa: BLE001 - best effort at shutdown
            log.debug("closing the metrics server", exc_info=True)


def _openapi_paths() -> dict[str, Any]:
    from elasticthought.api.openapi import json_response, op

    moved = "on the API port unless --metrics-port is set (then only there; 404 here)"
    return {
        "/metrics": {
            "get": op(
                f"Prometheus metrics (text exposition format), {moved}",
                {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                public=True,
                errors=(404,),
            )
        },
        "/scaling": {
            "get": op(
                "the scaling signal: per capability pending and running jobs, workers, free "
                f"slots and the recommended number of workers, {moved}",
                {"200": json_response("scaling signal", {"type": "object"})},
                public=True,
                errors=(404,),
            )
        },
    }


OPENAPI_PATHS = _openapi_paths()
