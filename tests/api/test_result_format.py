"""Classify results in the seed's shape (elasticthought.api.result_format)."""

from __future__ import annotations

import pytest
from werkzeug.exceptions import HTTPException

from elasticthought.api.result_format import chosen_format, present

RICH = {
    "http://h/a.png": {"label": "B", "label-index": 1, "probability": 0.9, "top-5": []},
    "upload.png": {"label": 7, "label-index": 7, "probability": 0.5, "top-5": []},
    "http://h/broken.png": {"error": "cannot decode the image"},
}


def test_seed_shape_maps_each_key_to_its_label_string_and_lists_errors_apart() -> None:
    out = present({"id": "j", "results": dict(RICH)}, "seed")
    assert out["results"] == {"http://h/a.png": "B", "upload.png": "7"}
    assert out["errors"] == {"http://h/broken.png": "cannot decode the image"}
    assert present({"id": "j", "results": dict(RICH)}, "rich")["results"] == RICH
    assert present({"id": "j"}, "seed") == {"id": "j"}  # pending: no results yet


def test_format_choice_query_over_document_over_default() -> None:
    assert chosen_format({}, {}) == "rich"
    assert chosen_format({"result-format": "seed"}, {}) == "seed"
    assert chosen_format({"result-format": "seed"}, {"format": "RICH"}) == "rich"
    with pytest.raises(HTTPException) as bad:
        chosen_format({}, {"format": "xml"})
    assert bad.value.code == 400
