"""Serve the web app: `APP_PATH` (index page), its static files, and the charting library.

The app is static files in `static/` (no build step); it talks to the REST API with the
user's token from `sessionStorage`, so this blueprint adds no API route. Chart.js comes from
npm (package.json, installed by scripts/setup into `node_modules/`); when it is absent the app
still works and says where its plots went (`/app/vendor/chart.js` answers 404 then).

Every response here carries a strict Content-Security-Policy: scripts, styles and connections
only from this origin, no inline script or style, no frames, no plugins.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from flask import Blueprint, Response, redirect, send_file, send_from_directory

from elasticthought.api.errors import ApiError
from elasticthought.api.openapi import op

bp = Blueprint("web", __name__)

#: Where the app is served (its index page); `/` redirects here.
APP_PATH = "/app/"
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Chart.js's self-contained browser build inside an npm `node_modules` folder.
CHART_JS = Path("chart.js") / "dist" / "chart.umd.js"
#: Names of the app's files (anything else is 404 before the file system is asked).
FILE_NAME = re.compile(r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)*[A-Za-z0-9_-][A-Za-z0-9._-]*$")
#: `ET_NODE_MODULES` names the `node_modules` folder to use instead of the repository's.
NODE_MODULES_ENV = "ET_NODE_MODULES"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def chart_js_path() -> Path | None:
    """The installed Chart.js browser build, or None when npm never installed it."""
    folder = (
        os.environ.get(NODE_MODULES_ENV) or Path(__file__).resolve().parents[2] / "node_modules"
    )
    path = Path(folder) / CHART_JS
    return path if path.is_file() else None


@bp.after_request
def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.get("/")
def root() -> Response:
    return redirect(APP_PATH, code=302)


@bp.get(APP_PATH.rstrip("/"))
def app_no_slash() -> Response:
    return redirect(APP_PATH, code=301)


@bp.get(APP_PATH)
def index() -> Response:
    return send_from_directory(STATIC_DIR, "index.html", max_age=0)


@bp.get(APP_PATH + "vendor/chart.js")
def chart_js() -> Response:
    path = chart_js_path()
    if path is None:
        raise ApiError(
            404,
            "Chart.js is not installed: run scripts/setup (it installs the npm package "
            "chart.js into node_modules) to get the web app's plots",
        )
    return send_file(path, mimetype="text/javascript", max_age=0)


@bp.get(APP_PATH + "<path:name>")
def static_file(name: str) -> Response:
    if name.startswith("vendor/") or not FILE_NAME.match(name):
        raise ApiError(404, f"no web app file {name[:200]!r}")
    return send_from_directory(STATIC_DIR, name, max_age=0)


def _page(summary: str, mimetype: str) -> dict:
    return op(
        summary,
        {"200": {"description": summary, "content": {mimetype: {"schema": {"type": "string"}}}}},
        public=True,
        errors=(404,),
    )


_REDIRECT = {"description": "redirect to the web app"}
OPENAPI_PATHS = {
    "/": {"get": op("redirect to the web app", {"302": _REDIRECT}, public=True, errors=())},
    APP_PATH.rstrip("/"): {
        "get": op("redirect to the web app", {"301": _REDIRECT}, public=True, errors=())
    },
    APP_PATH: {"get": _page("the web app (HTML; it calls this API with a token)", "text/html")},
    APP_PATH + "vendor/chart.js": {
        "get": _page(
            "the charting library (Chart.js from npm; 404 if not installed)", "text/javascript"
        )
    },
    APP_PATH + "{name}": {
        "parameters": [
            {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "get": _page("a static file of the web app (JavaScript, CSS)", "text/javascript"),
    },
}
