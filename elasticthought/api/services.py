"""The services of the current app (app.py's accessors), by the short names handlers use."""

from __future__ import annotations

from elasticthought.api.app import get_blobs, get_config, get_store

store = get_store
blobs = get_blobs
config = get_config
