"""`GET /openapi.json`: an OpenAPI 3 description of every route.

Each resource module describes its own routes in `OPENAPI_PATHS` (built with the helpers here);
this module gathers them from `app.resource_modules()` and `app.BLUEPRINTS`, plus `EXTRA_PATHS`
for modules that have none. tests/api/test_openapi.py keeps it equal to the app's URL map.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

import elasticthought

bp = Blueprint("openapi", __name__, url_prefix="/openapi.json")

ERROR = {"$ref": "#/components/schemas/Error"}
DOC = {"$ref": "#/components/schemas/Document"}
ID_PARAM = {
    "name": "doc_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the document's `_id` (as returned in `id`)",
}
PAGE_PARAMS = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "skip", "in": "query", "schema": {"type": "integer", "minimum": 0}},
]


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(c): {"description": "error", "content": {"application/json": {"schema": ERROR}}}
        for c in codes
    }


def json_response(description: str, schema: dict | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or DOC}},
    }


def op(
    summary: str,
    responses: dict[str, Any],
    body: dict | None = None,
    params: list | None = None,
    public: bool = False,
    errors: tuple[int, ...] = (400, 401, 404),
) -> dict[str, Any]:
    """One operation; `body` is a JSON schema or a full requestBody (key `content`)."""
    out: dict[str, Any] = {"summary": summary, "responses": {**responses, **_errors(*errors)}}
    if body is not None:
        out["requestBody"] = (
            body
            if "content" in body
            else {"required": True, "content": {"application/json": {"schema": body}}}
        )
    if params:
        out["parameters"] = params
    if public:
        out["security"] = []
    return out


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required or [],
        "additionalProperties": False,
    }


def resource(name: str, what: str, create: dict | None, create_summary: str) -> dict[str, Any]:
    """The four routes every resource has: POST + GET list, GET one + DELETE."""
    collection: dict[str, Any] = {
        "get": op(
            f"list one's own {what}s, newest first",
            {"200": json_response("a page", {"$ref": "#/components/schemas/Page"})},
            params=PAGE_PARAMS,
            errors=(400, 401),
        ),
    }
    if create is not None:
        collection["post"] = op(
            create_summary,
            {"201": json_response(f"the new {what}")},
            body=create,
            errors=(400, 401, 403, 409, 413, 422),
        )
    item = {
        "parameters": [ID_PARAM],
        "get": op(f"one {what}", {"200": json_response(what)}),
        "delete": op(
            f"delete a {what} (409 while another resource depends on it)",
            {"204": {"description": "deleted"}},
            errors=(401, 404, 409),
        ),
    }
    return {f"/{name}": collection, f"/{name}/{{doc_id}}": item}


EXTRA_PATHS: dict[str, Any] = {
    "/health": {
        "get": op(
            "store and blob store reachability",
            {
                "200": json_response("healthy", {"type": "object"}),
                "503": json_response("unhealthy", {"type": "object"}),
            },
            public=True,
            errors=(),
        )
    },
    "/openapi.json": {
        "get": op(
            "this description",
            {"200": json_response("OpenAPI 3 document", {"type": "object"})},
            public=True,
            errors=(),
        )
    },
}

COMPONENTS = {
    "schemas": {
        "Error": obj({"error": {"type": "string"}, "detail": {}}, ["error", "detail"]),
        "Document": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "type": {"type": "string"}},
            "required": ["id"],
        },
        "Page": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": DOC},
                "limit": {"type": "integer"},
                "skip": {"type": "integer"},
            },
            "required": ["items"],
        },
    },
    "securitySchemes": {
        "basic": {"type": "http", "scheme": "basic"},
        "token": {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer <token>` or `Authorization: Token <token>`",
        },
    },
}


def build_spec() -> dict[str, Any]:
    from elasticthought.api.app import extra_modules, resource_modules

    paths: dict[str, Any] = {}
    modules = [*resource_modules(), *(module for module, _ in extra_modules())]
    for module in modules:
        paths.update(getattr(module, "OPENAPI_PATHS", {}))
    from elasticthought.metrics.http import OPENAPI_PATHS as METRICS_PATHS

    for path, item in {**EXTRA_PATHS, **METRICS_PATHS}.items():
        paths.setdefault(path, item)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ElasticThought",
            "version": elasticthought.__version__,
            "description": "Queue, train and serve Caffe models over a REST API.",
        },
        "paths": dict(sorted(paths.items())),
        "components": COMPONENTS,
        "security": [{"basic": []}, {"token": []}],
    }


@bp.get("")
def openapi_json():
    spec = current_app.extensions.get("et_openapi")
    if spec is None:
        spec = current_app.extensions["et_openapi"] = build_spec()
    return jsonify(spec)
