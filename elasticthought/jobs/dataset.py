"""The dataset runner: split one datafile (the seed's per-label rule) or pair two, and store
each split in the form training reads directly (see `elasticthought.blobs.layout`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from elasticthought import archive
from elasticthought.blobs import layout
from elasticthought.documents.errors import JobError
from elasticthought.documents.fields import LAYERS_TYPE
from elasticthought.documents.split import assign_by_label, share, split_items
from elasticthought.jobs import imagefolders, quota, records
from elasticthought.jobs.datafile import extract_blob
from elasticthought.jobs.waiting import wait_finished
from elasticthought.queue.context import JobContext

DATAFILE_WAIT_SECONDS = 1800.0  # how long a dataset job waits for its datafiles


def _archive_key(datafile: dict) -> str:
    return datafile.get("archive") or layout.datafile_archive(datafile["_id"])


def _pack(ctx: JobContext, key: str, folder: Path, names: list[str] | None = None) -> None:
    with tempfile.NamedTemporaryFile(dir=ctx.work_dir, suffix=".tar.gz", delete=False) as tmp:
        archive.pack(folder, tmp, names)
    try:
        quota.put_file(ctx, key, Path(tmp.name), "storing the dataset's split archive")
    finally:
        os.unlink(tmp.name)


# IMAGE_DATA ----------------------------------------------------------------------------------


def _image_splits(ctx: JobContext, sources: list[dict], train_share) -> dict[str, Any]:
    sets = []
    for i, datafile in enumerate(sources):
        root = ctx.work_dir / f"source{i}"
        files = extract_blob(ctx, _archive_key(datafile), root)
        sets.append(imagefolders.scan(root, files, verify=False))
    labels = imagefolders.sort_labels({label for s in sets for label in s.labels})
    index = {label: i for i, label in enumerate(labels)}
    chosen: dict[str, list[tuple[Path, str]]] = {"training": [], "testing": []}
    for label in labels:
        if len(sets) == 1:
            train, test = split_items(sets[0].files.get(label, []), train_share)
            chosen["training"] += [(sets[0].root, f) for f in train]
            chosen["testing"] += [(sets[0].root, f) for f in test]
        else:
            chosen["training"] += [(sets[0].root, f) for f in sets[0].files.get(label, [])]
            chosen["testing"] += [(sets[1].root, f) for f in sets[1].files.get(label, [])]
    out: dict[str, Any] = {"labels": labels}
    for split, items in chosen.items():
        if not items:
            raise JobError(f"the {split} split would be empty")
        folder = ctx.work_dir / split
        shutil.rmtree(folder, ignore_errors=True)
        lines, names, counts = [], [], dict.fromkeys(labels, 0)
        for root, rel in items:
            label = rel.split("/")[-2]
            name = f"{label}/{rel.split('/')[-1]}"
            (folder / label).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, folder / name)
            names.append(name)
            lines.append(f"{name} {index[label]}\n")
            counts[label] += 1
        _pack(ctx, layout.split_archive(ctx.job_id, split), folder, names)
        ctx.blobs.put(layout.split_list(ctx.job_id, split), "".join(lines).encode())
        out[split] = {
            "archive": layout.split_archive(ctx.job_id, split),
            "list": layout.split_list(ctx.job_id, split),
            "format": "images",
            "count": len(items),
            "label-counts": counts,
        }
        if split == "training" and ctx.job.get("compute-mean"):
            out["mean"] = _image_mean(ctx, folder, names)
    return out


def _image_mean(ctx: JobContext, folder: Path, names: list[str]) -> str:
    gray = all(imagefolders.is_gray(folder / n) for n in names)
    total = None
    for name in names:
        pixels = imagefolders.load_pixels(folder / name, gray)
        if total is None:
            total = np.zeros_like(pixels)
        elif pixels.shape != total.shape:
            raise JobError(
                f"compute-mean needs images of one size: {name!r} is "
                f"{pixels.shape[2]}x{pixels.shape[1]}, others {total.shape[2]}x{total.shape[1]}"
            )
        total += pixels
    key = layout.mean_file(ctx.job_id)
    ctx.blobs.put(key, records.mean_blob(total, len(names)))
    return key


# DATA ----------------------------------------------------------------------------------------


def _data_splits(ctx: JobContext, sources: list[dict], train_share) -> dict[str, Any]:
    dbs = []
    for i, datafile in enumerate(sources):
        root = ctx.work_dir / f"source{i}"
        extract_blob(ctx, _archive_key(datafile), root)
        dbs.append(records.find_database(root))
    backend = dbs[0][1]
    if any(kind != backend for _, kind in dbs):
        raise JobError("the training and testing datafiles hold different database backends")
    writers = {}
    for split in ("training", "testing"):
        folder = ctx.work_dir / split
        shutil.rmtree(folder, ignore_errors=True)
        writers[split] = records.Writer(folder, backend)
    counts: dict[str, dict[int, int]] = {"training": {}, "testing": {}}
    want_mean = bool(ctx.job.get("compute-mean"))
    mean_total: np.ndarray | None = None
    try:
        if len(dbs) == 1:
            folder, _ = dbs[0]
            labels = [
                records.parse_datum(k, v).label for k, v in records.iter_records(folder, backend)
            ]
            plan = iter(assign_by_label(labels, train_share))
            streams = [(folder, None)]
        else:
            plan = None
            streams = [(dbs[0][0], "training"), (dbs[1][0], "testing")]
        for folder, fixed in streams:
            for key, value in records.iter_records(folder, backend):
                datum = records.parse_datum(key, value)
                split = fixed or ("training" if next(plan) else "testing")  # type: ignore[arg-type]
                writers[split].put(key, value)
                c = counts[split]
                c[datum.label] = c.get(datum.label, 0) + 1
                if want_mean and split == "training":
                    pixels = records.datum_array(datum)
                    if mean_total is None:
                        mean_total = np.zeros_like(pixels)
                    elif pixels.shape != mean_total.shape:
                        raise JobError("compute-mean needs records of one shape")
                    mean_total += pixels
    finally:
        for writer in writers.values():
            writer.close()
    labels_all = sorted(set(counts["training"]) | set(counts["testing"]))
    out: dict[str, Any] = {"labels": labels_all, "backend": backend}
    for split in ("training", "testing"):
        if writers[split].count == 0:
            raise JobError(f"the {split} split would be empty")
        _pack(ctx, layout.split_archive(ctx.job_id, split), ctx.work_dir / split)
        out[split] = {
            "archive": layout.split_archive(ctx.job_id, split),
            "format": backend.lower(),
            "count": writers[split].count,
            "label-counts": {str(k): v for k, v in sorted(counts[split].items())},
        }
    if want_mean:
        key = layout.mean_file(ctx.job_id)
        ctx.blobs.put(key, records.mean_blob(mean_total, writers["training"].count))
        out["mean"] = key
    return out


def run(ctx: JobContext) -> dict[str, Any]:
    doc = ctx.job
    train_id = doc["training"]["datafile-id"]
    test_id = doc["testing"]["datafile-id"]
    ids = [train_id] if train_id == test_id else [train_id, test_id]
    sources = [wait_finished(ctx, i, "datafile", DATAFILE_WAIT_SECONDS) for i in ids]
    kinds = {s.get(LAYERS_TYPE) for s in sources}
    if len(kinds) != 1:
        raise JobError("the training and testing datafiles have different layers_type")
    train_share = share(doc["training"].get("split-percentage") or 0)
    ctx.progress(step="splitting")
    try:
        if kinds == {"DATA"}:
            artifacts = _data_splits(ctx, sources, train_share)
        else:
            artifacts = _image_splits(ctx, sources, train_share)
    finally:
        for child in ctx.work_dir.iterdir():
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
    result = {LAYERS_TYPE: kinds.pop(), "labels": artifacts.pop("labels")}
    if "backend" in artifacts:
        result["backend"] = artifacts.pop("backend")
    result["artifacts"] = artifacts
    return result
