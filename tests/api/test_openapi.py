"""/openapi.json describes exactly the app's routes."""

from __future__ import annotations

import re

from elasticthought.api.app import create_app
from elasticthought.api.openapi import build_spec
from elasticthought.blobs import open_blobs
from elasticthought.config import Config
from elasticthought.store import open_store

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def test_openapi_matches_url_map(tmp_path):
    store = open_store(f"sqlite://{tmp_path / 'db.sqlite'}")
    app = create_app(Config(data_dir=str(tmp_path)), store, open_blobs(f"file://{tmp_path}/b"))
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        routes.setdefault(path, set()).update(m.lower() for m in rule.methods & METHODS)
    spec = build_spec()
    described = {
        path: {m for m in item if m in {x.lower() for x in METHODS}}
        for path, item in spec["paths"].items()
    }
    assert described == routes
    for path, item in spec["paths"].items():
        names = set(re.findall(r"\{([^}]+)\}", path))
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        assert names == declared, path
        for method, operation in item.items():
            if method in {x.lower() for x in METHODS}:
                assert operation["responses"], (path, method)
    with app.test_client() as client:
        assert client.get("/openapi.json").get_json() == spec
    store.close()
