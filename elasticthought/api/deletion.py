"""Deleting a resource: refused while other documents name it; a running job is asked to
cancel first; its blobs, its job work folder and the document go."""

from __future__ import annotations

import shutil
from typing import Any

from elasticthought.api.errors import ApiError
from elasticthought.api.ownership import user_id
from elasticthought.api.services import blobs, config, store
from elasticthought.blobs import layout
from elasticthought.documents.fields import PROCESSING_STATE
from elasticthought.documents.states import PENDING, PROCESSING
from elasticthought.queue.context import job_work_dir
from elasticthought.queue.control import request_cancel
from elasticthought.store.base import Conflict, Doc, NotFound


def dependents(doc_type: str, field: str, doc_id: str) -> list[str]:
    """Ids of the caller's documents of `doc_type` whose `field` (or nested) names `doc_id`."""
    found = []
    for doc in store().list(doc_type, owner=user_id(), limit=None, newest_first=False):
        if _mentions(doc, field, doc_id):
            found.append(doc["_id"])
    return found


def _mentions(value: Any, field: str, doc_id: str) -> bool:
    if isinstance(value, dict):
        if value.get(field) == doc_id:
            return True
        return any(_mentions(v, field, doc_id) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, field, doc_id) for v in value)
    return False


def delete_unless_used(doc: Doc, users: list[str], used_by: str) -> tuple[str, int]:
    """DELETE of a resource: 409 "`used_by` <ids>: delete them first" while the documents
    `users` still name it, else `remove_document` and 204."""
    if users:
        raise ApiError(409, f"{used_by} {', '.join(users)}: delete them first")
    remove_document(doc)
    return "", 204


def remove_document(doc: Doc) -> None:
    """Delete a resource: a running job is asked to cancel first (409 until it stopped), then
    its blobs, its job work folder and the document go."""
    what = doc.get("type", "document").replace("-", " ")
    if PROCESSING_STATE in doc:
        state = doc.get(PROCESSING_STATE)
        if state == PROCESSING:
            request_cancel(store(), doc["_id"])
            raise ApiError(
                409, f"the {what} is processing: cancel was requested; retry DELETE once it stopped"
            )
        if state == PENDING:
            request_cancel(store(), doc["_id"])
            doc = store().get(doc["_id"])
            if doc.get(PROCESSING_STATE) == PROCESSING:
                raise ApiError(409, f"the {what} just started processing: retry DELETE shortly")
    blobs().delete_prefix(layout.prefix(doc["_id"]))
    work = job_work_dir(config(), doc["_id"])
    shutil.rmtree(work, ignore_errors=True)
    try:
        store().delete(doc["_id"], doc["_rev"])
    except NotFound:
        pass
    except Conflict:
        raise ApiError(409, f"the {what} changed while being deleted: retry") from None
