"""One constructor per document type, and `submit()`: the one way a job is queued.

A constructor returns the new document (a dict) with its id, type, owner and creation time;
job documents also start `pending` with an empty `processing-log`, which is what makes a
worker pick them off the changes feed. The caller stores it: `submit(store, doc)` for a job,
`store.create(doc)` for the rest.
"""

from __future__ import annotations

import time
from typing import Any

from elasticthought.documents import fields as f
from elasticthought.documents.states import PENDING
from elasticthought.engine.registry import DEFAULT_ENGINE
from elasticthought.store.base import Doc, Store, new_id


def now() -> float:
    """A document timestamp: seconds since the epoch, to the millisecond."""
    return round(time.time(), 3)


def user_doc_id(username: str) -> str:
    """A user's document id (one per username)."""
    return f"{f.USER}:{username}"


def username_key_id(username: str) -> str:
    """The id of the document that reserves a username whatever its case ("Bob" = "bob")."""
    return f"{f.USERNAME_KEY}:{username.casefold()}"


def username_key(username: str) -> Doc:
    """Reserves `username` (case-insensitively) for the user document it names."""
    doc_id = user_doc_id(username)
    return {**_head(f.USERNAME_KEY, doc_id, username_key_id(username)), f.CREATED_AT: now()}


def _head(doc_type: str, owner: str, doc_id: str | None) -> Doc:
    return {f.ID: doc_id or new_id(doc_type, owner), f.TYPE: doc_type, f.USER_ID: owner}


def _job_state() -> Doc:
    """What makes a document a new job: `pending`, nothing logged yet."""
    return {f.PROCESSING_STATE: PENDING, f.PROCESSING_LOG: ""}


def user(username: str, email: str, admin: bool, password_hash: str) -> Doc:
    doc_id = user_doc_id(username)
    return {
        **_head(f.USER, doc_id, doc_id),
        "username": username,
        "email": email,
        "admin": admin,
        "password-hash": password_hash,
        f.CREATED_AT: now(),
    }


def token(owner: str, doc_id: str, name: str, expires_at: float, secret_hash: str) -> Doc:
    return {
        **_head(f.TOKEN, owner, doc_id),
        "name": name,
        f.CREATED_AT: now(),
        "expires-at": expires_at,
        "secret-hash": secret_hash,
    }


def datafile(
    owner: str, doc_id: str, layers_type: str, param: dict, archive: str, **extra: Any
) -> Doc:
    """A datafile job: download (or take the upload of) one archive into `archive`."""
    return {
        **_head(f.DATAFILE, owner, doc_id),
        f.CREATED_AT: now(),
        f.LAYERS_TYPE: layers_type,
        "layers_data_param": param,
        **_job_state(),
        "archive": archive,
        **extra,
    }


def dataset(
    owner: str,
    training: dict,
    testing: dict,
    compute_mean: bool,
    layers_type: str | None,
    name: str = "",
) -> Doc:
    """A dataset job: split datafiles into training and testing archives; `name` is the
    user's free text."""
    return {
        **_head(f.DATASET, owner, None),
        f.CREATED_AT: now(),
        "training": training,
        "testing": testing,
        "compute-mean": compute_mean,
        "name": name,
        f.LAYERS_TYPE: layers_type,
        **_job_state(),
    }


def solver(owner: str, dataset_id: str, texts: dict[str, str | None], layers_type: str) -> Doc:
    """A solver: `texts` holds specification(-net) and their -url fields."""
    return {
        **_head(f.SOLVER, owner, None),
        f.CREATED_AT: now(),
        "dataset-id": dataset_id,
        **texts,
        f.LAYERS_TYPE: layers_type,
    }


def training_job(
    owner: str,
    doc_id: str,
    solver_id: str,
    dataset_id: str | None,
    engine: str,
    gpu: bool | int,
    priority: int,
) -> Doc:
    """A training job (optional fields such as `weights` and `max-runtime` are added after)."""
    return {
        **_head(f.TRAINING_JOB, owner, doc_id),
        f.CREATED_AT: now(),
        "solver-id": solver_id,
        "dataset-id": dataset_id,
        f.ENGINE: engine,
        f.GPU: gpu,
        "priority": priority,
        **_job_state(),
    }


def classifier(owner: str, doc_id: str, **fields: Any) -> Doc:
    """A classifier: a deploy net with its model (`fields` as the API validated them)."""
    return {**_head(f.CLASSIFIER, owner, doc_id), f.CREATED_AT: now(), **fields}


def classify_job(
    owner: str, doc_id: str, classifier_doc: Doc, images: list[dict], result_format: str
) -> Doc:
    """A classify job: `images` ({"name", "url"}, {"name", "blob", "size"}, or {"name", "size"}
    for an upload the warm inference process answered without storing it) through one
    classifier, on its engine; `result_format` is how its results are answered by default."""
    return {
        **_head(f.CLASSIFY_JOB, owner, doc_id),
        f.CREATED_AT: now(),
        "classifier-id": classifier_doc[f.ID],
        f.GPU: bool(classifier_doc.get(f.GPU)),
        f.ENGINE: classifier_doc.get(f.ENGINE) or DEFAULT_ENGINE,
        **_job_state(),
        f.RESULT_FORMAT: result_format,
        "image-count": len(images),
        "images": images,
    }


def answered(doc: Doc, state: str, started: float, worker: str, fields: dict[str, Any]) -> Doc:
    """A new job document answered at once, without the queue (a warm classification):
    `state` with the result `fields`, as a worker would have written it."""
    return {
        **doc,
        **fields,
        f.PROCESSING_STATE: state,
        f.WORKER_ID: worker,
        f.ATTEMPTS: 1,
        f.STARTED_AT: started,
        f.FINISHED_AT: now(),
    }


def submit(store: Store, doc: Doc) -> Doc:
    """Queue a job document made by a constructor here: store it `pending` (workers follow
    the changes feed). Returns the stored document."""
    if doc.get(f.PROCESSING_STATE) != PENDING:
        raise ValueError(f"{doc.get(f.ID)} is not a new job document")
    return store.create(doc)
