"""Sync Gateway users for ElasticThought users (the seed's clients read their documents from
Sync Gateway: PouchDB in a browser, Couchbase Lite on a phone).

When the document store is Sync Gateway (its admin port answers `vendor.name` "Couchbase Sync
Gateway" at the server root), every API user gets a Sync Gateway user of the same name through
the admin REST API (`PUT /{db}/_user/{name}`: 201 created, 200 updated; `DELETE` 200; 404
unknown). The sync function (docker/sync-function.js) puts each document in its owner's channel
`user.<name>` and grants only that user read access to it.

How a user authenticates to Sync Gateway: ElasticThought never stores or forwards the user's API
password. Sign-up creates the Sync Gateway user with a random password nobody knows; the user
asks the API for a sync credential (`POST /sync-gateway/credentials`), and the service sets a
fresh random secret as that user's Sync Gateway password and answers it once. Sync Gateway keeps
only its own (bcrypt) hash of it; ElasticThought keeps nothing. Asking again rotates it (the old
one stops working); deleting the API user deletes the Sync Gateway user. The credential only
reads (the sync function refuses writes from users), and does not open the REST API.

Users that exist before the store is Sync Gateway (or whose provisioning failed) are created at
start-up by `provision_existing_users`.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any
from urllib.parse import quote

import requests

from elasticthought.store.base import Store, StoreError, id_prefix

log = logging.getLogger(__name__)

VENDOR = "Couchbase Sync Gateway"
#: The channel prefix of the sync function: user `alice` reads channel `user.alice`.
CHANNEL_PREFIX = "user."
SECRET_BYTES = 32
TIMEOUT = (5.0, 30.0)
USER_DOC_TYPE = "user"


def owner_channel(username: str) -> str:
    """The Sync Gateway channel holding `username`'s documents."""
    return CHANNEL_PREFIX + username


class SyncGatewayError(StoreError):
    """A Sync Gateway admin call failed; the message says which and why."""


class SyncGatewayUsers:
    """The Sync Gateway users of one database, through the admin REST API of `store`."""

    def __init__(self, db_url: str, auth: tuple[str, str] | None, db_name: str) -> None:
        self.db_url = db_url.rstrip("/")
        self.db_name = db_name
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json"})
        if auth:
            self.session.auth = auth

    def _user_url(self, username: str) -> str:
        return f"{self.db_url}/_user/{quote(username, safe='')}"

    def _call(self, method: str, username: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, self._user_url(username), timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise SyncGatewayError(
                f"Sync Gateway {method} _user/{username} failed: {type(exc).__name__}"
            ) from None

    @staticmethod
    def _fail(what: str, response: requests.Response) -> SyncGatewayError:
        try:
            body = response.json()
            reason = body.get("reason") or body.get("error") or ""
        except ValueError:
            reason = response.text[:200]
        return SyncGatewayError(f"Sync Gateway {what}: HTTP {response.status_code} {reason}")

    def exists(self, username: str) -> bool:
        response = self._call("GET", username)
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise self._fail(f"reading user {username!r}", response)
        return True

    def set_password(self, username: str) -> str:
        """Create or update the user with a fresh random password; return the password."""
        password = secrets.token_urlsafe(SECRET_BYTES)
        response = self._call("PUT", username, json={"name": username, "password": password})
        if response.status_code not in (200, 201):
            raise self._fail(f"setting user {username!r}", response)
        return password

    def ensure(self, username: str) -> bool:
        """Create the user (with a password nobody knows) unless it exists; True if created."""
        if self.exists(username):
            return False
        self.set_password(username)
        return True

    def delete(self, username: str) -> None:
        response = self._call("DELETE", username)
        if response.status_code not in (200, 404):
            raise self._fail(f"deleting user {username!r}", response)


_found: dict[str, SyncGatewayUsers | None] = {}
_found_lock = threading.Lock()


def is_sync_gateway(server_url: str, auth: tuple[str, str] | None) -> bool | None:
    """Whether the server root answers as Sync Gateway (`vendor.name`); None when it does not
    answer (unknown: ask again later)."""
    try:
        response = requests.get(server_url + "/", auth=auth, timeout=TIMEOUT)
    except requests.RequestException:
        return None
    try:
        vendor = response.json().get("vendor") or {}
    except (ValueError, AttributeError):
        return False
    return isinstance(vendor, dict) and vendor.get("name") == VENDOR


def users_of(store: Store) -> SyncGatewayUsers | None:
    """The Sync Gateway users of `store`'s database, or None when `store` is not Sync Gateway
    or does not answer (a definite answer is remembered per store URL)."""
    from elasticthought.store.couch import CouchStore

    if not isinstance(store, CouchStore):
        return None
    with _found_lock:
        if store.url in _found:
            return _found[store.url]
    auth = store._creds  # the admin port's credentials, when the URL carries any
    answer = is_sync_gateway(store.server_url, auth)
    found = SyncGatewayUsers(store.db_url, auth, store.db_name) if answer else None
    if answer is not None:
        with _found_lock:
            _found[store.url] = found
    return found


def provision_user(store: Store, username: str) -> None:
    """Give a new API user their Sync Gateway user (a no-op on other stores). A failure is
    logged, not raised: sign-up works, and start-up or a credential request retries."""
    try:
        users = users_of(store)
        if users is not None:
            users.set_password(username)
    except StoreError as exc:
        log.warning("Sync Gateway user %r not created now (%s): retried later", username, exc)


def deprovision_user(store: Store, username: str) -> None:
    """Delete the Sync Gateway user of a deleted API user (a no-op on other stores)."""
    try:
        users = users_of(store)
        if users is not None:
            users.delete(username)
    except StoreError as exc:
        log.warning("Sync Gateway user %r not deleted (%s)", username, exc)


def provision_existing_users(store: Store) -> int:
    """Create the missing Sync Gateway users of every API user; return how many were made."""
    users = users_of(store)
    if users is None:
        return 0
    made = 0
    try:
        for doc in store.list_prefix(id_prefix(USER_DOC_TYPE), limit=None):
            name = doc.get("username")
            if doc.get("type") == USER_DOC_TYPE and isinstance(name, str) and name:
                made += users.ensure(name)
    except StoreError as exc:
        log.warning("provisioning Sync Gateway users stopped: %s", exc)
    if made:
        log.info("created %d Sync Gateway user(s)", made)
    return made
