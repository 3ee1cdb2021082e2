"""`elasticthought serve`: a live process on its embedded defaults, /health, JSON errors,
clean shutdown; the app factory's error handling in process."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from flask import Blueprint
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import InternalServerError, Unauthorized

from elasticthought.api import app as app_module
from elasticthought.api.app import create_app
from elasticthought.api.health import redact_url
from elasticthought.blobs import open_blobs
from elasticthought.config import Config
from elasticthought.store import StoreError, open_store
from tests.support.server import LiveServer


def test_serve_on_embedded_defaults(tmp_path: Path) -> None:
    # No --data-dir and no --workers: ./et-data in its cwd, one worker.
    with LiveServer(tmp_path, data_dir="", workers=None) as srv:
        response = requests.get(srv.url + "/health", timeout=10)
        assert response.status_code == 200
        assert response.headers["Server"] == "elasticthought"  # waitress, not a debug server
        body = response.json()
        assert body["status"] == "ok"
        assert body["store"]["kind"] == "sqlite" and body["store"]["ok"] is True
        assert body["store"]["url"].endswith("et-data/elasticthought.db")
        assert body["blobs"]["kind"] == "file" and body["blobs"]["ok"] is True
        assert body["blobs"]["url"].endswith("et-data/blobs")
        assert (tmp_path / "et-data" / "elasticthought.db").is_file()
        assert (tmp_path / "et-data" / "blobs").is_dir()
        assert body["workers"] == 1

        missing = requests.get(srv.url + "/no/such/thing", timeout=10)
        assert missing.status_code == 404
        assert missing.json()["error"] == "Not Found"
        wrong = requests.delete(srv.url + "/health", timeout=10)
        assert wrong.status_code == 405
        assert wrong.json()["error"] == "Method Not Allowed"

        assert srv.stop() == 0  # SIGTERM: clean exit
    assert "received SIGTERM" in srv.log()


def test_health_follows_a_couchdb_store_down_and_back(tmp_path: Path, pouchdb_leveldb) -> None:
    """Serve on a PouchDB Server store; stop PouchDB: /health says the store is unreachable."""
    store_url = pouchdb_leveldb.db_url("etserve")
    with LiveServer(tmp_path, store=store_url) as srv:
        body = requests.get(srv.url + "/health", timeout=10).json()
        assert body["store"] == {**body["store"], "kind": "couchdb", "url": store_url, "ok": True}
        assert body["blobs"]["ok"] is True

        pouchdb_leveldb.stop()
        response = requests.get(srv.url + "/health", timeout=30)
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["store"]["ok"] is False
        assert "unreachable" in body["store"]["error"]
        assert body["blobs"]["ok"] is True

        pouchdb_leveldb.start()
        deadline = time.monotonic() + 30
        while requests.get(srv.url + "/health", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "store never reported reachable again"
            time.sleep(0.1)
        assert srv.proc.poll() is None


def test_sigint_stops_cleanly_and_restart_keeps_port(live_server) -> None:
    srv = live_server()
    port = srv.port
    requests.get(srv.url + "/health", timeout=10)
    srv.restart(kill=True)
    assert srv.port == port
    assert requests.get(srv.url + "/health", timeout=10).status_code == 200
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(15) == 0
    assert "received SIGINT" in srv.log()


def test_health_reports_blob_store_loss(tmp_path: Path) -> None:
    with LiveServer(tmp_path) as srv:
        shutil.rmtree(srv.data_dir / "blobs")
        response = requests.get(srv.url + "/health", timeout=10)
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["blobs"]["ok"] is False and "not a folder" in body["blobs"]["error"]
        assert body["store"]["ok"] is True


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "a") as first:
        result = subprocess.run(
            [sys.executable, "-m", "elasticthought", "serve", "--workers", "0"]
            + ["--port", str(first.port), "--data-dir", str(tmp_path / "b")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{first.port}" in result.stderr
    assert "Traceback" not in result.stderr


# -- the app factory, in process ------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    boom = Blueprint("boom", __name__)

    @boom.get("/boom/<kind>")
    def explode(kind: str):
        if kind == "http":
            raise Unauthorized("who are you?", www_authenticate=WWWAuthenticate("basic"))
        if kind == "500":
            raise InternalServerError("oops")
        if kind == "store":
            raise StoreError("store sqlite:/srv/et-secret/elasticthought.db: connection refused")
        if kind == "oserror":
            raise OSError(2, "No such file or directory", "/srv/et-secret/blobs/model.bin")
        raise RuntimeError("something broke in /srv/et-secret/app.py")

    module = type("M", (), {"bp": boom})
    monkeypatch.setitem(sys.modules, "tests_boom_bp", module)
    monkeypatch.setattr(app_module, "BLUEPRINTS", [*app_module.BLUEPRINTS, "tests_boom_bp:bp"])
    config = Config(data_dir=str(tmp_path))
    store = open_store(config.store_url)
    blobs = open_blobs(config.blobs_url)
    yield create_app(config, store, blobs)
    store.close()


def test_unexpected_exception_is_503_json_without_server_paths(
    app, caplog: pytest.LogCaptureFixture
) -> None:
    """An OSError naming a server file (and any other exception): the answer names the kind
    and a reference, never the exception's text; the log line with that reference keeps it."""
    client = app.test_client()
    for kind, name in (("oserror", "FileNotFoundError"), ("runtime", "RuntimeError")):
        caplog.clear()
        response = client.get(f"/boom/{kind}")
        assert response.status_code == 503
        assert response.json["error"] == "Service Unavailable"
        detail = response.json["detail"]
        assert detail.startswith(f"internal error ({name}); the server's log has the details")
        assert "/srv" not in detail and "et-secret" not in detail and "model.bin" not in detail
        assert "something broke" not in detail
        reference = re.search(r"\(reference (\w+)\)", detail).group(1)
        logged = [r for r in caplog.records if reference in r.getMessage()]
        assert logged and "et-secret" in logged[0].exc_text


