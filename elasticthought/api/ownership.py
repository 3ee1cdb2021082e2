"""Whose documents a request may see: the caller's own, looked up by id (another user's answers
exactly like a missing one), listed, and shown without internal fields."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import g

from elasticthought.api.errors import ApiError, not_found
from elasticthought.api.services import store
from elasticthought.api.validation import pagination
from elasticthought.documents.fields import USER_ID
from elasticthought.store.base import Doc, NotFound


def user_id() -> str:
    return g.et_user["_id"]


def owned(doc_id: str, doc_type: str) -> Doc:
    """The caller's document of `doc_type`, else 404 (another user's looks exactly missing)."""
    what = doc_type.replace("-", " ")
    if not isinstance(doc_id, str) or len(doc_id) > 512 or not doc_id.startswith(doc_type + ":"):
        raise not_found(what, str(doc_id)[:200])
    try:
        doc = store().get(doc_id)
    except NotFound:
        raise not_found(what, doc_id) from None  # other store errors: app._unexpected's 503
    if doc.get("type") != doc_type or doc.get(USER_ID) != user_id():
        raise not_found(what, doc_id)
    return doc


def referenced(doc_id: str, doc_type: str, field: str) -> Doc:
    """The caller's document of `doc_type` that the request's `field` names; 422 (not 404: the
    route exists) when there is none."""
    try:
        return owned(doc_id, doc_type)
    except ApiError as exc:
        if exc.code != 404:
            raise
        what = doc_type.replace("-", " ")
        raise ApiError(422, f"'{field}': no {what} with id {doc_id!r}") from None


def public(doc: Doc, hidden: Iterable[str] = ()) -> dict[str, Any]:
    """A document as the API shows it: `id` added, internal fields removed."""
    out = {k: v for k, v in doc.items() if k not in set(hidden)}
    out["id"] = doc["_id"]
    return out


def list_owned(doc_type: str, hidden: Iterable[str] = ()) -> dict[str, Any]:
    limit, skip = pagination()
    docs = store().list(doc_type, owner=user_id(), limit=limit, skip=skip, newest_first=True)
    docs = [d for d in docs if d.get(USER_ID) == user_id()]
    return {"items": [public(d, hidden) for d in docs], "limit": limit, "skip": skip}
