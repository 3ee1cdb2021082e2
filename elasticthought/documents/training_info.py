"""What a classifier takes from a finished training-job document: the final model, the
labels, the kind of data (IMAGE_DATA names / DATA numbers) and the TEST-phase transform of its
net (`engine.transform`).

The training runner records these on the job (`trained-model`, `labels`, `layers_type`,
`transform` with `mean_file` as the dataset's mean blob key, `dataset-id`); for a job that
lacks one of them, the solver's net and the dataset document fill it in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from elasticthought.documents.fields import LAYERS_TYPE, LAYERS_TYPES
from elasticthought.engine.transform import LOADING_KEYS, TRANSFORM_KEYS
from elasticthought.store.base import NotFound, Store


class InfoError(ValueError):
    """The training job lacks what a classifier needs."""


@dataclass
class TrainingInfo:
    model: str
    labels: list[Any]
    layers_type: str
    transform: dict[str, Any]
    mean: str | None = None
    image_loading: dict[str, Any] = field(default_factory=dict)


def _get(store: Store, doc_id: Any) -> dict[str, Any] | None:
    if not isinstance(doc_id, str):
        return None
    try:
        return store.get(doc_id)
    except NotFound:
        return None


def _net_transform(store: Store, job: dict[str, Any]) -> dict[str, Any] | None:
    """The TEST transform read from the solver's net (when the job did not record it)."""
    from elasticthought.engine.errors import FormatError
    from elasticthought.engine.prototxt import parse_net
    from elasticthought.engine.transform import test_transform

    solver = _get(store, job.get("solver-id"))
    if not solver or not solver.get("specification-net"):
        return None
    try:
        return test_transform(parse_net(solver["specification-net"]))
    except FormatError:
        return None


def describe(store: Store, job: dict[str, Any]) -> TrainingInfo:
    """The classifier-relevant facts of a finished training job."""
    model = job.get("trained-model")
    if not isinstance(model, str) or not model:
        raise InfoError("it has no trained model")
    dataset = _get(store, job.get("dataset-id"))
    if dataset is None:
        solver = _get(store, job.get("solver-id")) or {}
        dataset = _get(store, solver.get("dataset-id")) or {}
    layers_type = job.get(LAYERS_TYPE) or dataset.get(LAYERS_TYPE)
    if layers_type not in LAYERS_TYPES:
        raise InfoError("its data kind (IMAGE_DATA or DATA) is unknown")
    labels = job.get("labels") or dataset.get("labels") or []
    raw = job.get("transform")
    if not isinstance(raw, dict):
        raw = _net_transform(store, job)
        if raw is None:
            raise InfoError("its net's TEST-phase data layer (transform) cannot be read")
        if raw.get("mean_file"):
            raw["mean_file"] = (dataset.get("artifacts") or {}).get("mean")
    mean = None
    if "mean_file" in raw and raw["mean_file"] is not None:
        mean = raw["mean_file"]
        if not isinstance(mean, str) or not mean:
            raise InfoError("its net subtracts a mean file, but the mean is not stored")
    elif "mean_file" in raw:
        raise InfoError("its net subtracts a mean file, but the dataset has no mean")
    transform = {k: raw[k] for k in TRANSFORM_KEYS if k in raw}
    transform.setdefault("scale", 1.0)
    transform.setdefault("mean_value", [])
    transform.setdefault("crop_size", 0)
    loading = {k: raw[k] for k in LOADING_KEYS if k in raw}
    return TrainingInfo(
        model=model,
        labels=list(labels),
        layers_type=layers_type,
        transform=transform,
        mean=mean,
        image_loading=loading,
    )
