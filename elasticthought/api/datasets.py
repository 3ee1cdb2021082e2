"""/datasets: split one datafile by percentage per label, or pair a training and a testing
datafile; a dataset job builds the splits (see `elasticthought.blobs.layout`)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from elasticthought.api.auth import require_auth
from elasticthought.api.deletion import delete_unless_used, dependents
from elasticthought.api.errors import ApiError, bad_request
from elasticthought.api.openapi import obj, resource
from elasticthought.api.ownership import list_owned, owned, public, referenced, user_id
from elasticthought.api.pending import add_reasons, with_reason
from elasticthought.api.quotas import check_queue_quota, submit_job
from elasticthought.api.seed_compat import DATASET_ALIASES, fold_aliases
from elasticthought.api.validation import check_fields, json_body, want_bool, want_str
from elasticthought.documents import model
from elasticthought.documents.fields import (
    DATA,
    INTERNAL,
    LAYERS_TYPE,
    PROCESSING_LOG,
    PROCESSING_STATE,
)
from elasticthought.documents.split import share
from elasticthought.documents.states import UNUSABLE

bp = Blueprint("datasets", __name__, url_prefix="/datasets")
bp.before_request(require_auth)

SPLIT_FIELDS = ("datafile-id", "split-percentage")
#: An optional free-text name shown by clients (the web app); stored as given.
MAX_NAME = 200


def _split(body: dict, name: str) -> dict:
    part = body.get(name)
    if not isinstance(part, dict):
        raise bad_request(f"'{name}' must be an object with 'datafile-id' and 'split-percentage'")
    check_fields(part, SPLIT_FIELDS, ("datafile-id",), where=name)
    if not isinstance(part["datafile-id"], str):
        raise bad_request(f"'{name}.datafile-id' must be a string")
    pct = part.get("split-percentage", 0)
    if isinstance(pct, str):
        try:
            pct = float(pct)
        except ValueError:
            raise bad_request(f"'{name}.split-percentage' must be a number") from None
    if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 <= pct <= 1:
        raise bad_request(f"'{name}.split-percentage' must be a fraction from 0 to 1 (e.g. 0.7)")
    return {"datafile-id": part["datafile-id"], "split-percentage": pct}


def _datafile(doc_id: str, where: str) -> dict:
    doc = referenced(doc_id, "datafile", f"{where}.datafile-id")
    if doc.get(PROCESSING_STATE) in UNUSABLE:
        reason = doc.get(PROCESSING_LOG) or ""
        raise ApiError(422, f"datafile {doc_id} is {doc[PROCESSING_STATE]}: {reason}".rstrip(": "))
    return doc


@bp.post("")
def post_dataset():
    check_queue_quota()
    allowed = ("training", "testing", "compute-mean", "name")
    body = fold_aliases(json_body((*allowed, *DATASET_ALIASES)), DATASET_ALIASES)
    check_fields(body, allowed, ("training", "testing"))
    name = want_str(body, "name", MAX_NAME) or ""
    training = _split(body, "training")
    testing = _split(body, "testing")
    compute_mean = want_bool(body, "compute-mean")
    train_df = _datafile(training["datafile-id"], "training")
    if training["datafile-id"] == testing["datafile-id"]:
        p = share(training["split-percentage"])
        if not 0 < p < 1:
            raise bad_request(
                "splitting one datafile needs 'training.split-percentage' strictly between "
                "0 and 1 (e.g. 0.7)"
            )
        if "split-percentage" in body["testing"] and share(testing["split-percentage"]) != 1 - p:
            raise bad_request(
                "'testing.split-percentage' must be 1 - 'training.split-percentage' "
                f"({float(1 - p)}) when both name the same datafile"
            )
        testing["split-percentage"] = float(1 - p)
    else:
        if training["split-percentage"] or testing["split-percentage"]:
            raise bad_request(
                "when 'training' and 'testing' name different datafiles each is used whole: "
                "'split-percentage' must be 0"
            )
        test_df = _datafile(testing["datafile-id"], "testing")
        if test_df.get(LAYERS_TYPE) != train_df.get(LAYERS_TYPE):
            raise ApiError(
                422,
                f"training datafile is {train_df.get(LAYERS_TYPE)} but testing datafile is "
                f"{test_df.get(LAYERS_TYPE)}",
            )
        tb = (train_df.get("layers_data_param") or {}).get("backend")
        sb = (test_df.get("layers_data_param") or {}).get("backend")
        if train_df.get(LAYERS_TYPE) == DATA and tb != sb:
            raise ApiError(422, f"training datafile is {tb} but testing datafile is {sb}")
    doc = submit_job(
        model.dataset(user_id(), training, testing, compute_mean, train_df.get(LAYERS_TYPE), name),
    )
    return jsonify(public(doc, INTERNAL)), 201


@bp.get("")
def list_datasets():
    page = list_owned("dataset", INTERNAL)
    add_reasons(page["items"])
    return jsonify(page)


@bp.get("/<doc_id>")
def get_dataset(doc_id: str):
    doc = owned(doc_id, "dataset")
    return jsonify(with_reason(public(doc, INTERNAL), doc))


@bp.delete("/<doc_id>")
def delete_dataset(doc_id: str):
    doc = owned(doc_id, "dataset")
    users = dependents("solver", "dataset-id", doc_id)
    return delete_unless_used(doc, users, "dataset is used by solver(s)")


_SPLIT = obj(
    {
        "datafile-id": {"type": "string"},
        "split-percentage": {"type": "number", "minimum": 0, "maximum": 1},
    },
    ["datafile-id"],
)
OPENAPI_PATHS = resource(
    "datasets",
    "dataset",
    obj(
        {
            "training": _SPLIT,
            "testing": _SPLIT,
            "compute-mean": {"type": "boolean"},
            "name": {"type": "string", "maxLength": MAX_NAME},
        },
        ["training", "testing"],
    ),
    "split one datafile (same datafile-id, split-percentage e.g. 0.7) or pair two",
)
