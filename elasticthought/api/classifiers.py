"""/classifiers: a deploy net with trained weights, ready to classify images.

Created (JSON, or multipart with a `model` .caffemodel part) from a deploy prototxt
(`specification-url` or inline `specification`) and either a finished `training-job-id` (its
final model, labels and TEST-phase transform) or a `model-url`/uploaded model with optional
`labels`. The seed's `scale`, `image-width`, `image-height`, `color`, `gpu` are accepted as
numbers or strings. The deploy net is built with the model before anything is stored: a
mismatch is a 422 naming the layer, a prototxt error a 422 with line and column.
`POST /classifiers/{id}/classify` queues a classify job (see classify_jobs.py). `engine`
(torch or caffe) picks what runs the forward; by default the training job's engine, else torch.
"""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace
from typing import Any

from flask import Blueprint, jsonify, request

from elasticthought.api.auth import require_auth
from elasticthought.api.classify_jobs import classify_request
from elasticthought.api.deletion import remove_document
from elasticthought.api.deploy_check import check_deploy_bounded
from elasticthought.api.errors import ApiError, bad_request
from elasticthought.api.openapi import ID_PARAM, json_response, obj, op, resource
from elasticthought.api.ownership import list_owned, owned, public, referenced, user_id
from elasticthought.api.quotas import (
    check_storage_quota,
    quota_error,
    storage_room,
)
from elasticthought.api.request_fetch import fetch_into_blob, fetch_small, request_policy
from elasticthought.api.result_format import (
    FORMAT_QUERY,
    RESULT_FORMAT_FIELD,
    RESULT_FORMATS,
    parse_result_format,
)
from elasticthought.api.services import blobs, config, store
from elasticthought.api.solvers import format_error
from elasticthought.api.validation import load_json, want_str
from elasticthought.blobs import layout
from elasticthought.documents import model as model_doc
from elasticthought.documents.fields import IMAGE_DATA, INTERNAL, LAYERS_TYPE, PROCESSING_STATE
from elasticthought.documents.states import ACTIVE, FINISHED
from elasticthought.engine.datum import too_many_pixels
from elasticthought.engine.deploy import parse_deploy
from elasticthought.engine.errors import FormatError
from elasticthought.engine.interface import DeployError
from elasticthought.engine.prototxt import require_finite
from elasticthought.engine.registry import DEFAULT_ENGINE, ENGINE_NAMES
from elasticthought.engine.transform import USER_TRANSFORM_KEYS
from elasticthought.fetch import FetchError, TooLarge
from elasticthought.limits import REQUEST_MODEL_FETCH_TIMEOUT
from elasticthought.store.base import new_id

log = logging.getLogger(__name__)

bp = Blueprint("classifiers", __name__, url_prefix="/classifiers")
bp.before_request(require_auth)

FIELDS = (
    "specification", "specification-url", "training-job-id", "model-url", "labels", "scale",
    "image-width", "image-height", "color", "gpu", "transform", "name", "engine",
    RESULT_FORMAT_FIELD,
)  # fmt: skip
MAX_PROTOTXT = 1 << 20
MAX_LABELS = 100_000
MAX_SIDE = 8192

# Field parsing --------------------------------------------------------------------------------


