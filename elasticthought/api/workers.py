"""/workers: the queue's worker presence (one heartbeat document per worker process).

Every signed-in user sees the workers (id, host, pid, capabilities, state, started-at,
last-seen, alive); of the jobs a worker is running, only the caller's own are named, the
others are counted (`running-count`), so one tenant does not learn another's job ids."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from elasticthought.api.auth import require_auth
from elasticthought.api.errors import bad_request
from elasticthought.api.openapi import json_response, op
from elasticthought.api.ownership import user_id
from elasticthought.api.services import store
from elasticthought.queue.presence import list_workers

bp = Blueprint("workers", __name__, url_prefix="/workers")
bp.before_request(require_auth)


def _owned_by(job_id: str, user: str) -> bool:
    """Whether a job id ("type:owner:key", owner with `:` as `~`) belongs to `user`."""
    parts = job_id.split(":")
    return len(parts) >= 3 and parts[1] == user.replace(":", "~")


def _show(doc: dict[str, Any], me: str) -> dict[str, Any]:
    running = [j for j in doc.get("running") or [] if isinstance(j, str)]
    mine = [j for j in running if _owned_by(j, me)]
    return {
        "id": doc.get("worker-id"),
        "host": doc.get("host"),
        "pid": doc.get("pid"),
        "state": doc.get("state"),
        "alive": bool(doc.get("alive")),
        "capabilities": doc.get("capabilities") or {},
        "threads": doc.get("threads"),
        "running": mine,
        "running-count": len(running),
        "started-at": doc.get("started-at"),
        "last-seen": doc.get("last-seen"),
    }


@bp.get("")
def get_workers():
    unknown = sorted(set(request.args) - {"all"})
    if unknown:
        raise bad_request(f"unknown query parameter(s): {', '.join(unknown)}")
    everything = request.args.get("all", "false").lower()
    if everything not in ("true", "false", "1", "0"):
        raise bad_request("query parameter 'all' must be true or false")
    docs = list_workers(store(), alive_only=everything not in ("true", "1"))
    me = user_id()
    items = sorted((_show(d, me) for d in docs), key=lambda w: str(w["id"]))
    return jsonify({"items": items})


OPENAPI_PATHS = {
    "/workers": {
        "get": op(
            "the workers serving the queue (alive ones; `?all=true` adds stopped and silent "
            "ones): id, host, pid, capabilities, running jobs, started-at, last-seen",
            {"200": json_response("workers", {"type": "object"})},
            params=[{"name": "all", "in": "query", "schema": {"type": "boolean"}}],
            errors=(400, 401),
        )
    }
}
