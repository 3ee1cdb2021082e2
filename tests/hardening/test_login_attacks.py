"""Password guessing over HTTP Basic against a live `serve`: past `LOGIN_FAILURES_PER_USER`
failures for one username, or `LOGIN_FAILURES_PER_ADDRESS` for one client address, logins
answer 429 with Retry-After before the password is checked; API tokens and other users keep
working until the address itself is throttled."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from elasticthought import limits
from elasticthought.api.login_throttle import FailedLogins
from tests.api import helpers as h
from tests.support.server import LiveServer


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Its own server: the test throttles this client address there for minutes."""
    with LiveServer(tmp_path_factory.mktemp("logins"), workers=0) as srv:
        yield srv


def _get(server: LiveServer, username: str, password: str) -> requests.Response:
    return requests.get(server.url + "/users/me", auth=(username, password), timeout=60)


def test_password_guessing_is_throttled_per_user_then_per_address(server: LiveServer) -> None:
    victim = h.new_user(server.url, "victim")
    other = h.new_user(server.url, "other")
    name, password = victim.session.auth
    token = victim.ok("POST", "/tokens", 201, json={"name": "cli"})["token"]
    for i in range(limits.LOGIN_FAILURES_PER_USER):
        r = _get(server, name, f"guess-{i}")
        assert r.status_code == 401, r.text
    for guess in ("another-guess", password):  # not even the right password is checked now
        r = _get(server, name.upper() if guess == password else name, guess)
        assert r.status_code == 429, r.text
        assert "too many failed logins" in r.json()["detail"]
        assert 0 < int(r.headers["Retry-After"]) <= limits.LOGIN_FAILURE_WINDOW
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(server.url + "/users/me", headers=bearer, timeout=60).status_code == 200
    assert _get(server, *other.session.auth).status_code == 200  # other users log in

    # guessing across usernames (unknown ones too) throttles the address
    spent = limits.LOGIN_FAILURES_PER_USER
    while spent < limits.LOGIN_FAILURES_PER_ADDRESS:
        r = _get(server, f"nobody-{uuid.uuid4().hex[:8]}", "guess")
        assert r.status_code == 401, r.text
        spent += 1
    r = _get(server, *other.session.auth)
    assert r.status_code == 429 and "Retry-After" in r.headers, r.text
    assert requests.get(server.url + "/users/me", headers=bearer, timeout=60).status_code == 200


def test_failures_leave_the_window_and_keys_are_bounded() -> None:
    failures = FailedLogins(allowed=3, window=10.0, max_keys=2)
    for t in (0.0, 1.0, 2.0):
        assert failures.wait_seconds("a", t) == 0
        failures.failed("a", t)
    assert failures.wait_seconds("a", 5.0) == pytest.approx(5.0)  # until t=0 leaves at 10
    assert failures.wait_seconds("a", 10.0) == 0  # the oldest failure left the window
    failures.failed("a", 10.0)
    assert failures.wait_seconds("a", 10.5) == pytest.approx(0.5)
    failures.clear("a")  # a correct password
    assert failures.wait_seconds("a", 10.5) == 0
    for key in ("b", "c", "d"):
        failures.failed(key, 11.0)
    assert list(failures._times) == ["c", "d"]  # the oldest key dropped first
