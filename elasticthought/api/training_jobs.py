"""/training-jobs: queue a training run of a solver; follow it (status, metrics, logs); fetch its
model and snapshots; cancel or delete it. A worker runs it (the `training-job` runner)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request

from elasticthought.api.auth import require_auth
from elasticthought.api.deletion import delete_unless_used, dependents
from elasticthought.api.errors import ApiError, bad_request
from elasticthought.api.held_requests import HeldStream, held_requests
from elasticthought.api.openapi import ID_PARAM, json_response, obj, op, resource
from elasticthought.api.ownership import list_owned, owned, public, referenced, user_id
from elasticthought.api.pending import add_reasons, with_reason
from elasticthought.api.quotas import check_queue_quota, check_storage_quota, submit_job
from elasticthought.api.services import blobs, config, store
from elasticthought.api.validation import json_body, want_str
from elasticthought.blobs import layout
from elasticthought.blobs.base import BlobNotFound
from elasticthought.documents import model
from elasticthought.documents.fields import (
    CPUS,
    INTERNAL,
    MAX_CPUS,
    PROCESSING_STATE,
    TRAINING_JOB,
)
from elasticthought.documents.states import FINAL_STATES, FINISHED, PROCESSING
from elasticthought.documents.status import PENDING_REASON, STATUS_KEYS
from elasticthought.engine.registry import DEFAULT_ENGINE, ENGINE_NAMES
from elasticthought.limits import MAX_ITERATIONS, PRIORITY_MAX, PRIORITY_MIN
from elasticthought.queue.control import request_cancel
from elasticthought.queue.presence import list_workers
from elasticthought.store.base import NotFound, new_id

bp = Blueprint("training_jobs", __name__, url_prefix="/training-jobs")
bp.before_request(require_auth)

TYPE = TRAINING_JOB
FIELDS = ("solver-id", "engine", "gpu", "cpus", "priority", "max-runtime", "weights")
#: Dependents that block deleting a training job (the classifier half's documents).
DEPENDENT_TYPES = ("classifier",)
FOLLOW_MAX_SECONDS = 600.0
FOLLOW_POLL = 0.5
DELETE_WAIT = 10.0


def public_link(path: str) -> str:
    """A link to `path` on this service: absolute from `--public-url`, else relative (the
    client's Host header is never trusted)."""
    base = config().public_url.rstrip("/")
    return base + path if base else path


# Creating ------------------------------------------------------------------------------------


def _int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d{1,30}", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name!r} must be an integer")
    if low is not None and value < low:
        raise bad_request(f"{name!r} must be at least {low}")
    if high is not None and value > high:
        raise bad_request(f"{name!r} must be at most {high}")
    return value


def _gpu(value: Any) -> bool | int:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return _int(value, "gpu", 0)