def test_store_error_is_503_http_errors_keep_status_and_headers(app) -> None:
    client = app.test_client()
    response = client.get("/boom/store")
    assert response.status_code == 503
    assert response.json["detail"].startswith("the document store is unavailable (StoreError)")
    assert "et-secret" not in response.json["detail"]
    response = client.get("/boom/http")
    assert response.status_code == 401
    assert response.json == {"error": "Unauthorized", "detail": "who are you?"}
    assert response.headers["WWW-Authenticate"].lower().startswith("basic")
    response = client.get("/boom/500")
    assert response.status_code == 503 and response.json["detail"] == "oops"


def test_health_in_process(app) -> None:
    response = app.test_client().get("/health")
    assert response.status_code == 200
    assert set(response.json) >= {"status", "store", "blobs"}


@pytest.mark.parametrize(
    "url,shown",
    [
        ("http://admin:pw@sg:4985/et", "http://sg:4985/et"),
        ("https://user@[::1]:5984/db", "https://[::1]:5984/db"),
        ("http://sg:4985/et", "http://sg:4985/et"),
        ("sqlite:./et-data/elasticthought.db", "sqlite:./et-data/elasticthought.db"),
        ("file:///var/blobs", "file:///var/blobs"),
    ],
)
def test_health_urls_carry_no_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "group-term"])
def test_stopping_the_whole_process_group_at_start_up_is_quiet(tmp_path: Path, signum) -> None:
    """Ctrl-C at a terminal (SIGINT) or systemd's stop (SIGTERM to every process of the
    service) soon after start-up reach the warm job fork server too, while it still imports
    the engine: the service stops cleanly and logs no traceback."""
    log_path = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "elasticthought", "serve", "--port", "0", "--data-dir", "d"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "serving on" not in log_path.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.02)
        os.killpg(proc.pid, signum)
        assert proc.wait(30) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    text = log_path.read_text()
    assert "shutting down" in text
    assert "Traceback" not in text and " ERROR " not in text, text
