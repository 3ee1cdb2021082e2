"""Spellings of the seed (tleyden/elastic-thought) that the API accepts as aliases.

The seed's Go `Dataset` struct reads the test side from the key `"test"`, while its API
description spells it `"testing"`; both reach us from the seed's clients. An alias is folded
into the canonical key before validation, so documents only ever store the canonical one.
"""

from __future__ import annotations

from typing import Any

from elasticthought.api.errors import bad_request

#: Dataset body keys: alias -> canonical key.
DATASET_ALIASES: dict[str, str] = {"test": "testing"}


def fold_aliases(body: dict[str, Any], aliases: dict[str, str]) -> dict[str, Any]:
    """`body` with each alias key renamed to its canonical key (giving both is a 400)."""
    for alias, canonical in aliases.items():
        if alias not in body:
            continue
        if canonical in body:
            raise bad_request(f"give '{canonical}' or its alias '{alias}', not both")
        body = {(canonical if key == alias else key): value for key, value in body.items()}
    return body
