"""Sync Gateway users for API users (elasticthought.store.syncgateway and
POST /sync-gateway/credentials), against a live server whose store is a real PouchDB Server
behind the recorded contract of Sync Gateway's `_user` admin endpoint
(tests/support/sync_gateway_contract.py: a mock, since no Sync Gateway binary runs here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from elasticthought.store.syncgateway import SyncGatewayUsers, is_sync_gateway
from tests.support.pouchdb import PouchDBServer
from tests.support.server import LiveServer
from tests.support.sync_gateway_contract import SyncGatewayContract

pytestmark = pytest.mark.couch


@pytest.fixture
def contract(pouchdb_server: PouchDBServer) -> Iterator[SyncGatewayContract]:
    mock = SyncGatewayContract(pouchdb_server.url)
    yield mock
    mock.close()


@pytest.fixture
def db_name(pouchdb_server: PouchDBServer) -> Iterator[str]:
    name = f"sg{uuid.uuid4().hex[:12]}"
    yield name
    pouchdb_server.delete_db(name)


def sign_up(base: str, name: str, password: str) -> None:
    body = {"username": name, "password": password, "email": f"{name}@example.org"}
    response = requests.post(base + "/users", json=body, timeout=30)
    assert response.status_code == 201, response.text


def credentials(base: str, auth: tuple[str, str]) -> requests.Response:
    return requests.post(base + "/sync-gateway/credentials", auth=auth, timeout=30)


def test_user_endpoint_recorded_contract(
    contract: SyncGatewayContract, pouchdb_server: PouchDBServer, db_name: str
) -> None:
    """The `_user` calls against the recorded contract: create, read, rotate, delete."""
    assert is_sync_gateway(contract.url, None) is True
    assert is_sync_gateway(pouchdb_server.url, None) is False  # a plain CouchDB-protocol server
    assert is_sync_gateway("http://127.0.0.1:9", None) is None  # no answer: ask again later
    users = SyncGatewayUsers(contract.db_url(db_name), None, db_name)
    assert not users.exists("alice")
    assert users.ensure("alice") is True  # PUT -> 201 created
    assert users.ensure("alice") is False  # exists: untouched
    assert [m for m, _ in contract.user_calls("alice")] == ["GET", "GET", "PUT", "GET"]
    first = users.set_password("alice")  # PUT -> 200 updated
    second = users.set_password("alice")
    assert first != second and len(second) >= 40
    assert contract.check_password("alice", second) and not contract.check_password("alice", first)
    users.delete("alice")
    users.delete("alice")  # 404: already gone is fine
    assert not users.exists("alice")


def test_live_server_gives_each_user_a_sync_gateway_user(
    tmp_path: Path, contract: SyncGatewayContract, pouchdb_server: PouchDBServer, db_name: str
) -> None:
    with LiveServer(tmp_path, store=contract.db_url(db_name)) as server:
        sign_up(server.url, "alice", "alice-api-password")
        (method, body), *_ = contract.user_calls("alice")
        assert method == "PUT" and body["name"] == "alice"
        # Sync Gateway never gets the API password, and the store never holds it in clear.
        assert body["password"] != "alice-api-password"
        assert not contract.check_password("alice", "alice-api-password")
        stored = requests.get(f"{pouchdb_server.url}/{db_name}/user:alice", timeout=30).json()
        assert "alice-api-password" not in str(stored) and "password" not in stored

        # The credential: given once, works on Sync Gateway, rotates, needs the API login.
        alice = ("alice", "alice-api-password")
        got = credentials(server.url, alice)
        assert got.status_code == 201, got.text
        cred = got.json()
        assert cred["username"] == "alice" and cred["database"] == db_name
        assert cred["channel"] == "user.alice"
        assert contract.check_password("alice", cred["password"])
        again = credentials(server.url, alice).json()
        assert not contract.check_password("alice", cred["password"])
        assert contract.check_password("alice", again["password"])
        assert credentials(server.url, ("alice", "wrong")).status_code == 401
        assert (
            requests.post(server.url + "/sync-gateway/credentials", timeout=30).status_code == 401
        )
        # The service did not keep it: nothing in the store mentions the secret.
        everything = requests.get(
            f"{pouchdb_server.url}/{db_name}/_all_docs",
            params={"include_docs": "true"},
            timeout=30,
        ).text
        assert again["password"] not in everything and cred["password"] not in everything

        # Deleting the API user deletes the Sync Gateway user.
        assert (
            requests.delete(server.url + "/users/user:alice", auth=alice, timeout=30).status_code
            == 204
        )
        assert contract.user_calls("alice")[-1][0] == "DELETE"
        assert "alice" not in contract.users


def test_users_made_before_sync_gateway_are_provisioned_at_start(
    tmp_path: Path, contract: SyncGatewayContract, pouchdb_server: PouchDBServer, db_name: str
) -> None:
    # On plain CouchDB-protocol storage there is no Sync Gateway user, and no credential.
    with LiveServer(tmp_path / "plain", store=pouchdb_server.db_url(db_name)) as server:
        sign_up(server.url, "bob", "bob-api-password")
        refused = credentials(server.url, ("bob", "bob-api-password"))
        assert refused.status_code == 404 and "not Sync Gateway" in refused.json()["detail"]
    assert contract.user_calls("bob") == []
    # The same database behind Sync Gateway's admin port: bob is created at start-up.
    with LiveServer(tmp_path / "sg", store=contract.db_url(db_name)) as server:
        assert "bob" in contract.users
        assert [m for m, _ in contract.user_calls("bob")] == ["GET", "PUT"]
        got = credentials(server.url, ("bob", "bob-api-password"))
        assert got.status_code == 201 and contract.check_password("bob", got.json()["password"])
    with LiveServer(tmp_path / "sg2", store=contract.db_url(db_name)):
        # A restart finds bob and leaves his credential alone.
        assert [m for m, _ in contract.user_calls("bob")][-1] == "GET"
        assert contract.check_password("bob", got.json()["password"])
