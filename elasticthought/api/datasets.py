"""/datasets: split one datafile by percentage per label, or pair a training and a testing
datafile; a dataset job builds the splits (see `elasticthought.jobs.layout`)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from elasticthought.api.auth import require_auth
from elasticthought.api.common import (
    INTERNAL,
    ApiError,
    bad_request,
    check_fields,
    delete_unless_used,
    dependents,
    json_body,
    list_owned,
    now,
    owned,
    public,
    referenced,
    store,
    user_id,
    want_bool,
    want_str,
)
from elasticthought.api.openapi import obj, resource
from elasticthought.jobs.split import share
from elasticthought.store.base import new_id

bp = Blueprint("datasets", __name__)
bp.before_request(require_auth)

SPLIT_FIELDS = ("datafile-id", "split-percentage")
UNUSABLE = ("failed", "canceled")
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
    if doc.get("processing-state") in UNUSABLE:
        reason = doc.get("processing-log") or ""
        raise ApiError(
            422, f"datafile {doc_id} is {doc['processing-state']}: {reason}".rstrip(": ")
        )
    return doc


@bp.post("/datasets")
def post_dataset():
    body = json_body(("training", "testing", "compute-mean", "name"), ("training", "testing"))
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
        if test_df.get("layers_type") != train_df.get("layers_type"):
            raise ApiError(
                422,
                f"training datafile is {train_df.get('layers_type')} but testing datafile is "
                f"{test_df.get('layers_type')}",
            )
        tb = (train_df.get("layers_data_param") or {}).get("backend")
        sb = (test_df.get("layers_data_param") or {}).get("backend")
        if train_df.get("layers_type") == "DATA" and tb != sb:
            raise ApiError(422, f"training datafile is {tb} but testing datafile is {sb}")
    doc = store().create(
        {
            "_id": new_id("dataset", user_id()),
            "type": "dataset",
            "user-id": user_id(),
            "created-at": now(),
            "training": training,
            "testing": testing,
            "compute-mean": compute_mean,
            "name": name,
            "layers_type": train_df.get("layers_type"),
            "processing-state": "pending",
            "processing-log": "",
        }
    )
    return jsonify(public(doc, INTERNAL)), 201


@bp.get("/datasets")
def list_datasets():
    return jsonify(list_owned("dataset", INTERNAL))


@bp.get("/datasets/<doc_id>")
def get_dataset(doc_id: str):
    return jsonify(public(owned(doc_id, "dataset"), INTERNAL))


@bp.delete("/datasets/<doc_id>")
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
