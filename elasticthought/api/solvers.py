"""/solvers: a Caffe solver prototxt and its net prototxt, from URLs or inline text; validated
(line and column of a syntax error, unsupported layers, data layer kind against the dataset)
and stored as given. Rewriting sources and snapshot prefix happens per training job."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from elasticthought.api.auth import require_auth
from elasticthought.api.deletion import delete_unless_used, dependents
from elasticthought.api.errors import ApiError, bad_request
from elasticthought.api.openapi import obj, resource
from elasticthought.api.ownership import list_owned, owned, public, referenced, user_id
from elasticthought.api.request_fetch import fetch_small
from elasticthought.api.services import config, store
from elasticthought.api.validation import json_body, want_str
from elasticthought.documents import model
from elasticthought.documents.fields import (
    DATA,
    IMAGE_DATA,
    INTERNAL,
    LAYERS_TYPE,
    PROCESSING_STATE,
)
from elasticthought.documents.states import UNUSABLE
from elasticthought.engine.errors import FormatError
from elasticthought.engine.file_fields import named_files_in_net, named_files_in_solver
from elasticthought.engine.registry import CHECKING_ENGINE, get_engine
from elasticthought.fetch import FetchError
from elasticthought.limits import MAX_ITERATIONS

log = logging.getLogger(__name__)

bp = Blueprint("solvers", __name__, url_prefix="/solvers")
bp.before_request(require_auth)

FIELDS = (
    "dataset-id",
    "specification-url",
    "specification-net-url",
    "specification",
    "specification-net",
)
MAX_PROTOTXT = 1 << 20
DATA_KINDS = {"Data": DATA, "ImageData": IMAGE_DATA}
#: Dependents that block deleting a solver.
DEPENDENT_TYPES = ("training-job",)


def _text(body: dict, inline_key: str, url_key: str) -> tuple[str, str | None]:
    inline = want_str(body, inline_key, MAX_PROTOTXT)
    url = want_str(body, url_key, 4096)
    if (inline is None) == (url is None):
        raise bad_request(f"give exactly one of '{inline_key}' (text) or '{url_key}'")
    if inline is not None:
        return inline, None
    try:
        data = fetch_small(url, MAX_PROTOTXT)
    except (FetchError, ValueError) as exc:
        raise ApiError(422, f"'{url_key}': {exc}") from None
    try:
        return data.decode("utf-8"), url
    except UnicodeDecodeError:
        raise ApiError(422, f"'{url_key}': the file is not UTF-8 text") from None


def _fetched(key: str) -> bool:
    """Whether `key` names text fetched from a URL: its content is never echoed in errors
    (the URL may be a private resource only the server can read)."""
    return key.endswith("-url")


def format_error(key: str, exc: FormatError) -> ApiError:
    reason = (
        "not a valid prototxt (the fetched text is not repeated)" if _fetched(key) else exc.reason
    )
    if exc.line is not None:
        where = f"line {exc.line}" + (f", column {exc.column}" if exc.column is not None else "")
        return ApiError(422, f"'{key}' {where}: {reason}")
    return ApiError(422, f"'{key}': {reason}")


def validate_net(text: str, key: str = "specification-net") -> str:
    """Parse the net and return its data kind (IMAGE_DATA or DATA); 422 names the problem."""
    from elasticthought.engine.prototxt import parse_net, require_finite

    try:
        net = parse_net(text)
        require_finite(net, text)
    except FormatError as exc:
        raise format_error(key, exc) from None
    engine = get_engine(CHECKING_ENGINE, config())
    kinds = set()
    for number, layer in enumerate(net.layer, 1):
        refusal = engine.refusal(layer.type)
        if refusal:
            if _fetched(key):  # fetched content is never echoed
                raise ApiError(422, f"'{key}': layer {number} has an unsupported type")
            raise ApiError(422, f"'{key}': layer {layer.name!r}: {refusal}")
        if layer.type in DATA_KINDS:
            kinds.add(DATA_KINDS[layer.type])
    named = named_files_in_net(net)
    if named:
        raise ApiError(422, f"'{key}': {named[0].describe(with_names=not _fetched(key))}")
    if not kinds:
        raise ApiError(422, f"'{key}': the net has no Data or ImageData layer to feed it")
    if len(kinds) > 1:
        raise ApiError(422, f"'{key}': the net mixes Data and ImageData layers")
    return kinds.pop()


def validate_solver(text: str, key: str = "specification") -> None:
    from elasticthought.engine.prototxt import parse_solver, require_finite

    try:
        solver = parse_solver(text)
        require_finite(solver, text)
    except FormatError as exc:
        raise format_error(key, exc) from None
    named = named_files_in_solver(solver)
    if named:
        hint = " (fine-tune with the training job's 'weights')" if not named[0].layer else ""
        raise ApiError(422, f"'{key}': {named[0].describe(with_names=not _fetched(key))}{hint}")
    if solver.HasField("max_iter") and not 0 < solver.max_iter <= MAX_ITERATIONS:
        raise ApiError(
            422, f"'{key}': max_iter is {solver.max_iter}; it must be from 1 to {MAX_ITERATIONS}"
        )


@bp.post("")
def post_solver():
    body = json_body(FIELDS, ("dataset-id",))
    dataset_id = want_str(body, "dataset-id", 512) or ""
    dataset = referenced(dataset_id, "dataset", "dataset-id")
    if dataset.get(PROCESSING_STATE) in UNUSABLE:
        raise ApiError(422, f"dataset {dataset_id} is {dataset[PROCESSING_STATE]}")
    solver_text, solver_url = _text(body, "specification", "specification-url")
    net_text, net_url = _text(body, "specification-net", "specification-net-url")
    validate_solver(solver_text, "specification-url" if solver_url else "specification")
    kind = validate_net(net_text, "specification-net-url" if net_url else "specification-net")
    if kind != dataset.get(LAYERS_TYPE):
        layer = "ImageData" if kind == IMAGE_DATA else "Data"
        raise ApiError(
            422,
            f"the net reads its input with {layer} layers ({kind}) but dataset {dataset_id} "
            f"is {dataset.get(LAYERS_TYPE)}",
        )
    texts = {
        "specification-url": solver_url,
        "specification-net-url": net_url,
        "specification": solver_text,
        "specification-net": net_text,
    }
    doc = store().create(model.solver(user_id(), dataset_id, texts, kind))
    return jsonify(public(doc, INTERNAL)), 201


@bp.get("")
def list_solvers():
    return jsonify(list_owned("solver", INTERNAL))


@bp.get("/<doc_id>")
def get_solver(doc_id: str):
    return jsonify(public(owned(doc_id, "solver"), INTERNAL))


@bp.delete("/<doc_id>")
def delete_solver(doc_id: str):
    doc = owned(doc_id, "solver")
    users = [i for t in DEPENDENT_TYPES for i in dependents(t, "solver-id", doc_id)]
    return delete_unless_used(doc, users, "solver is used by")


OPENAPI_PATHS = resource(
    "solvers",
    "solver",
    obj({name: {"type": "string"} for name in FIELDS}, ["dataset-id"]),
    "a solver: solver + net prototxt, each by URL or inline text",
)
