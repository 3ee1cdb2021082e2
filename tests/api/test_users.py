"""Users and tokens over HTTP on a live server (both store backends)."""

from __future__ import annotations

import time

import requests

from tests.api.helpers import Client, new_user


def test_signup_login_password_change(api):
    user = new_user(api.url)
    me = user.ok("GET", "/users/me")
    assert me["id"] == f"user:{user.username}" and me["username"] == user.username
    assert "password-hash" not in me and "password" not in me
    assert user.password not in user.get("/users/me").text

    dup = requests.post(api.url + "/users", json={"username": user.username, "password": "x" * 9})
    assert dup.status_code == 409 and user.username in dup.json()["detail"]

    wrong = Client(api.url, user.username, "wrong-password").get("/users/me")
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "Unauthorized", "detail": "wrong username or password"}
    assert requests.get(api.url + "/datafiles").status_code == 401
    assert Client(api.url, "nobody-here", "whatever1").get("/users/me").status_code == 401

    path = f"/users/{me['id']}/password"
    bad = user.post(path, json={"current-password": "nope-nope", "password": "newpass123"})
    assert bad.status_code == 422 and "current-password" in bad.json()["detail"]
    short = user.post(path, json={"current-password": user.password, "password": "short"})
    assert short.status_code == 400 and "password" in short.json()["detail"]
    user.ok("POST", path, json={"current-password": user.password, "password": "newpass123"})
    assert user.get("/users/me").status_code == 401  # the old password no longer works
    assert Client(api.url, user.username, "newpass123").get("/users/me").status_code == 200

    for body, word in [
        ({"username": "bad name!", "password": "longenough"}, "username"),
        ({"username": "okname", "password": "longenough", "admin": True}, "admin"),
        ({"password": "longenough"}, "username"),
    ]:
        r = requests.post(api.url + "/users", json=body)
        assert r.status_code == 400 and word in r.json()["detail"], r.text


def test_tokens_expiry_list_revoke(api):
    user = new_user(api.url)
    made = user.ok("POST", "/tokens", 201, json={"name": "ci", "expires-in": 3600})
    token = made["token"]
    assert made["expires-at"] > time.time() + 3500 and "secret-hash" not in made
    for scheme in ("Token", "Bearer"):
        r = requests.get(api.url + "/users/me", headers={"Authorization": f"{scheme} {token}"})
        assert r.status_code == 200 and r.json()["username"] == user.username
    listed = user.ok("GET", "/tokens")["items"]
    assert [t["id"] for t in listed] == [made["id"]] and "token" not in listed[0]
    assert user.ok("GET", f"/tokens/{made['id']}")["name"] == "ci"

    short = user.ok("POST", "/tokens", 201, json={"expires-in": 1})
    auth = {"Authorization": f"Token {short['token']}"}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and time.time() <= short["expires-at"]:
        time.sleep(0.1)
    r = requests.get(api.url + "/users/me", headers=auth)
    assert r.status_code == 401 and "expired" in r.json()["detail"]

    assert user.delete(f"/tokens/{made['id']}").status_code == 204
    r = requests.get(api.url + "/users/me", headers={"Authorization": f"Token {token}"})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert user.get(f"/tokens/{made['id']}").status_code == 404
    forged = token[: token.rindex(".") + 1] + "A" * 43
    r = requests.get(api.url + "/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    bad = user.post("/tokens", json={"expires-in": -5})
    assert bad.status_code == 400 and "expires-in" in bad.json()["detail"]


def test_closed_signup_and_admin(closed_server):
    url = closed_server.url
    r = requests.post(url + "/users", json={"username": "walkin", "password": "longenough"})
    assert r.status_code == 403 and "sign-up" in r.json()["detail"]
    admin = Client(url, "root", "rootpass1")
    assert admin.ok("GET", "/users/me")["admin"] is True
    made = admin.ok("POST", "/users", 201, json={"username": "invited", "password": "longenough"})
    assert made["admin"] is False
    invited = Client(url, "invited", "longenough")
    assert invited.ok("GET", "/users/me")["username"] == "invited"
    r = invited.post("/users", json={"username": "other", "password": "longenough"})
    assert r.status_code == 403


def test_usernames_differing_only_in_case_are_one_name(api) -> None:
    """A look-alike attack: "Alice" after "alice" is 409 (as "alice" again is), whichever
    comes first and however many case variants are tried; the name is free again once its
    user is deleted, and then in another case."""
    base = f"Case{time.monotonic_ns() % 10**9}"
    first = base.swapcase()
    created = requests.post(api.url + "/users", json={"username": first, "password": "x" * 12})
    assert created.status_code == 201, created.text
    for variant in {base, base.upper(), base.lower(), first}:
        r = requests.post(api.url + "/users", json={"username": variant, "password": "y" * 12})
        assert r.status_code == 409 and "case" in r.json()["detail"], (variant, r.text)
    owner = Client(api.url, first, "x" * 12)
    assert owner.get("/users/me").json()["username"] == first  # untouched by the attempts
    assert Client(api.url, base.upper(), "y" * 12).get("/users/me").status_code == 401
    owner.ok("DELETE", f"/users/user:{first}", 204)
    again = requests.post(api.url + "/users", json={"username": base, "password": "z" * 12})
    assert again.status_code == 201, again.text
    assert Client(api.url, base, "z" * 12).get("/users/me").json()["username"] == base
