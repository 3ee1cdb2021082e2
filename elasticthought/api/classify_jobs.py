"""/classify-jobs: the images one classify request queued and, once processed, their results
(per image, keyed by its URL or uploaded file name). Created by
`POST /classifiers/{id}/classify` (`classify_request` below)."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, g, jsonify, request

from elasticthought.api.auth import require_auth
from elasticthought.api.deletion import remove_document
from elasticthought.api.errors import ApiError, bad_request
from elasticthought.api.held_requests import holding
from elasticthought.api.multipart_form import Form, Upload, read_form
from elasticthought.api.openapi import ID_PARAM, json_response, op, resource
from elasticthought.api.ownership import list_owned, owned, public, user_id
from elasticthought.api.pending import add_reasons, with_reason
from elasticthought.api.quotas import check_queue_quota, check_storage_quota, submit_job
from elasticthought.api.result_format import (
    FORMAT_QUERY,
    RESULT_FORMAT_FIELD,
    chosen_format,
    parse_result_format,
    present,
)
from elasticthought.api.services import blobs, config, inference, store
from elasticthought.api.validation import vet_url
from elasticthought.blobs import layout
from elasticthought.documents import model
from elasticthought.documents.fields import (
    CLASSIFY_JOB,
    ENGINE,
    GPU,
    ID,
    INTERNAL,
    PROCESSING_LOG,
    PROCESSING_STATE,
    REV,
)
from elasticthought.documents.states import FAILED, FINAL_STATES, FINISHED
from elasticthought.engine.registry import WARM_ENGINES, engine_or_default
from elasticthought.fetch import FetchError
from elasticthought.queue.limits import scrub_paths
from elasticthought.store.base import NotFound, new_id

bp = Blueprint("classify_jobs", __name__, url_prefix="/classify-jobs")
bp.before_request(require_auth)

MAX_IMAGES = 1000
MAX_URL = 4096
WAIT_SECONDS = 60.0
#: The most images a `?wait=true` request has answered by the warm inference process (more
#: go through the queue as a classify job).
WARM_MAX_IMAGES = 256
#: The worker id recorded on a classify job the warm inference process answered.
WARM_WORKER = "inference"


def _vet_url(index: int, url: Any) -> str:
    """A URL checked now (form, scheme, address): a refused one is a 422 naming it."""
    if not isinstance(url, str) or not url.strip():
        raise bad_request(f"urls[{index}] must be a non-empty string")
    url = url.strip()
    if len(url) > MAX_URL:
        raise bad_request(f"urls[{index}] is longer than {MAX_URL} characters")
    try:
        vet_url(url)
    except (FetchError, ValueError) as exc:
        raise ApiError(422, f"urls[{index}] {url[:200]!r} refused: {exc}") from None
    return url


def _unique(name: str, taken: set[str]) -> str:
    out, n = name, 1
    while out in taken:
        n += 1
        out = f"{name} ({n})"
    taken.add(out)
    return out


def _request_parts() -> tuple[list[Any], list[Upload], Form | None]:
    """The request's URLs and uploads, and the parsed form to close (a multipart body)."""
    if request.mimetype == "multipart/form-data":
        form = read_form(MAX_IMAGES + 1)
        unknown = sorted((set(form.fields) - {"urls"}) | (set(form.files) - {"files"}))
        if unknown:
            form.close()
            raise bad_request(f"unknown field(s): {', '.join(unknown)}; allowed: urls, files")
        return form.fields.get("urls", []), form.files.get("files", []), form
    from elasticthought.api.validation import json_body

    body = json_body(("urls",), ("urls",))
    urls = body["urls"]
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list):
        raise bad_request("'urls' must be a list of URLs")
    return urls, [], None


def _wait_params() -> tuple[bool, float]:
    unknown = sorted(set(request.args) - {"wait", "timeout"})
    if unknown:
        raise bad_request(f"unknown query parameter(s): {', '.join(unknown)}")
    wait = request.args.get("wait", "false").strip().lower()
    if wait not in ("true", "false", "1", "0", "yes", "no"):
        raise bad_request("query parameter 'wait' must be true or false")
    try:
        timeout = float(request.args.get("timeout", WAIT_SECONDS))
    except ValueError:
        raise bad_request("query parameter 'timeout' must be a number of seconds") from None
    if not 0 <= timeout < float("inf"):
        raise bad_request("query parameter 'timeout' must be a number of seconds")
    return wait in ("true", "1", "yes"), min(timeout, WAIT_SECONDS)


