"""The Flask application factory: `create_app(config, store, blobs)`.

Resources are blueprints registered one by one in `resource_modules()` (as Flask's tutorial
does, `app.register_blueprint(module.bp)`). To add one: write `elasticthought/api/<resource>.py`
with `bp = Blueprint(name, __name__, url_prefix="/<resource>")` and routes relative to it, and
add the module there. `BLUEPRINTS` names further blueprints ("module:attribute", imported when
the app is built). Handlers reach the services with `get_store()`, `get_blobs()`,
`get_config()` and `get_services()`. Every error is JSON `{"error": ..., "detail": ...}`; an
unexpected exception is logged and answered 503, never a 500 HTML page.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, jsonify
from werkzeug.exceptions import HTTPException

from elasticthought.api.bodylimits import BodyLimits
from elasticthought.blobs.base import BlobError, BlobNotFound, BlobStore
from elasticthought.config import Config
from elasticthought.store.base import Conflict, NotFound, Store, StoreError

log = logging.getLogger(__name__)

# Further blueprints, "module:attribute" (registered after the resources below).
BLUEPRINTS: list[str] = ["elasticthought.web:bp"]


def resource_modules() -> list[Any]:
    """The modules of the API's resources, in registration order: each has `bp` (its blueprint,
    with its url_prefix) and may have `OPENAPI_PATHS`."""
    from elasticthought.api import (
        classifiers,
        classify_jobs,
        datafiles,
        datasets,
        health,
        openapi,
        solvers,
        sync_gateway,
        tokens,
        training_jobs,
        users,
        workers,
    )

    return [
        health, openapi, users, tokens, datafiles, datasets, solvers, training_jobs,
        classifiers, classify_jobs, workers, sync_gateway,
    ]  # fmt: skip


def extra_modules() -> list[tuple[Any, str]]:
    """The modules named in `BLUEPRINTS` with the attribute holding each blueprint."""
    out = []
    for name in BLUEPRINTS:
        module_name, _, attr = name.partition(":")
        out.append((importlib.import_module(module_name), attr or "bp"))
    return out


EXTENSION = "elasticthought"


@dataclass
class Services:
    """What request handlers share: settings, stores and (when this process runs one) the
    worker pool. Kept in `app.extensions["elasticthought"]`."""

    config: Config
    store: Store
    blobs: BlobStore
    pool: Any = None
    inference: Any = None  # the warm inference service, started on first use (services.py)
    held: Any = None  # requests holding a thread while they wait (held_requests.py)


def get_services() -> Services:
    return current_app.extensions[EXTENSION]


def get_store() -> Store:
    return get_services().store


def get_blobs() -> BlobStore:
    return get_services().blobs


def get_config() -> Config:
    return get_services().config


def stamp_request_start() -> None:
    """`before_request` of the app (runs before the blueprints' own, e.g. authentication):
    when Flask began dispatching this request, for `Server-Timing` answers."""
    g.et_started = time.perf_counter()


def error_response(status: int, error: str, detail: Any = None) -> Response:
    """The JSON body every error uses."""
    response = jsonify({"error": error, "detail": detail})
    response.status_code = status
    return response


def _http_error(exc: HTTPException) -> Response:
    """Any werkzeug HTTP error (404, 405, 413, an `ApiError`, ...) as JSON, keeping its
    headers (Allow, WWW-Authenticate); a 5xx other than 503 is answered 503."""
    status = exc.code or 503
    if status >= 500 and status != 503:
        log.error("HTTP %s raised: %s", status, exc.description)
        status = 503
    response = exc.get_response()
    detail = getattr(exc, "detail", None) or exc.description
    response.set_data(json.dumps({"error": exc.name, "detail": detail}))
    response.mimetype = "application/json"
    response.status_code = status
    return response


def _unexpected(exc: Exception) -> Response:
    """Exceptions no handler caught: store/blob lookups map to 404/409 (their texts name ids
    and keys), outages and bugs to 503. A 503 names the kind of failure and a reference, never
    the exception's text (it may hold the server's paths or file names); the log line with
    the same reference keeps the details (with a traceback when it is a bug)."""
    if isinstance(exc, NotFound | BlobNotFound):
        return error_response(404, "Not Found", str(exc))
    if isinstance(exc, Conflict):
        return error_response(409, "Conflict", str(exc))
    reference = uuid.uuid4().hex[:12]
    if isinstance(exc, StoreError):
        log.warning("store error (reference %s): %s", reference, exc)
        what = "the document store is unavailable"
    elif isinstance(exc, BlobError):
        log.warning("blob store error (reference %s): %s", reference, exc)
        what = "the blob store is unavailable"
    else:
        log.exception("unexpected error while answering a request (reference %s)", reference)
        what = "internal error"
    name = type(exc).__name__
    detail = f"{what} ({name}); the server's log has the details (reference {reference})"
    return error_response(503, "Service Unavailable", detail)


def register_blueprints(app: Flask) -> None:
    """Every resource's blueprint, then the extra ones."""
    for module in resource_modules():
        app.register_blueprint(module.bp)
    for module, attr in extra_modules():
        app.register_blueprint(getattr(module, attr))


def create_app(config: Config, store: Store, blobs: BlobStore, pool: Any = None) -> Flask:
    """Build the WSGI app around already-opened stores (the caller owns their lifetime)."""
    app = Flask("elasticthought")
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = Services(config=config, store=store, blobs=blobs, pool=pool)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.before_request(stamp_request_start)
    from elasticthought.api.quotas import release_reservations  # (imports this module)

    app.teardown_request(release_reservations)
    register_blueprints(app)
    app.wsgi_app = BodyLimits(app.wsgi_app, config)  # type: ignore[method-assign]
    from elasticthought.metrics import attach

    app.extensions["elasticthought.metrics.holder"] = attach(app, config, store, pool)
    return app
