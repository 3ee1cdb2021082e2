"""A dataset's optional free-text `name` (shown by the web app): stored and answered as given,
markup included; a non-string or an over-long name is a 400 naming the field."""

from __future__ import annotations

from tests.api import helpers as h
from tests.support.server import LiveServer

NAME = '<b>letters</b> & "digits" — ünïcode'


def _split(datafile_id: str) -> dict:
    return {
        "training": {"datafile-id": datafile_id, "split-percentage": 0.7},
        "testing": {"datafile-id": datafile_id, "split-percentage": 0.3},
    }


def test_dataset_name_is_stored_as_given(api: LiveServer, files: h.FileServer) -> None:
    user = h.new_user(api.url)
    df = user.ok("POST", "/datafiles", 201, json={"url": files.url + "/alphabet.tar.gz"})
    made = user.ok("POST", "/datasets", 201, json={"name": NAME, **_split(df["id"])})
    assert made["name"] == NAME
    assert user.ok("GET", f"/datasets/{made['id']}")["name"] == NAME
    assert [d["name"] for d in user.ok("GET", "/datasets")["items"]] == [NAME]
    unnamed = user.ok("POST", "/datasets", 201, json=_split(df["id"]))
    assert unnamed["name"] == ""


def test_bad_dataset_names_are_refused(api: LiveServer, files: h.FileServer) -> None:
    user = h.new_user(api.url)
    df = user.ok("POST", "/datafiles", 201, json={"url": files.url + "/alphabet.tar.gz"})
    for name, reason in ((42, "must be a string"), ("x" * 201, "longer than 200")):
        response = user.post("/datasets", json={"name": name, **_split(df["id"])})
        assert response.status_code == 400, response.text
        assert "'name'" in response.json()["detail"] and reason in response.json()["detail"]
    assert user.ok("GET", "/datasets")["items"] == []