def classify_request(classifier: dict) -> Any:
    """POST /classifiers/{id}/classify: store the uploads, queue the job, optionally wait.
    A warm answer carries a `Server-Timing` header (`server_timing`)."""
    timing: dict[str, float] = {"begin": time.perf_counter()}
    wait, timeout = _wait_params()
    chosen_format(classifier, request.args)  # a bad ?format= is refused before queueing
    urls, files, form = _request_parts()
    try:
        return _classify(classifier, wait, timeout, urls, files, timing)
    finally:
        if form is not None:
            form.close()


def _classify(
    classifier: dict, wait: bool, timeout: float, urls: list[Any], files: list[Upload],
    timing: dict[str, float],
) -> Any:  # fmt: skip
    if not urls and not files:
        raise bad_request("give at least one image: 'urls' (repeatable) or 'files' (uploads)")
    if len(urls) + len(files) > MAX_IMAGES:
        raise bad_request(f"at most {MAX_IMAGES} images per request")
    images: list[dict[str, Any]] = []
    taken: set[str] = set()
    for i, url in enumerate(urls):
        url = _vet_url(i, url)
        if url in taken:
            continue  # the same URL twice has one result
        taken.add(url)
        images.append({"name": url, "url": url})
    job_id = new_id(CLASSIFY_JOB, user_id())
    warm = wait and _warm_eligible(classifier, len(images) + len(files))
    service = inference() if warm else None
    if service is None:
        check_queue_quota()  # a warm answer never waits in the queue: no queue quota
        if files:  # the uploads are stored with the job
            check_storage_quota(request.content_length, "storing these images")
    uploads: dict[str, tuple[str, bytes]] = {}  # warm: name -> (blob key, bytes), not stored
    try:
        for i, upload in enumerate(files):
            name = _unique((upload.filename or f"upload-{i + 1}")[:500], taken)
            key = layout.image(job_id, i)
            if service is not None:
                data = upload.stream.read()
                uploads[name] = (key, data)
                images.append({"name": name, "size": len(data)})
            else:
                size = blobs().put(key, upload.stream)
                images.append({"name": name, "blob": key, "size": size})
        fmt = parse_result_format(classifier.get(RESULT_FORMAT_FIELD))
        doc = model.classify_job(user_id(), job_id, classifier, images, fmt)
        if service is not None:
            timing["read"] = time.perf_counter()
            doc = _answer_warm(service, doc, classifier, uploads, timeout, timing)
        else:
            doc = submit_job(doc)
    except BaseException:
        blobs().delete_prefix(layout.prefix(job_id))
        raise
    if wait:
        with holding(user_id()) as held:
            if held:  # else answered at once, as it stands (poll it)
                doc = _wait(doc, timeout)
    response = jsonify(_show(doc))
    if "stored" in timing:
        response.headers["Server-Timing"] = server_timing(timing, time.perf_counter())
    return response, 201


def server_timing(timing: dict[str, float], end: float) -> str:
    """The `Server-Timing` header of a warm answer, in milliseconds: `app` (from the request's
    dispatch by Flask: authentication and the classifier's lookup), `read` (the query and the
    multipart body, the uploads read), `infer` (the round trip to the inference process), of
    which `model` (that process's work on the batch: decoding, preprocessing, the forward,
    the results), `store` (the answered job written), `respond` (the job shown as JSON) and
    `total` (dispatch until the response was made; the HTTP front adds its own time)."""
    start = float(g.get("et_started", timing["begin"]))
    spans = {
        "app": timing["begin"] - start,
        "read": timing["read"] - timing["begin"],
        "infer": timing["answered"] - timing["read"],
        "model": timing.get("model", 0.0),
        "store": timing["stored"] - timing["answered"],
        "respond": end - timing["stored"],
        "total": end - start,
    }
    return ", ".join(f"{name};dur={seconds * 1000:.3f}" for name, seconds in spans.items())


