"""/users: sign-up (open or admin-only), one's own account, password change, deletion."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from elasticthought.api.auth import authenticate, user_doc_id
from elasticthought.api.errors import ApiError, bad_request
from elasticthought.api.login_throttle import check_login
from elasticthought.api.openapi import ID_PARAM, PAGE_PARAMS, json_response, obj, op
from elasticthought.api.ownership import public, user_id
from elasticthought.api.passwords import hash_password, verify_password
from elasticthought.api.services import config, store
from elasticthought.api.validation import json_body, pagination, want_str
from elasticthought.documents import model
from elasticthought.documents.fields import USER_ID
from elasticthought.store.base import Conflict, Doc, NotFound, id_prefix
from elasticthought.store.syncgateway import (
    deprovision_user,
    provision_existing_users,
    provision_user,
)

bp = Blueprint("users", __name__, url_prefix="/users")

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # always fullmatch
EMAIL = re.compile(r"[^@\s]{1,200}@[^@\s]{1,200}")  # always fullmatch
HIDDEN = ("password-hash", "_rev")
#: Resource types a user may own; a user who still owns one cannot be deleted.
OWNED_TYPES = ("datafile", "dataset", "solver", "training-job", "classifier", "classify-job")


def _check_password(password: str | None) -> str:
    shortest = config().min_password_length  # --min-password-length
    if password is None or not shortest <= len(password) <= 1024:
        raise bad_request(f"'password' must be a string of {shortest} to 1024 characters")
    return password


def _reserve_username(st, username: str) -> None:
    """Create the username's key (case-insensitive); Conflict when another user, whose name
    differs at most in case, holds it. A key naming this very username (its user document
    not written, say after a crash) is kept for it."""
    key = model.username_key(username)
    try:
        st.create(key)
    except Conflict:
        try:
            holder = st.get(key["_id"]).get(USER_ID)
        except NotFound:
            holder = None
        if holder != key[USER_ID]:
            raise


def _release_username(st, username: str, owner: str) -> None:
    """Delete the username's key when it names `owner`."""
    try:
        key = st.get(model.username_key_id(username))
        if key.get(USER_ID) == owner:
            st.delete(key["_id"], key["_rev"])
    except (NotFound, Conflict):
        pass


def create_user(username: str, password: str, email: str = "", admin: bool = False) -> Doc:
    """The new user; Conflict when the name, or one that differs from it only in case, is
    taken."""
    st = store()
    _reserve_username(st, username)
    try:
        return st.create(model.user(username, email, admin, hash_password(password)))
    except Conflict:
        raise  # the user exists: the key names it
    except Exception:
        _release_username(st, username, user_doc_id(username))
        raise


def bootstrap_admin(st, username: str, password: str) -> None:
    """Create (or reset the password of) the configured admin user."""
    if not username or not password:
        return
    doc_id = user_doc_id(username)
    try:
        doc = st.get(doc_id)
    except NotFound:
        doc = None
    if doc is None:
        try:
            _reserve_username(st, username)
        except Conflict:
            pass  # the configured admin is created even when a look-alike name exists
        try:
            st.create(model.user(username, "", True, hash_password(password)))
        except Conflict:
            pass
        return
    if not doc.get("admin") or not verify_password(password, doc.get("password-hash", "")):

        def change(d: Doc) -> None:
            d["admin"] = True
            d["password-hash"] = hash_password(password)

        st.modify(doc_id, change)


