"""/datafiles: a .tar.gz from a URL (fetched by a job) or a multipart upload (streamed to the
blob store); a datafile job then validates it."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from elasticthought.api.auth import require_auth
from elasticthought.api.deletion import delete_unless_used, dependents
from elasticthought.api.errors import ApiError, bad_request
from elasticthought.api.openapi import obj, resource
from elasticthought.api.ownership import list_owned, owned, public, user_id
from elasticthought.api.pending import add_reasons, with_reason
from elasticthought.api.quotas import check_queue_quota, check_storage_quota, submit_job
from elasticthought.api.services import blobs, config
from elasticthought.api.validation import (
    check_fields,
    json_body,
    load_json,
    vet_url,
)
from elasticthought.blobs import layout
from elasticthought.documents import model
from elasticthought.documents.fields import DATAFILE, INTERNAL, LAYERS_TYPE, LAYERS_TYPES
from elasticthought.fetch import FetchError
from elasticthought.store.base import new_id

bp = Blueprint("datafiles", __name__, url_prefix="/datafiles")
bp.before_request(require_auth)

BACKENDS = ("LEVELDB", "LMDB")
FIELDS = ("url", LAYERS_TYPE, "layers_data_param")
FORM_FIELDS = (LAYERS_TYPE, "layers_data_param", "backend")


def check_source_url(url: object) -> str:
    """Vet a user-given URL now (form, scheme, address) so bad ones fail at once with 422."""
    if not isinstance(url, str):
        raise bad_request("'url' must be a string")
    try:
        vet_url(url)
    except FetchError as exc:
        raise ApiError(422, f"url refused: {exc}") from None
    return url


def _kind(layers_type: object, param: object) -> tuple[str, dict]:
    if layers_type is None:
        layers_type = "IMAGE_DATA"
    if not isinstance(layers_type, str) or layers_type.upper() not in LAYERS_TYPES:
        raise bad_request(f"'layers_type' must be one of {', '.join(LAYERS_TYPES)}")
    layers_type = layers_type.upper()
    if param is None:
        param = {}
    if not isinstance(param, dict):
        raise bad_request('\'layers_data_param\' must be an object like {"backend": "LMDB"}')
    check_fields(param, ("backend",), where="layers_data_param")
    backend = param.get("backend", "LEVELDB")
    if not isinstance(backend, str) or backend.upper() not in BACKENDS:
        raise bad_request(f"'layers_data_param.backend' must be one of {', '.join(BACKENDS)}")
    return layers_type, {"backend": backend.upper()}


def _new_doc(layers_type: str, param: dict, **extra) -> dict:
    doc_id = new_id(DATAFILE, user_id())
    archive = layout.datafile_archive(doc_id)
    return model.datafile(user_id(), doc_id, layers_type, param, archive, **extra)


@bp.post("")
def post_datafile():
    check_queue_quota()
    if request.mimetype == "multipart/form-data":
        check_storage_quota(request.content_length)
        return _upload()
    body = json_body(FIELDS, ("url",))
    layers_type, param = _kind(body.get(LAYERS_TYPE), body.get("layers_data_param"))
    url = check_source_url(body["url"])
    doc = submit_job(_new_doc(layers_type, param, url=url, uploaded=False))
    return jsonify(public(doc, INTERNAL)), 201


def _upload():
    form = request.form
    unknown = sorted(set(form) - set(FORM_FIELDS))
    files = request.files
    unknown += sorted(set(files) - {"file"})
    if unknown:
        raise bad_request(
            f"unknown field(s): {', '.join(unknown)}; allowed: file, {', '.join(FORM_FIELDS)}"
        )
    if "file" not in files or len(files.getlist("file")) != 1:
        raise bad_request("multipart upload needs exactly one 'file' part (the .tar.gz)")
    param = form.get("layers_data_param")
    if param is not None:
        param = load_json(param, "'layers_data_param'")
    if form.get("backend") is not None:
        if param is not None:
            raise bad_request("give 'backend' or 'layers_data_param', not both")
        param = {"backend": form["backend"]}
    layers_type, param = _kind(form.get(LAYERS_TYPE), param)
    upload = files["file"]
    doc = _new_doc(layers_type, param, url=None, uploaded=True, filename=upload.filename or "")
    limit = config().max_upload_bytes
    try:
        size = blobs().put(doc["archive"], _limited(upload.stream, limit))
    except _TooLarge:
        blobs().delete(doc["archive"])
        raise ApiError(413, f"upload is larger than the limit of {limit} bytes") from None
    if size == 0:
        blobs().delete(doc["archive"])
        raise bad_request("the uploaded file is empty")
    doc["size"] = size
    doc = submit_job(doc)
    return jsonify(public(doc, INTERNAL)), 201


class _TooLarge(Exception):
    pass


def _limited(stream, limit: int):
    total = 0
    while chunk := stream.read(1 << 16):
        total += len(chunk)
        if total > limit:
            raise _TooLarge()
        yield chunk


@bp.get("")
def list_datafiles():
    page = list_owned("datafile", INTERNAL)
    add_reasons(page["items"])
    return jsonify(page)


@bp.get("/<doc_id>")
def get_datafile(doc_id: str):
    doc = owned(doc_id, "datafile")
    return jsonify(with_reason(public(doc, INTERNAL), doc))


@bp.delete("/<doc_id>")
def delete_datafile(doc_id: str):
    doc = owned(doc_id, "datafile")
    users = dependents("dataset", "datafile-id", doc_id)
    return delete_unless_used(doc, users, "datafile is used by dataset(s)")


_KIND = {"type": "string", "enum": list(LAYERS_TYPES)}
_PARAM = obj({"backend": {"type": "string", "enum": list(BACKENDS)}})
OPENAPI_PATHS = resource(
    "datafiles",
    "datafile",
    {
        "required": True,
        "content": {
            "application/json": {
                "schema": obj(
                    {"url": {"type": "string"}, LAYERS_TYPE: _KIND, "layers_data_param": _PARAM},
                    ["url"],
                )
            },
            "multipart/form-data": {
                "schema": obj(
                    {
                        "file": {"type": "string", "format": "binary"},
                        LAYERS_TYPE: _KIND,
                        "backend": {"type": "string", "enum": list(BACKENDS)},
                        "layers_data_param": {"type": "string"},
                    },
                    ["file"],
                )
            },
        },
    },
    "a datafile from a URL (JSON) or an uploaded .tar.gz (multipart `file`)",
)
