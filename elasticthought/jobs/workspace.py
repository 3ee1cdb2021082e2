"""A training job's copy of its dataset: the split artifacts fetched from the blob store and
extracted into the job's work directory, in the form the data layers read.

- IMAGE_DATA: `data/<split>/<label>/<file>` images and `data/<split>.txt` ImageData list files
  whose lines name the images by absolute path (so no `root_folder` is needed);
- DATA: `data/<split>/` holding the LevelDB files or LMDB's `data.mdb`;
- the mean image (`data/mean.binaryproto`) when the dataset has one.

A finished workspace is marked, so a resumed attempt reuses it instead of fetching again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from elasticthought.blobs import layout
from elasticthought.documents.errors import JobError
from elasticthought.documents.fields import LAYERS_TYPE
from elasticthought.jobs.datafile import extract_blob
from elasticthought.queue.context import JobContext

SPLITS = {"TRAIN": "training", "TEST": "testing"}
MARKER = ".workspace.json"


@dataclass
class Workspace:
    """What the rewritten net reads: per-phase sources, the backend, an optional mean file."""

    sources: dict[str, str]
    backend: str | None
    mean_file: str | None
    counts: dict[str, int]


def _image_split(ctx: JobContext, artifact: dict, folder: Path, list_path: Path) -> None:
    extract_blob(ctx, artifact["archive"], folder)
    root = folder.resolve()
    lines = []
    text = ctx.blobs.get(artifact["list"]).decode("utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, label = line.rstrip().rpartition(" ")
        if not sep or not name or name.startswith("/") or ".." in name.split("/"):
            raise JobError(f"dataset list file {artifact['list']} line {number} is malformed")
        if not (root / name).is_file():
            raise JobError(f"dataset image {name!r} is missing from {artifact['archive']}")
        lines.append(f"{root / name} {label}\n")
    list_path.write_text("".join(lines), encoding="utf-8")


def prepare(ctx: JobContext, dataset: dict) -> Workspace:
    """Fetch and extract `dataset`'s splits (and mean) into `ctx.work_dir / "data"`."""
    data = ctx.work_dir / "data"
    marker = data / MARKER
    if marker.is_file():
        try:
            saved = json.loads(marker.read_text())
            if saved.get("dataset") == dataset["_id"]:
                return Workspace(**saved["workspace"])
        except (ValueError, KeyError, TypeError):
            pass
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    artifacts = dataset.get("artifacts") or {}
    kind = dataset.get(LAYERS_TYPE)
    sources: dict[str, str] = {}
    counts: dict[str, int] = {}
    for phase, split in SPLITS.items():
        artifact = artifacts.get(split)
        if not isinstance(artifact, dict) or not artifact.get("archive"):
            raise JobError(f"dataset {dataset['_id']} has no {split} split")
        folder = data / split
        ctx.progress(step=f"fetching the {split} split")
        if kind == "IMAGE_DATA":
            list_path = data / f"{split}.txt"
            _image_split(ctx, artifact, folder, list_path)
            sources[phase] = str(list_path.resolve())
        else:
            extract_blob(ctx, artifact["archive"], folder)
            sources[phase] = str(folder.resolve())
        counts[phase] = int(artifact.get("count") or 0)
    mean = None
    if artifacts.get("mean"):
        path = data / layout.MEAN
        with path.open("wb") as f:
            for chunk in ctx.blobs.iter_chunks(artifacts["mean"]):
                f.write(chunk)
        mean = str(path.resolve())
    backend = dataset.get("backend") if kind == "DATA" else None
    space = Workspace(sources=sources, backend=backend, mean_file=mean, counts=counts)
    marker.write_text(json.dumps({"dataset": dataset["_id"], "workspace": space.__dict__}))
    return space
