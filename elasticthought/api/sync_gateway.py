"""/sync-gateway/credentials: a user's read-only credential for Sync Gateway's public port, so
their PouchDB or Couchbase Lite replicates their own documents (see
`elasticthought.store.syncgateway` for how the credential is made and kept)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from elasticthought.api.auth import require_auth
from elasticthought.api.errors import ApiError
from elasticthought.api.openapi import json_response, op
from elasticthought.api.services import config, store
from elasticthought.store.syncgateway import SyncGatewayError, owner_channel, users_of

bp = Blueprint("sync_gateway", __name__, url_prefix="/sync-gateway")
bp.before_request(require_auth)


@bp.post("/credentials")
def post_credentials():
    users = users_of(store())
    if users is None:
        raise ApiError(
            404,
            "this service's document store is not Sync Gateway: there are no Sync Gateway "
            "credentials (run the service with --store http://SYNC-GATEWAY:4985/DB)",
        )
    username = g.et_user["username"]
    try:
        password = users.set_password(username)
    except SyncGatewayError as exc:
        raise ApiError(503, str(exc)) from None
    return jsonify(
        {
            "username": username,
            "password": password,
            "database": users.db_name,
            "channel": owner_channel(username),
            "url": config().sync_gw_public_url or None,
        }
    ), 201


OPENAPI_PATHS = {
    "/sync-gateway/credentials": {
        "post": op(
            "a fresh Sync Gateway password for the caller (read-only replication of their own "
            "documents through the public port); the previous one stops working",
            {"201": json_response("username, password, database, channel, url")},
            errors=(401, 404, 503),
        ),
    },
}
