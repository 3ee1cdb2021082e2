"""The request helpers under their former names, for blueprints written before the split.

New code imports from the modules that own them: `errors` (ApiError), `validation` (body,
fields, pagination, URLs), `ownership` (the caller's documents), `deletion`, `services`.
"""

from __future__ import annotations

from elasticthought.api.deletion import delete_unless_used, dependents, remove_document
from elasticthought.api.errors import ApiError, bad_request, not_found
from elasticthought.api.ownership import list_owned, owned, public, referenced, user_id
from elasticthought.api.services import blobs, config, store
from elasticthought.api.validation import (
    check_fields,
    check_unicode,
    json_body,
    no_json_constant,
    pagination,
    vet_url,
    want_bool,
    want_str,
)
from elasticthought.documents.fields import INTERNAL
from elasticthought.documents.model import now

__all__ = [
    "INTERNAL", "ApiError", "bad_request", "blobs", "check_fields", "check_unicode", "config",
    "delete_unless_used", "dependents", "json_body", "list_owned", "no_json_constant", "not_found",
    "now", "owned", "pagination", "public", "referenced", "remove_document", "store", "user_id",
    "vet_url", "want_bool", "want_str",
]  # fmt: skip
