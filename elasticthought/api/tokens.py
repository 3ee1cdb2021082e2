"""/tokens: API tokens with an expiry; list and revoke one's own."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify

from elasticthought.api.auth import make_token, require_auth
from elasticthought.api.errors import bad_request
from elasticthought.api.openapi import obj, resource
from elasticthought.api.ownership import list_owned, owned, public, user_id
from elasticthought.api.services import store
from elasticthought.api.validation import json_body, want_str
from elasticthought.documents import model
from elasticthought.documents.fields import TOKEN
from elasticthought.store.base import new_id

bp = Blueprint("tokens", __name__, url_prefix="/tokens")
bp.before_request(require_auth)

HIDDEN = ("secret-hash", "_rev")
DEFAULT_TTL = 30 * 24 * 3600
MAX_TTL = 366 * 24 * 3600


@bp.post("")
def post_token():
    body = json_body(("name", "expires-in"))
    name = want_str(body, "name", 200) or ""
    ttl = body.get("expires-in", DEFAULT_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 1 <= ttl <= MAX_TTL:
        raise bad_request(f"'expires-in' must be a number of seconds from 1 to {MAX_TTL}")
    doc_id = new_id(TOKEN, user_id())
    token, digest = make_token(doc_id)
    expires_at = round(time.time() + float(ttl), 3)
    doc = store().create(model.token(user_id(), doc_id, name, expires_at, digest))
    out = public(doc, HIDDEN)
    out["token"] = token
    return jsonify(out), 201


@bp.get("")
def list_tokens():
    return jsonify(list_owned("token", HIDDEN))


@bp.get("/<doc_id>")
def get_token(doc_id: str):
    return jsonify(public(owned(doc_id, "token"), HIDDEN))


@bp.delete("/<doc_id>")
def delete_token(doc_id: str):
    doc = owned(doc_id, "token")
    store().delete(doc["_id"], doc["_rev"])
    return "", 204


OPENAPI_PATHS = resource(
    "tokens",
    "token",
    obj(
        {
            "name": {"type": "string", "maxLength": 200},
            "expires-in": {"type": "number", "minimum": 1, "maximum": MAX_TTL},
        }
    ),
    "create an API token (shown once in `token`); default expiry 30 days",
)