@bp.post("")
def post_user():
    body = json_body(("username", "email", "password"), ("username", "password"))
    caller = authenticate(optional=True)
    if not config().open_signup and not (caller and caller.get("admin")):
        raise ApiError(403, "sign-up is closed: only an admin can create users")
    username = want_str(body, "username", 64)
    if not USERNAME.fullmatch(username or ""):
        raise bad_request(
            "'username' must be 1-64 characters of letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    email = want_str(body, "email", 400) or ""
    if email and not EMAIL.fullmatch(email):
        raise bad_request("'email' is not an e-mail address")
    password = _check_password(want_str(body, "password", 1024))
    try:
        doc = create_user(username, password, email)
    except Conflict:
        raise ApiError(
            409, f"username {username!r} is taken (usernames are unique whatever their case)"
        ) from None
    provision_user(store(), username)  # its Sync Gateway user, when the store is one
    return jsonify(public(doc, HIDDEN)), 201


def _self(doc_id: str) -> Doc:
    authenticate()
    if doc_id != user_id():
        raise ApiError(404, f"no user with id {doc_id!r}")
    return store().get(doc_id)


@bp.get("")
def list_users():
    authenticate()
    limit, skip = pagination()
    me = store().get(user_id())
    if me.get("admin"):
        docs = store().list_prefix(id_prefix("user"), limit=limit, skip=skip)
        items = [public(d, HIDDEN) for d in docs if d.get("type") == "user"]
    else:
        items = [public(me, HIDDEN)][skip : skip + limit]
    return jsonify({"items": items, "limit": limit, "skip": skip})


@bp.get("/me")
def get_me():
    authenticate()
    return jsonify(public(store().get(user_id()), HIDDEN))


@bp.get("/<doc_id>")
def get_user(doc_id: str):
    return jsonify(public(_self(doc_id), HIDDEN))


@bp.post("/<doc_id>/password")
def change_password(doc_id: str):
    _self(doc_id)
    body = json_body(("current-password", "password"), ("current-password", "password"))
    current = want_str(body, "current-password", 1024) or ""
    password = _check_password(want_str(body, "password", 1024))
    doc = store().get(doc_id)
    stored = doc.get("password-hash", "")
    username = str(doc.get("username") or doc_id)
    address = request.remote_addr or ""
    if not check_login(address, username, lambda: verify_password(current, stored)):
        raise ApiError(422, "'current-password' is wrong")
    new_hash = hash_password(password)

    def change(d: Doc) -> None:
        d["password-hash"] = new_hash

    doc = store().modify(doc_id, change)
    _revoke_tokens(doc_id)  # a changed password ends every session made with the old one
    return jsonify(public(doc, HIDDEN))


def _revoke_tokens(owner: str) -> None:
    """Delete every API token of `owner`."""
    for token in store().list("token", owner=owner, limit=None):
        try:
            store().delete(token["_id"], token["_rev"])
        except (NotFound, Conflict):
            pass


@bp.delete("/<doc_id>")
def delete_user(doc_id: str):
    doc = _self(doc_id)
    for doc_type in OWNED_TYPES:
        if store().list(doc_type, owner=doc_id, limit=1):
            raise ApiError(409, f"user still owns {doc_type} documents: delete them first")
    _revoke_tokens(doc_id)
    store().delete(doc["_id"], doc["_rev"])
    _release_username(store(), doc["username"], doc["_id"])
    deprovision_user(store(), doc["username"])
    return "", 204


_USER_BODY = obj(
    {
        "username": {"type": "string", "pattern": f"^{USERNAME.pattern}$", "maxLength": 64},
        "email": {"type": "string", "maxLength": 400},
        "password": {"type": "string", "minLength": 8, "maxLength": 1024},
    },
    ["username", "password"],
)
OPENAPI_PATHS = {
    "/users": {
        "post": {
            **op(
                "sign up (open unless sign-up is closed; then admin only)",
                {"201": json_response("the new user (no password hash)")},
                body=_USER_BODY,
                errors=(400, 401, 403, 409),
            ),
            "security": [{}, {"basic": []}, {"token": []}],
        },
        "get": op(
            "one's own user (an admin: every user)",
            {"200": json_response("a page", {"$ref": "#/components/schemas/Page"})},
            params=PAGE_PARAMS,
            errors=(400, 401),
        ),
    },
    "/users/me": {"get": op("the caller's user", {"200": json_response("user")}, errors=(401,))},
    "/users/{doc_id}": {
        "parameters": [ID_PARAM],
        "get": op("one's own user", {"200": json_response("user")}),
        "delete": op(
            "delete one's own user (409 while it owns resources)",
            {"204": {"description": "deleted"}},
            errors=(401, 404, 409),
        ),
    },
    "/users/{doc_id}/password": {
        "parameters": [ID_PARAM],
        "post": op(
            "change one's own password",
            {"200": json_response("user")},
            body=obj(
                {
                    "current-password": {"type": "string", "maxLength": 1024},
                    "password": {"type": "string", "minLength": 8, "maxLength": 1024},
                },
                ["current-password", "password"],
            ),
            errors=(400, 401, 404, 422),
        ),
    },
}


@bp.record_once
def _bootstrap(state) -> None:
    """Create the configured admin when the app is built."""
    from elasticthought.api.app import EXTENSION

    services = state.app.extensions[EXTENSION]
    bootstrap_admin(services.store, services.config.admin_user, services.config.admin_password)
    provision_existing_users(services.store)