def _warm_eligible(classifier: dict, count: int) -> bool:
    """Whether the warm inference process may answer: a CPU classifier of a warm engine and
    not too many images."""
    engine = engine_or_default(classifier.get(ENGINE))
    return engine in WARM_ENGINES and not classifier.get(GPU) and count <= WARM_MAX_IMAGES


def _answer_warm(
    service: Any, doc: dict, classifier: dict, uploads: dict[str, tuple[str, bytes]],
    timeout: float, timing: dict[str, float],
) -> dict:  # fmt: skip
    """The classify job answered by the warm inference process and stored final (finished,
    or failed with the reason); the uploads go to it as bytes (not stored). Queued as usual
    (uploads stored) when no answer comes within `timeout`. `timing` gets when the answer
    came (`answered`), the inference process's own time (`model`) and when the job was
    stored (`stored`; absent when it was queued)."""
    from elasticthought.queue.inference import InferenceFailed, InferenceTimeout

    started = time.time()
    key, version = classifier[ID], str(classifier.get(REV) or "")
    items = [
        {**image, "data": uploads[image["name"]][1]} if image["name"] in uploads else image
        for image in doc["images"]
    ]
    try:
        fields = service.run(key, version, classifier, items, timeout, timing)
        state = FINISHED
    except InferenceTimeout:
        check_queue_quota()  # no warm answer in time: it goes to the queue after all
        if uploads:  # ... with its uploads stored
            check_storage_quota(request.content_length, "storing these images")
        for image in doc["images"]:
            if image["name"] in uploads:
                image["blob"] = uploads[image["name"]][0]
                blobs().put(image["blob"], uploads[image["name"]][1])
        return submit_job(doc)
    except InferenceFailed as exc:
        fields, state = {PROCESSING_LOG: scrub_paths(str(exc), config())[:2000]}, FAILED
    timing["answered"] = time.perf_counter()
    stored = store().create(model.answered(doc, state, started, WARM_WORKER, fields))
    timing["stored"] = time.perf_counter()
    return stored


def _wait(doc: dict, timeout: float) -> dict:
    """The job once final, or as it stands after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while doc.get(PROCESSING_STATE) not in FINAL_STATES:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(delay, left))
        delay = min(delay * 1.5, 0.5)
        try:
            doc = store().get(doc["_id"])
        except NotFound:
            break
    return doc


def _ordered(out: dict[str, Any]) -> dict[str, Any]:
    """Results in request order (a store may sort object keys)."""
    results = out.get("results")
    if isinstance(results, dict):
        names = [i.get("name") for i in out.get("images") or [] if isinstance(i, dict)]
        out["results"] = {n: results[n] for n in names if n in results} | results
    return out


def _show(doc: dict) -> dict[str, Any]:
    out = present(_ordered(public(doc, INTERNAL)), chosen_format(doc, request.args))
    return with_reason(out, doc)


@bp.get("")
def list_classify_jobs():
    page = list_owned("classify-job", INTERNAL)
    page["items"] = [present(_ordered(i), chosen_format(i, request.args)) for i in page["items"]]
    add_reasons(page["items"])
    return jsonify(page)


@bp.get("/<doc_id>")
def get_classify_job(doc_id: str):
    return jsonify(_show(owned(doc_id, "classify-job")))


@bp.delete("/<doc_id>")
def delete_classify_job(doc_id: str):
    remove_document(owned(doc_id, "classify-job"))
    return "", 204


@bp.post("/<doc_id>/cancel")
def cancel_classify_job(doc_id: str):
    from elasticthought.queue.control import request_cancel

    owned(doc_id, "classify-job")
    request_cancel(store(), doc_id)
    return jsonify(_show(owned(doc_id, "classify-job"))), 202


OPENAPI_PATHS = resource("classify-jobs", "classify job", None, "")
for _method in OPENAPI_PATHS["/classify-jobs/{doc_id}"].values():
    if isinstance(_method, dict) and "responses" in _method:
        _method.setdefault("parameters", []).append(FORMAT_QUERY)
OPENAPI_PATHS["/classify-jobs/{doc_id}/cancel"] = {
    "parameters": [ID_PARAM],
    "post": op(
        "cancel a classify job (a pending one at once, a running one within seconds)",
        {"202": json_response("the job as it stands")},
        errors=(401, 404),
    ),
}
