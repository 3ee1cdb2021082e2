"""Authentication: HTTP Basic (username + password) or an API token
(`Authorization: Token <t>` or `Bearer <t>`).

A token is `et_<base64url(token document id)>.<secret>`; the token document keeps only the
SHA-256 of the secret, its expiry and its owner, so revoking = deleting that document.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

from flask import g, request

from elasticthought.api.errors import ApiError
from elasticthought.api.login_throttle import check_login
from elasticthought.api.passwords import verify_password
from elasticthought.api.services import store
from elasticthought.documents.fields import USER_ID
from elasticthought.documents.model import user_doc_id
from elasticthought.store.base import Doc, NotFound

TOKEN_PREFIX = "et_"
TOKEN_SCHEMES = ("token", "bearer")  # `Authorization: Token <t>` or `Bearer <t>`
SCHEMES = ("basic", *TOKEN_SCHEMES)
AUTH_REQUIRED = "authentication required: HTTP Basic or 'Authorization: Token ...'"


def make_token(doc_id: str) -> tuple[str, str]:
    """A new token string for the token document `doc_id` and the hash to store."""
    secret = secrets.token_urlsafe(32)
    ident = base64.urlsafe_b64encode(doc_id.encode()).decode().rstrip("=")
    return f"{TOKEN_PREFIX}{ident}.{secret}", secret_hash(secret)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail)


def _load(doc_id: str) -> Doc | None:
    try:
        return store().get(doc_id)
    except NotFound:
        return None  # other store errors: a 503 without their text (app._unexpected)


def _basic(value: str) -> Doc:
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _unauthorized("malformed Basic credentials") from None
    username, sep, password = text.partition(":")
    if not sep:
        raise _unauthorized("malformed Basic credentials: expected username:password")
    user = _load(user_doc_id(username)) if username and len(username) <= 64 else None
    if user is not None and user.get("type") != "user":
        user = None
    # An unknown user gets the same answer (and similar cost) as a wrong password: usernames
    # are not revealed. The placeholder hash matches no password.
    stored = user.get("password-hash", "") if user is not None else "scrypt$16384$8$1$00$00"
    address = request.remote_addr or ""
    if not check_login(address, username, lambda: verify_password(password, stored)):
        raise _unauthorized("wrong username or password")
    if user is None:
        raise _unauthorized("wrong username or password")
    return user


def _token(value: str) -> Doc:
    value = value.strip()
    if not value.startswith(TOKEN_PREFIX) or "." not in value or len(value) > 1024:
        raise _unauthorized("malformed token")
    ident, _, secret = value[len(TOKEN_PREFIX) :].partition(".")
    try:
        doc_id = base64.urlsafe_b64decode(ident + "=" * (-len(ident) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _unauthorized("malformed token") from None
    token = _load(doc_id) if doc_id.startswith("token:") else None
    if token is None or token.get("type") != "token":
        raise _unauthorized("unknown or revoked token")
    if not hmac.compare_digest(token.get("secret-hash", ""), secret_hash(secret)):
        raise _unauthorized("unknown or revoked token")
    expires = token.get("expires-at")
    if expires is not None and expires <= time.time():
        raise _unauthorized("token expired")
    user = _load(token[USER_ID])
    if user is None:
        raise _unauthorized("the token's user no longer exists")
    g.et_token = token
    return user


def authenticate(optional: bool = False) -> Doc | None:
    """Identify the caller from the Authorization header and keep the user in `g.et_user`."""
    header = request.headers.get("Authorization", "")
    if not header:
        if optional:
            g.et_user = None
            return None
        raise _unauthorized(AUTH_REQUIRED)
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        user = _basic(value)
    elif scheme in TOKEN_SCHEMES:
        user = _token(value)
    else:
        raise _unauthorized(f"unsupported authorization scheme {scheme!r}; use Basic or Token")
    g.et_user = user
    return user


def require_auth() -> None:
    """`before_request` hook for blueprints whose every route needs a user."""
    authenticate()
