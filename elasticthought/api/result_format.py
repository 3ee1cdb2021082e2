"""How a classify job's `results` are answered: `rich` (the default: per image its label,
label index, probability and top-5, or an error) or `seed`, the seed's shape: one label string
per image key (`{"<image key>": "<label>"}`), with images that could not be classified left out
of `results` and listed under `errors` (`{"<image key>": "<reason>"}`).

The format is chosen per request with `?format=seed|rich`, else by the classifier's
`result-format` (copied onto each of its classify jobs), else `rich`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elasticthought.api.errors import bad_request
from elasticthought.documents.fields import RESULT_FORMAT

RICH = "rich"
SEED = "seed"
RESULT_FORMATS = (RICH, SEED)
#: The classifier and classify-job field naming the default format of its results.
RESULT_FORMAT_FIELD = RESULT_FORMAT
#: The query parameter that overrides it for one request.
FORMAT_PARAM = "format"
#: Its OpenAPI description.
FORMAT_QUERY = {"name": FORMAT_PARAM, "in": "query", "schema": {"enum": list(RESULT_FORMATS)}}


def parse_result_format(value: Any, where: str = RESULT_FORMAT_FIELD) -> str:
    """A valid format name (None or "" = the default `rich`); anything else is a 400."""
    if value in (None, ""):
        return RICH
    if not isinstance(value, str) or value.strip().lower() not in RESULT_FORMATS:
        raise bad_request(f"'{where}' must be one of {', '.join(RESULT_FORMATS)}, got {value!r}")
    return value.strip().lower()


def chosen_format(doc: Mapping[str, Any], query: Mapping[str, str]) -> str:
    """The format for one answer: the query's `format`, else the document's field."""
    if FORMAT_PARAM in query:
        return parse_result_format(query.get(FORMAT_PARAM), FORMAT_PARAM)
    return parse_result_format(doc.get(RESULT_FORMAT_FIELD))


def seed_results(results: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(`{image key: label string}`, `{image key: error}`) from rich results."""
    labels: dict[str, str] = {}
    errors: dict[str, str] = {}
    for key, result in results.items():
        if isinstance(result, Mapping) and result.get("label") is not None:
            labels[key] = str(result["label"])
        elif isinstance(result, Mapping):
            errors[key] = str(result.get("error") or "not classified")
        else:  # already a label string
            labels[key] = str(result)
    return labels, errors


def present(out: dict[str, Any], fmt: str) -> dict[str, Any]:
    """A classify job's answer (`out`, already public) with its results in format `fmt`."""
    results = out.get("results")
    if fmt != SEED or not isinstance(results, Mapping):
        return out
    labels, errors = seed_results(results)
    out["results"] = labels
    if errors:
        out["errors"] = errors
    return out