def _runtime(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise bad_request("'max-runtime' must be a number of seconds") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise bad_request("'max-runtime' must be a positive number of seconds")
    limit = config().max_max_runtime
    if value != value or value > limit:
        raise bad_request(f"'max-runtime' must be at most {limit:g} seconds (--max-max-runtime)")
    return float(value)


def _check_engine(engine: Any, explicit: bool) -> str:
    if not isinstance(engine, str) or engine not in ENGINE_NAMES:
        raise ApiError(422, f"'engine' must be one of {', '.join(ENGINE_NAMES)}")
    if explicit:
        offered = {
            e
            for w in list_workers(store())
            for e in (w.get("capabilities") or {}).get("engines", [])
        }
        if engine not in offered:
            have = ", ".join(sorted(offered)) or "none (no worker registered)"
            raise ApiError(
                422, f"no registered worker offers engine {engine!r}; engines offered: {have}"
            )
    return engine


def _weights_ref(value: Any) -> dict[str, Any]:
    """`weights` as a training-job id or a URL of a .caffemodel."""
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise bad_request("'weights' must be a training-job id or the URL of a .caffemodel")
    if value.startswith(TYPE + ":"):
        source = referenced(value, TYPE, "weights")
        state = source.get(PROCESSING_STATE)
        if state in FINAL_STATES and state != FINISHED:
            raise ApiError(422, f"'weights': training job {value} is {state}")
        return {"training-job-id": value}
    from elasticthought.api.datafiles import check_source_url

    try:
        return {"url": check_source_url(value)}
    except ApiError as exc:
        raise ApiError(422, f"'weights': {exc.detail}") from None


def _max_iter(solver: dict) -> int | None:
    from elasticthought.engine.prototxt import parse_solver

    try:
        return int(parse_solver(solver.get("specification") or "").max_iter)
    except Exception:  # noqa: BLE001 - the runner reports a bad solver
        return None


def _body() -> tuple[dict, Any]:
    """The fields (JSON, or a multipart form with a `weights` file part) and the upload."""
    if request.mimetype != "multipart/form-data":
        return json_body(FIELDS, ("solver-id",)), None
    check_storage_quota(request.content_length)
    unknown = sorted((set(request.form) - set(FIELDS)) | (set(request.files) - {"weights"}))
    if unknown:
        raise bad_request(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
    body = {k: request.form[k] for k in request.form}
    upload = request.files.get("weights")
    if upload is not None and "weights" in body:
        raise bad_request("give 'weights' as a file or as text, not both")
    if not body.get("solver-id"):
        raise bad_request("missing required field(s): solver-id")
    return body, upload


def _store_upload(doc_id: str, upload: Any) -> dict:
    limit = config().max_upload_bytes
    blob_key = layout.key(doc_id, layout.WEIGHTS)

    def limited() -> Iterator[bytes]:
        total = 0
        while chunk := upload.stream.read(1 << 16):
            total += len(chunk)
            if total > limit:
                raise ApiError(413, f"weights upload is larger than the limit of {limit} bytes")
            yield chunk

    try:
        size = blobs().put(blob_key, limited())
    except ApiError:
        blobs().delete(blob_key)
        raise
    if size == 0:
        blobs().delete(blob_key)
        raise bad_request("the uploaded weights file is empty")
    return {"upload": blob_key, "filename": upload.filename or "", "size": size}


@bp.post("")
def post_training_job():
    check_queue_quota()
    body, upload = _body()
    solver_id = want_str(body, "solver-id", 512) or ""
    solver = referenced(solver_id, "solver", "solver-id")
    engine = _check_engine(body.get("engine", config().engine or DEFAULT_ENGINE), "engine" in body)
    doc = model.training_job(
        user_id(),
        new_id(TYPE, user_id()),
        solver_id,
        solver.get("dataset-id"),
        engine,
        _gpu(body.get("gpu", False)),
        _int(body.get("priority", 0), "priority", PRIORITY_MIN, PRIORITY_MAX),
    )
    if body.get(CPUS) is not None:
        doc[CPUS] = _int(body[CPUS], CPUS, 1, MAX_CPUS)
    if body.get("max-runtime") is not None:
        doc["max-runtime"] = _runtime(body["max-runtime"])
    if body.get("weights") not in (None, ""):
        doc["weights"] = _weights_ref(body["weights"])
    max_iter = _max_iter(solver)
    if max_iter is not None and not 0 < max_iter <= MAX_ITERATIONS:
        raise bad_request(
            f"the solver's max_iter is {max_iter}; it must be from 1 to {MAX_ITERATIONS}"
        )
    if max_iter is not None:
        doc["max-iterations"] = max_iter
    if upload is not None:
        doc["weights"] = _store_upload(doc["_id"], upload)
    doc = submit_job(doc)
    return jsonify(with_reason(public(doc, INTERNAL), doc)), 201


# Reading -------------------------------------------------------------------------------------


@bp.get("")
def list_training_jobs():
    page = list_owned(TYPE, INTERNAL)
    add_reasons(page["items"])
    return jsonify(page)


@bp.get("/<doc_id>")
def get_training_job(doc_id: str):
    doc = owned(doc_id, TYPE)
    return jsonify(with_reason(public(doc, INTERNAL), doc))


def _no_args(*allowed: str) -> None:
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise bad_request(f"unknown query parameter(s): {', '.join(unknown)}")


def eta_seconds(doc: dict) -> float | None:
    """Seconds left: remaining iterations at the last measured speed (0 once final)."""
    state = doc.get(PROCESSING_STATE)
    if state in FINAL_STATES:
        return 0.0
    if state != PROCESSING:
        return None
    try:
        rate = float(doc.get("iter-per-s") or 0)
        left = int(doc["max-iterations"]) - int(doc.get("last-iteration") or 0)
    except (KeyError, TypeError, ValueError):
        return None
    if rate <= 0:
        return None
    since = time.time() - float(doc.get("progress-at") or time.time())
    return round(max(0.0, left / rate - max(0.0, since)), 1)


@bp.get("/<doc_id>/status")
def get_status(doc_id: str):
    _no_args()
    doc = owned(doc_id, TYPE)
    out: dict[str, Any] = {"id": doc["_id"], "state": doc.get(PROCESSING_STATE)}
    for name in STATUS_KEYS:
        out[name] = doc.get(name)
    out[PENDING_REASON] = with_reason({}, doc).get(PENDING_REASON)
    out["logs"] = public_link(f"/training-jobs/{doc_id}/logs")
    out["eta-seconds"] = eta_seconds(doc)
    return jsonify(out)


@bp.get("/<doc_id>/metrics")
def get_metrics(doc_id: str):
    _no_args()
    doc = owned(doc_id, TYPE)
    try:
        data = json.loads(blobs().get(layout.key(doc_id, layout.METRICS)))
    except (BlobNotFound, ValueError):
        data = {
            "train": {"iteration": [], "loss": [], "lr": [], "outputs": {}},
            "test": {"iteration": [], "net": [], "outputs": {}},
        }
    return jsonify({"id": doc_id, "state": doc.get(PROCESSING_STATE), **data})


def _read_from(blob_key: str, offset: int, blob_store: Any = None) -> bytes:
    try:
        with (blob_store or blobs()).open(blob_key) as f:
            if offset:
                f.seek(offset)
            return f.read()
    except BlobNotFound:
        return b""


def _follow(doc_id: str, timeout: float) -> Iterator[bytes]:
    """Log bytes as they are uploaded, until the job ends (runs outside the request context:
    the stores and the hold are bound here). A follow past the caller's cap of waiting
    requests ends their oldest follow; past the cap of all users, 429 (`held_requests`)."""
    docs, blob_store, counts = store(), blobs(), held_requests()
    hold = counts.try_hold(user_id(), replace_oldest=True)
    if hold is None:
        raise ApiError(
            429,
            f"too many requests waiting at once ({counts.total} in all): "
            "try again, or poll without follow",
            retry_after=FOLLOW_POLL * 10,
        )
    chunks = _follow_loop(docs, blob_store, doc_id, timeout, hold.stop)
    return HeldStream(chunks, lambda: counts.release(hold))


def _follow_loop(
    docs: Any, blob_store: Any, doc_id: str, timeout: float, stop: threading.Event
) -> Iterator[bytes]:
    blob_key = layout.key(doc_id, layout.LOG)
    deadline = time.monotonic() + timeout
    offset = 0
    while True:
        try:
            state = docs.get(doc_id).get(PROCESSING_STATE)
        except NotFound:
            return
        data = _read_from(blob_key, offset, blob_store)
        if data:
            offset += len(data)
            yield data
        if state in FINAL_STATES or time.monotonic() > deadline:
            return
        if stop.wait(FOLLOW_POLL):
            return  # a newer follow of the same user took this one's place


@bp.get("/<doc_id>/logs")
def get_logs(doc_id: str):
    _no_args("follow", "timeout")
    owned(doc_id, TYPE)
    follow = request.args.get("follow", "false").lower()
    if follow not in ("true", "false", "1", "0"):
        raise bad_request("query parameter 'follow' must be true or false")
    timeout = FOLLOW_MAX_SECONDS
    if "timeout" in request.args:
        try:
            timeout = float(request.args["timeout"])
        except ValueError:
            raise bad_request("query parameter 'timeout' must be a number of seconds") from None
        if not 0 <= timeout <= FOLLOW_MAX_SECONDS:
            raise bad_request(f"query parameter 'timeout' must be 0..{FOLLOW_MAX_SECONDS:g}")
    mimetype = "text/plain"
    if follow in ("true", "1"):
        return Response(_follow(doc_id, timeout), mimetype=mimetype, direct_passthrough=True)
    return Response(_read_from(layout.key(doc_id, layout.LOG), 0), mimetype=mimetype)


def _download(blob_key: str, filename: str) -> Response:
    try:
        size = blobs().size(blob_key)
        chunks = blobs().iter_chunks(blob_key)
    except BlobNotFound:
        raise ApiError(404, f"{filename} is not in the blob store") from None
    response = Response(chunks, mimetype="application/octet-stream", direct_passthrough=True)
    response.headers["Content-Length"] = str(size)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/<doc_id>/model")
def get_model(doc_id: str):
    _no_args()
    doc = owned(doc_id, TYPE)
    if doc.get(PROCESSING_STATE) != FINISHED or not doc.get("trained-model"):
        raise ApiError(
            404, f"training job {doc_id} has no trained model (it is {doc.get(PROCESSING_STATE)})"
        )
    return _download(doc["trained-model"], layout.MODEL)


def _snapshots(doc_id: str) -> list[dict]:
    base = public_link(f"/training-jobs/{doc_id}/snapshots/")
    by_iter: dict[int, dict] = {}
    for blob_key in blobs().list(layout.snapshots(doc_id)):
        name = blob_key.rsplit("/", 1)[-1]
        match = layout.SNAPSHOT_RE.match(name)
        if not match:
            continue
        entry = by_iter.setdefault(int(match["iter"]), {"iteration": int(match["iter"])})
        entry[match["ext"]] = {"name": name, "url": base + name, "size": blobs().size(blob_key)}
    return [by_iter[i] for i in sorted(by_iter)]


@bp.get("/<doc_id>/snapshots")
def list_snapshots(doc_id: str):
    _no_args()
    owned(doc_id, TYPE)
    return jsonify({"id": doc_id, "items": _snapshots(doc_id)})


@bp.get("/<doc_id>/snapshots/<name>")
def get_snapshot(doc_id: str, name: str):
    _no_args()
    owned(doc_id, TYPE)
    if not layout.SNAPSHOT_RE.match(name) or "/" in name:
        raise ApiError(404, f"no snapshot named {name!r}")
    return _download(layout.snapshot(doc_id, name), name)


# Cancel and delete ---------------------------------------------------------------------------


@bp.post("/<doc_id>/cancel")
def cancel(doc_id: str):
    _no_args()
    doc = owned(doc_id, TYPE)
    if doc.get(PROCESSING_STATE) in FINAL_STATES:
        raise ApiError(409, f"training job {doc_id} already ended: {doc[PROCESSING_STATE]}")
    try:
        written = request_cancel(store(), doc_id) or store().get(doc_id)
    except NotFound:
        raise ApiError(404, f"no training job with id {doc_id!r}") from None
    return jsonify(public(written, INTERNAL)), 202


@bp.delete("/<doc_id>")
def delete_training_job(doc_id: str):
    doc = owned(doc_id, TYPE)
    users = [i for t in DEPENDENT_TYPES for i in dependents(t, "training-job-id", doc_id)]
    users += [
        i
        for i in dependents(TYPE, "training-job-id", doc_id)
        if store().get(i).get(PROCESSING_STATE) not in FINAL_STATES
    ]
    if not users and doc.get(PROCESSING_STATE) == PROCESSING:
        request_cancel(store(), doc_id)
        deadline = time.monotonic() + DELETE_WAIT
        while doc.get(PROCESSING_STATE) == PROCESSING and time.monotonic() < deadline:
            time.sleep(0.2)
            doc = owned(doc_id, TYPE)
    return delete_unless_used(doc, users, "training job is used by")


# OpenAPI -------------------------------------------------------------------------------------

_ITEM = [ID_PARAM]
_TEXT = {"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}}
_BINARY = {
    "description": "the file",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}
_CREATE_FIELDS = {
    "solver-id": {"type": "string"},
    "engine": {"type": "string", "enum": list(ENGINE_NAMES)},
    "gpu": {"oneOf": [{"type": "boolean"}, {"type": "integer", "minimum": 0}]},
    CPUS: {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_CPUS,
        "description": "CPU cores (threads) to run on; default the worker's share, bounded by "
        "the worker's cores",
    },
    "priority": {"type": "integer", "minimum": PRIORITY_MIN, "maximum": PRIORITY_MAX},
    "max-runtime": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
    "weights": {"type": "string", "description": "a training-job id or a .caffemodel URL"},
}
OPENAPI_PATHS = resource(
    "training-jobs",
    "training job",
    {
        "required": True,
        "content": {
            "application/json": {"schema": obj(_CREATE_FIELDS, ["solver-id"])},
            "multipart/form-data": {
                "schema": obj(
                    {
                        **{k: {"type": "string"} for k in _CREATE_FIELDS},
                        "weights": {"type": "string", "format": "binary"},
                    },
                    ["solver-id"],
                )
            },
        },
    },
    "queue a training run of a solver (optionally fine-tuning `weights`)",
)
OPENAPI_PATHS.update(
    {
        "/training-jobs/{doc_id}/status": {
            "parameters": _ITEM,
            "get": op(
                "state, loss, iterations, lr, tests, evaluation, eta",
                {"200": json_response("status", {"type": "object"})},
            ),
        },
        "/training-jobs/{doc_id}/metrics": {
            "parameters": _ITEM,
            "get": op(
                "loss, lr and test-output series (columns)",
                {"200": json_response("series", {"type": "object"})},
            ),
        },
        "/training-jobs/{doc_id}/logs": {
            "parameters": _ITEM,
            "get": op(
                "the training log (Caffe glog lines); follow=true streams until the job ends",
                {"200": _TEXT},
                params=[
                    {"name": "follow", "in": "query", "schema": {"type": "boolean"}},
                    {
                        "name": "timeout",
                        "in": "query",
                        "schema": {"type": "number", "minimum": 0, "maximum": FOLLOW_MAX_SECONDS},
                    },
                ],
            ),
        },
        "/training-jobs/{doc_id}/model": {
            "parameters": _ITEM,
            "get": op("the final .caffemodel", {"200": _BINARY}),
        },
        "/training-jobs/{doc_id}/snapshots": {
            "parameters": _ITEM,
            "get": op(
                "snapshots (.caffemodel + .solverstate per iteration)",
                {"200": json_response("snapshots", {"type": "object"})},
            ),
        },
        "/training-jobs/{doc_id}/snapshots/{name}": {
            "parameters": [
                ID_PARAM,
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "get": op("one snapshot file", {"200": _BINARY}),
        },
        "/training-jobs/{doc_id}/cancel": {
            "parameters": _ITEM,
            "post": op(
                "cancel a pending or running job",
                {"202": json_response("the job, cancel requested")},
                errors=(400, 401, 404, 409),
            ),
        },
    }
)