def _number(body: dict, key: str, default: float | None, integer: bool = False) -> Any:
    """A positive number given as a number or a string ("255", as the seed sends)."""
    value = body.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise bad_request(f"'{key}' must be a number, not {value[:40]!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"'{key}' must be a number")
    try:
        value = float(value) if not integer else value
        finite = math.isfinite(value)
    except OverflowError:
        finite = False
    if not finite:
        raise bad_request(f"'{key}' must be a finite number")
    if value <= 0:
        raise bad_request(f"'{key}' must be greater than 0")
    if integer:
        if value != int(value) or value > MAX_SIDE:
            raise bad_request(f"'{key}' must be a whole number of pixels up to {MAX_SIDE}")
        return int(value)
    return float(value)


def _flag(body: dict, key: str) -> bool:
    value = body.get(key, False)
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise bad_request(f"'{key}' must be true or false")


def _labels(value: Any) -> list[str] | None:
    """Label names: a JSON list of strings (or, in a form, JSON text or one name per line)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = load_json(text, "'labels'")
        else:
            value = [line.strip() for line in text.splitlines() if line.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise bad_request("'labels' must be a list of label names")
    if not value or len(value) > MAX_LABELS:
        raise bad_request(f"'labels' must hold 1 to {MAX_LABELS} names")
    return [str(v) for v in value]


def _transform(value: Any) -> dict[str, Any] | None:
    """A TEST-phase transform for models without a training job (Caffe's transform_param
    names): `scale`, `mean_value`, `crop_size`."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = load_json(value, "'transform'")
    if not isinstance(value, dict):
        raise bad_request("'transform' must be an object like {\"scale\": 0.00390625}")
    unknown = sorted(set(value) - set(USER_TRANSFORM_KEYS))
    if unknown:
        raise bad_request(
            f"'transform': unknown field(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(USER_TRANSFORM_KEYS)}"
        )
    out: dict[str, Any] = {"scale": 1.0, "mean_value": [], "crop_size": 0}
    if "scale" in value:
        out["scale"] = _number(value, "scale", 1.0)
    if "crop_size" in value:
        out["crop_size"] = _number(value, "crop_size", 0, integer=True)
    means = value.get("mean_value", [])
    if not isinstance(means, list):
        means = [means]
    values = []
    for m in means:
        try:
            ok = not isinstance(m, bool) and isinstance(m, int | float) and math.isfinite(m)
        except OverflowError:
            ok = False
        if not ok:
            raise bad_request("'transform.mean_value' must be a number or a list of numbers")
        values.append(float(m))
    out["mean_value"] = values
    return out


def _specification(body: dict, files: Any) -> tuple[str, str | None]:
    """The deploy prototxt text: inline, a form file part, or fetched from its URL."""
    inline = body.get("specification")
    if files is not None and "specification" in files:
        inline = files["specification"].read(MAX_PROTOTXT + 1)
        if len(inline) > MAX_PROTOTXT:
            raise ApiError(413, f"'specification' is larger than {MAX_PROTOTXT} bytes")
        try:
            inline = inline.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(422, "'specification': the file is not UTF-8 text") from None
    elif inline is not None:
        inline = want_str(body, "specification", MAX_PROTOTXT)
    url = want_str(body, "specification-url", 4096)
    if (inline is None or inline == "") == (url is None or url == ""):
        raise bad_request(
            "give exactly one of 'specification' (the deploy prototxt text) or 'specification-url'"
        )
    if inline:
        return inline, None
    try:
        data = fetch_small(url, MAX_PROTOTXT)
    except (FetchError, ValueError) as exc:
        raise ApiError(422, f"'specification-url': {exc}") from None
    try:
        return data.decode("utf-8"), url
    except UnicodeDecodeError:
        raise ApiError(422, "'specification-url': the file is not UTF-8 text") from None


def _engine(body: dict) -> str | None:
    """The explicit `engine` (None when not given); 422 when no registered worker offers it."""
    from elasticthought.api.training_jobs import _check_engine

    value = body.get("engine")
    if value is None or value == "":
        return None
    return _check_engine(value, True)


def _format_error(exc: FormatError, fetched: bool = False) -> ApiError:
    """A deploy prototxt error at its place; the reason only for text the user sent (fetched
    text is never echoed)."""
    return format_error("specification-url" if fetched else "specification", exc)


# The model's origin ---------------------------------------------------------------------------


def _from_training_job(job_id: Any, doc_id: str) -> dict[str, Any]:
    """Model, labels and TEST transform of one's own finished training job (copied into the
    classifier's blobs, so the classifier outlives the job)."""
    from elasticthought.documents import training_info

    if not isinstance(job_id, str):
        raise bad_request("'training-job-id' must be a string")
    job = referenced(job_id, "training-job", "training-job-id")
    state = job.get(PROCESSING_STATE)
    if state != FINISHED:
        raise ApiError(
            422, f"training job {job_id} is {state}: a classifier needs a finished training job"
        )
    try:
        info = training_info.describe(store(), job)
    except training_info.InfoError as exc:
        raise ApiError(422, f"training job {job_id}: {exc}") from None
    copies = [info.model] + ([info.mean] if info.mean else [])
    check_storage_quota(
        sum(blobs().size(key) for key in copies), "copying the training job's model"
    )
    model_key = layout.model(doc_id)
    with blobs().open(info.model) as src:
        blobs().put(model_key, src)
    transform = dict(info.transform)
    if info.mean:
        transform["mean"] = layout.mean_file(doc_id)
        with blobs().open(info.mean) as src:
            blobs().put(transform["mean"], src)
    return {
        "model": model_key,
        "labels": info.labels,
        "label-kind": "names" if info.layers_type == IMAGE_DATA else "numbers",
        LAYERS_TYPE: info.layers_type,
        "transform": transform,
        "image-loading": info.image_loading,
        "engine": job.get("engine") or DEFAULT_ENGINE,
    }


def _from_upload(body: dict, files: Any, doc_id: str) -> dict[str, Any]:
    url = want_str(body, "model-url", 4096)
    upload = files.get("model") if files is not None else None
    if (url is None or url == "") == (upload is None):
        raise bad_request(
            "give exactly one of 'training-job-id', 'model-url' or a 'model' file part "
            "(the .caffemodel)"
        )
    key = layout.model(doc_id)
    limit = config().max_upload_bytes
    if upload is not None:
        size = blobs().put(key, _limited(upload.stream, limit))
    else:
        size = _download_model(url, key)
        # against the uploads of the caller's other requests meanwhile (the model is stored)
        check_storage_quota(size, "the model at 'model-url'", ignore=(key,))
    if not size:
        raise ApiError(422, "the model file is empty")
    labels = _labels(body.get("labels"))
    return {
        "model": key,
        "model-url": url or None,
        "model-filename": upload.filename if upload is not None else None,
        "labels": labels or [],
        "label-kind": "names" if labels else "numbers",
        LAYERS_TYPE: None,
        "transform": _transform(body.get("transform"))
        or {"scale": 1.0, "mean_value": [], "crop_size": 0},
        "image-loading": {},
    }


def _download_model(url: str, key: str) -> int:
    """Download `model-url` into the blob `key` (in a child, see request_fetch): 422 naming
    the field when it fails, 413 naming the quota when it would not fit in the caller's
    stored-bytes quota (the download stops there)."""
    policy = request_policy(total=REQUEST_MODEL_FETCH_TIMEOUT)
    room = storage_room()
    quota_binds = room is not None and room < policy.max_bytes
    if quota_binds:
        policy.max_bytes = room
    try:
        return fetch_into_blob(url, key, policy)
    except TooLarge as exc:
        if quota_binds:
            size = exc.size if exc.size is not None else room + 1
            raise quota_error(room, size, "the model at 'model-url'") from None
        raise ApiError(422, f"'model-url': {exc}") from None
    except (FetchError, ValueError) as exc:
        raise ApiError(422, f"'model-url': {exc}") from None


class _TooLarge(ApiError):
    pass


def _limited(stream: Any, limit: int):
    total = 0
    while chunk := stream.read(1 << 16):
        total += len(chunk)
        if total > limit:
            raise _TooLarge(413, f"the model is larger than the upload limit of {limit} bytes")
        yield chunk


# Validation -----------------------------------------------------------------------------------


def _check(
    spec: str, fields: dict[str, Any], model: dict[str, Any], fetched: bool = False
) -> dict[str, Any]:
    """Build the deploy net with the model; check input channels, size and outputs. Returns
    what the classifier document records about the net."""
    try:
        deploy = SimpleNamespace(**check_deploy_bounded(spec, model["model"], config()))
    except FormatError as exc:
        raise _format_error(exc, fetched) from None
    except DeployError as exc:
        raise ApiError(422, str(exc)) from None
    shape = deploy.input_shape
    if len(shape) != 4:
        raise ApiError(
            422,
            f"the deploy net's input {deploy.input!r} has shape {list(shape)}; "
            "an image classifier needs N x C x H x W",
        )
    channels, height, width = shape[1:]
    want = 3 if fields["color"] else 1
    if channels != want:
        raise ApiError(
            422,
            f"the deploy net's input {deploy.input!r} takes {channels} channel(s) but 'color' is "
            f"{'true' if fields['color'] else 'false'} ({want} channel(s))",
        )
    loading = model.get("image-loading") or {}
    crop = int(model["transform"].get("crop_size") or 0)
    if fields["image-width"] is None:
        fields["image-width"] = int(loading.get("new_width") or 0) or (None if crop else width)
    if fields["image-height"] is None:
        fields["image-height"] = int(loading.get("new_height") or 0) or (None if crop else height)
    if fields["image-width"] is None or fields["image-height"] is None:
        raise bad_request(
            "give 'image-width' and 'image-height': the transform crops, so the "
            "image size cannot be read from the net"
        )
    # every image is resized to this before the crop
    too_many = too_many_pixels(fields["image-width"], fields["image-height"])
    if too_many:
        raise ApiError(422, f"'image-width' x 'image-height' is {too_many}")
    if crop:
        if (height, width) != (crop, crop):
            raise ApiError(
                422,
                f"the transform crops {crop} x {crop} but the deploy net's input "
                f"is {height} x {width}",
            )
        if fields["image-width"] < crop or fields["image-height"] < crop:
            raise ApiError(
                422,
                f"images of {fields['image-width']} x {fields['image-height']} "
                f"are smaller than the crop ({crop})",
            )
    elif (fields["image-height"], fields["image-width"]) != (height, width):
        raise ApiError(
            422,
            f"'image-width' x 'image-height' is {fields['image-width']} x "
            f"{fields['image-height']} but the deploy net's input {deploy.input!r} is "
            f"{width} x {height}",
        )
    if model["label-kind"] == "names" and len(model["labels"]) > deploy.outputs:
        raise ApiError(
            422,
            f"{len(model['labels'])} labels, but the net's output "
            f"{deploy.output!r} has only {deploy.outputs} classes",
        )
    return {
        "input-blob": deploy.input,
        "input-shape": list(shape),
        "output-blob": deploy.output,
        "classes": deploy.outputs,
        "softmax-applied": deploy.applies_softmax,
    }


def _form() -> tuple[dict[str, Any], Any]:
    if request.mimetype == "multipart/form-data":
        check_storage_quota(request.content_length)
        body: dict[str, Any] = {k: request.form.get(k) for k in request.form}
        files = request.files
        unknown = sorted((set(body) - set(FIELDS)) | (set(files) - {"model", "specification"}))
        if unknown:
            raise bad_request(
                f"unknown field(s): {', '.join(unknown)}; allowed: "
                f"{', '.join(FIELDS)} and file parts model, specification"
            )
        return body, files
    from elasticthought.api.validation import json_body

    return json_body(FIELDS), None


@bp.post("")
def post_classifier():
    body, files = _form()
    spec, spec_url = _specification(body, files)
    try:
        require_finite(parse_deploy(spec), spec)  # syntax first: no model fetched if broken
    except FormatError as exc:
        raise _format_error(exc, spec_url is not None) from None
    except DeployError as exc:
        raise ApiError(422, str(exc)) from None
    fields = {
        "scale": _number(body, "scale", 255.0),
        "image-width": _number(body, "image-width", None, integer=True),
        "image-height": _number(body, "image-height", None, integer=True),
        "color": _flag(body, "color"),
        "gpu": _flag(body, "gpu"),
        RESULT_FORMAT_FIELD: parse_result_format(body.get(RESULT_FORMAT_FIELD)),
    }
    name = want_str(body, "name", 200)
    engine = _engine(body)
    doc_id = new_id("classifier", user_id())
    try:
        if body.get("training-job-id") not in (None, ""):
            if body.get("model-url") or (files is not None and "model" in files):
                raise bad_request(
                    "give 'training-job-id' or a model ('model-url' / 'model' part), not both"
                )
            for key in ("labels", "transform"):
                if body.get(key) not in (None, ""):
                    raise bad_request(f"'{key}' comes from the training job; do not give it")
            model = _from_training_job(body["training-job-id"], doc_id)
        else:
            model = _from_upload(body, files, doc_id)
        net = _check(spec, fields, model, fetched=spec_url is not None)
        doc = store().create(
            model_doc.classifier(
                user_id(),
                doc_id,
                **{
                    "name": name,
                    "specification": spec,
                    "specification-url": spec_url,
                    "training-job-id": body.get("training-job-id") or None,
                    **fields,
                    **model,
                    **net,
                    "engine": engine or model.get("engine") or DEFAULT_ENGINE,
                },
            )
        )
    except BaseException:
        blobs().delete_prefix(layout.prefix(doc_id))
        raise
    return jsonify(public(doc, INTERNAL)), 201


@bp.get("")
def list_classifiers():
    return jsonify(list_owned("classifier", INTERNAL))


@bp.get("/<doc_id>")
def get_classifier(doc_id: str):
    return jsonify(public(owned(doc_id, "classifier"), INTERNAL))


@bp.delete("/<doc_id>")
def delete_classifier(doc_id: str):
    doc = owned(doc_id, "classifier")
    busy = [
        j["_id"]
        for j in store().list("classify-job", owner=user_id(), limit=None, newest_first=False)
        if j.get("classifier-id") == doc_id and j.get(PROCESSING_STATE) in ACTIVE
    ]
    if busy:
        raise ApiError(
            409,
            f"classify job(s) {', '.join(busy)} still use this classifier: "
            "wait for them or cancel them first",
        )
    remove_document(doc)
    return "", 204


@bp.post("/<doc_id>/classify")
def classify(doc_id: str):
    return classify_request(owned(doc_id, "classifier"))


_SCALAR = {"oneOf": [{"type": "number"}, {"type": "string"}]}
_FLAG = {"oneOf": [{"type": "boolean"}, {"type": "string"}]}
_COMMON = {
    "specification": {"type": "string"},
    "specification-url": {"type": "string"},
    "training-job-id": {"type": "string"},
    "model-url": {"type": "string"},
    "scale": _SCALAR,
    "image-width": _SCALAR,
    "image-height": _SCALAR,
    "color": _FLAG,
    "gpu": _FLAG,
    "name": {"type": "string"},
    "engine": {"type": "string", "enum": list(ENGINE_NAMES)},
    RESULT_FORMAT_FIELD: {"type": "string", "enum": list(RESULT_FORMATS)},
}
_TRANSFORM = obj(
    {
        "scale": {"type": "number"},
        "mean_value": {"type": "array", "items": {"type": "number"}},
        "crop_size": {"type": "integer"},
    }
)
OPENAPI_PATHS = resource(
    "classifiers",
    "classifier",
    {
        "required": True,
        "content": {
            "application/json": {
                "schema": obj(
                    {
                        **_COMMON,
                        "labels": {"type": "array", "items": {"type": "string"}},
                        "transform": _TRANSFORM,
                    }
                )
            },
            "multipart/form-data": {
                "schema": obj(
                    {
                        **_COMMON,
                        "model": {"type": "string", "format": "binary"},
                        "labels": {"type": "string"},
                        "transform": {"type": "string"},
                    }
                )
            },
        },
    },
    "a classifier: deploy prototxt + a finished training job, or a model with its labels",
)
OPENAPI_PATHS["/classifiers/{doc_id}/classify"] = {
    "parameters": [ID_PARAM],
    "post": op(
        "classify images (multipart `urls` and `files`, repeatable): queues a classify job; "
        "`?wait=true` answers its results (waits up to 60 s)",
        {"201": json_response("the classify job")},
        body={
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": obj(
                        {
                            "urls": {"type": "array", "items": {"type": "string"}},
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            },
                        }
                    )
                },
                "application/json": {
                    "schema": obj({"urls": {"type": "array", "items": {"type": "string"}}})
                },
            },
        },
        params=[
            {"name": "wait", "in": "query", "schema": {"type": "boolean"}},
            {"name": "timeout", "in": "query", "schema": {"type": "number", "minimum": 0}},
            FORMAT_QUERY,
        ],
        errors=(400, 401, 404, 413, 422),
    ),
}
