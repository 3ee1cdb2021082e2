"""Multi-tenancy over HTTP: user B gets 404 for each of user A's resources on every route and
verb (routes read from /openapi.json), lists show only one's own, and deletes obey
dependencies and remove blobs."""

from __future__ import annotations

import re

from tests.api import helpers as h


def _a_world(api, files):
    a = h.new_user(api.url, "a")
    df, ds = h.alphabet_dataset(a, files)
    solver = a.ok(
        "POST",
        "/solvers",
        201,
        json={
            "dataset-id": ds["id"],
            "specification-url": files.url + "/alphabet/alpha_solver.prototxt",
            "specification-net-url": files.url + "/alphabet/alpha_net.prototxt",
        },
    )
    token = a.ok("POST", "/tokens", 201, json={})
    job = a.ok("POST", "/training-jobs", 201, json={"solver-id": solver["id"]})
    a.ok("POST", f"/training-jobs/{job['id']}/cancel", 202)  # no training needed here
    model = (h.SHARED / "golden" / "lenet" / "lenet_mnist_200" / "final.caffemodel").read_bytes()
    clf = a.ok(
        "POST",
        "/classifiers",
        201,
        data={"specification-url": files.url + "/mnist/classifier.prototxt"},
        files={"model": ("lenet.caffemodel", model)},
    )
    classify_job = a.ok(
        "POST",
        f"/classifiers/{clf['id']}/classify",
        201,
        files=[("urls", (None, files.url + "/mnist/missing.png"))],
    )
    ids = {
        "users": f"user:{a.username}",
        "tokens": token["id"],
        "datafiles": df["id"],
        "datasets": ds["id"],
        "solvers": solver["id"],
        "training-jobs": job["id"],
        "classifiers": clf["id"],
        "classify-jobs": classify_job["id"],
    }
    return a, ids


def test_other_users_resources_are_404_everywhere(api, files):
    a, ids = _a_world(api, files)
    a.wait(f"/datasets/{ids['datasets']}")
    b = h.new_user(api.url, "b")
    spec = b.ok("GET", "/openapi.json")
    # Routes with ids that need a sign-in (public ones, like the web app's files, own nothing).
    templated = [
        p
        for p, ops in spec["paths"].items()
        if "{" in p
        and any(isinstance(op, dict) and op.get("security") != [] for op in ops.values())
    ]
    assert templated, "no routes with ids in /openapi.json"
    tried = 0
    for path in templated:
        resource = path.strip("/").split("/")[0]
        assert resource in ids, f"isolation test: create one of A's {resource} for {path}"
        real = re.sub(r"\{[^}]+\}", ids[resource], path)
        for method in spec["paths"][path]:
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            if spec["paths"][path][method].get("security") == []:
                continue
            r = b.call(method.upper(), real, json={})
            assert r.status_code == 404, (method, real, r.status_code, r.text)
            assert set(r.json()) == {"error", "detail"}
            assert b.username not in r.text
            tried += 1
    assert tried >= 11
    # Nor can B build on A's documents by naming them in a body.
    r = b.post(
        "/datasets",
        json={
            "training": {"datafile-id": ids["datafiles"]},
            "testing": {"datafile-id": ids["datafiles"]},
        },
    )
    assert r.status_code in (400, 422) and "datafile" in r.json()["detail"], r.text
    r = b.post(
        "/solvers",
        json={"dataset-id": ids["datasets"], "specification": "x", "specification-net": "y"},
    )
    assert r.status_code == 422 and "dataset-id" in r.json()["detail"], r.text
    # A still has everything (B's DELETEs did nothing); B's lists hold none of A's documents.
    for resource, doc_id in ids.items():
        if resource != "users":
            assert a.ok("GET", f"/{resource}/{doc_id}")["id"] == doc_id
    for path in spec["paths"]:
        if "{" in path or path in (
            "/health",
            "/openapi.json",
            "/users/me",
            "/workers",
            "/metrics",
            "/scaling",
        ):
            continue
        if "get" not in spec["paths"][path] or spec["paths"][path]["get"].get("security") == []:
            continue
        seen = b.ok("GET", path)["items"]
        assert all(item["user-id"] == f"user:{b.username}" for item in seen), path
        mine = a.ok("GET", path)["items"]
        assert all(item["user-id"] == f"user:{a.username}" for item in mine), path
        if path.strip("/") in ids and path != "/users":
            assert [i["id"] for i in mine] == [ids[path.strip("/")]]


def test_delete_respects_dependencies_and_removes_blobs(api, files):
    a, ids = _a_world(api, files)
    ds = a.wait(f"/datasets/{ids['datasets']}")
    df = a.ok("GET", f"/datafiles/{ids['datafiles']}")
    blobs = api.data_dir / "blobs"
    assert (blobs / df["archive"]).is_file()
    assert (blobs / ds["artifacts"]["training"]["archive"]).is_file()

    r = a.delete(f"/datafiles/{df['id']}")
    assert r.status_code == 409 and ds["id"] in r.json()["detail"]
    r = a.delete(f"/datasets/{ds['id']}")
    assert r.status_code == 409 and ids["solvers"] in r.json()["detail"]
    r = a.delete(f"/users/{ids['users']}")
    assert r.status_code == 409
    r = a.delete(f"/solvers/{ids['solvers']}")
    assert r.status_code == 409 and ids["training-jobs"] in r.json()["detail"]
    a.wait(f"/training-jobs/{ids['training-jobs']}")
    assert a.delete(f"/training-jobs/{ids['training-jobs']}").status_code == 204
    assert a.delete(f"/solvers/{ids['solvers']}").status_code == 204
    assert a.delete(f"/datasets/{ds['id']}").status_code == 204
    assert not (blobs / ds["artifacts"]["training"]["archive"]).exists()
    assert a.delete(f"/datafiles/{df['id']}").status_code == 204
    assert not (blobs / df["archive"]).exists()
    a.wait(f"/classify-jobs/{ids['classify-jobs']}")
    assert a.delete(f"/classify-jobs/{ids['classify-jobs']}").status_code == 204
    clf = a.ok("GET", f"/classifiers/{ids['classifiers']}")
    assert (blobs / clf["model"]).is_file()
    assert a.delete(f"/classifiers/{ids['classifiers']}").status_code == 204
    assert not (blobs / clf["model"]).exists()
    for resource in ("datafiles", "datasets", "solvers"):
        assert a.get(f"/{resource}/{ids[resource]}").status_code == 404
        assert a.ok("GET", f"/{resource}")["items"] == []
    assert a.delete(f"/users/{ids['users']}").status_code == 204
    assert a.get("/users/me").status_code == 401
