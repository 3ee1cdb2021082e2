"""The classify-job runner: one classifier, a batch of images (URLs and uploads), results per image.

The job document names its `classifier-id` and lists `images` ({"name", "url"} or {"name",
"blob"}); the runner loads the classifier's deploy net with its model, preprocesses every image
(`preprocess.Preprocessor`), runs them in batches and returns `results`: per image name, the top
label (a name for IMAGE_DATA classifiers, the class number for DATA), its probability and the
top 5 — or `error` with the reason for an image that could not be read. One bad image never
fails the job. The job's `engine` (the classifier's, through `engine.registry`) loads the
classifier once and runs the forward on the same preprocessed arrays; results record it.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from elasticthought.blobs import layout
from elasticthought.documents.errors import JobError
from elasticthought.documents.fields import ENGINE, GPU
from elasticthought.engine.interface import DeployError
from elasticthought.engine.registry import DEFAULT_ENGINE, UnknownEngine, get_engine, known
from elasticthought.queue.budget import WorkThreads, os_cpus, use_threads
from elasticthought.queue.context import JobContext
from elasticthought.store.base import NotFound

BATCH = 64
TOP_K = 5
IMAGE_MAX_BYTES = 32 * 1024 * 1024


def requirements(doc: dict) -> dict:
    """Workers that can run it: the job's engine (`caffe` needs a worker offering real Caffe;
    torch, the default, runs everywhere); a GPU only when asked for."""
    engine = doc.get(ENGINE) if known(doc.get(ENGINE)) else None
    return {"engine": engine, "gpu": bool(doc.get(GPU))}


def label_of(classifier: dict, index: int) -> Any:
    """The answer for output `index`: the label name (IMAGE_DATA / given labels) or the class
    number (DATA, or no labels)."""
    labels = classifier.get("labels") or []
    if classifier.get("label-kind") == "names" and index < len(labels):
        return labels[index]
    if classifier.get("label-kind") == "names":
        return None
    return index


def entry(classifier: dict, probs: np.ndarray) -> dict[str, Any]:
    """One image's result from its probability vector."""
    return entries(classifier, probs[None])[0]


def entries(classifier: dict, probs: np.ndarray) -> list[dict[str, Any]]:
    """Each image's result from its row of probabilities (one argsort for the batch)."""
    orders = np.argsort(-probs, axis=1, kind="stable")[:, :TOP_K]
    tops = np.take_along_axis(probs, orders, axis=1).tolist()
    return [_entry(classifier, o, p) for o, p in zip(orders.tolist(), tops, strict=True)]


def _entry(classifier: dict, order: list[int], probs: list[float]) -> dict[str, Any]:
    top = [
        {"label": label_of(classifier, i), "label-index": i, "probability": _num(p)}
        for i, p in zip(order, probs, strict=True)
    ]
    return {
        "label": top[0]["label"],
        "label-index": top[0]["label-index"],
        "probability": top[0]["probability"],
        "top-5": top,
    }


def _num(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


class Classifier:
    """A classifier document made runnable (in a job's process)."""

    def __init__(self, ctx: JobContext, doc: dict, threads: WorkThreads | None = None) -> None:
        """`threads`, when given, sets the threads of each batch's forward (a process that
        keeps the classifier); else the process's threads stay as they are."""
        from elasticthought.engine.preprocess import ImageError, Preprocessor

        self.doc = doc
        self.threads = threads
        work = Path(ctx.work_dir)
        model_path = work / layout.MODEL
        try:
            with ctx.blobs.open(doc["model"]) as src, model_path.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        except (KeyError, OSError, NotFound) as exc:
            raise JobError(f"the classifier's model is gone: {exc}") from None
        except Exception as exc:  # a blob store error
            raise JobError(f"cannot read the classifier's model: {exc}") from None
        gpu = bool(doc.get(GPU) and ctx.gpus)
        self.engine = ctx.job.get(ENGINE) or doc.get(ENGINE) or DEFAULT_ENGINE
        try:
            engine = get_engine(self.engine, ctx.config)
        except UnknownEngine:
            raise JobError(f"unknown engine {self.engine!r} (torch or caffe)") from None
        try:
            self.deploy = engine.classifier(doc, work, str(model_path), gpu)
        except DeployError as exc:
            raise JobError(str(exc)) from None
        transform = dict(doc.get("transform") or {})
        mean_path = None
        if transform.get("mean"):
            mean_path = str(work / layout.MEAN)
            try:
                Path(mean_path).write_bytes(ctx.blobs.get(transform["mean"]))
            except Exception as exc:
                raise JobError(f"cannot read the mean file {transform['mean']}: {exc}") from None
        try:
            self.prep = Preprocessor(
                raw_scale=float(doc.get("scale", 255)),
                width=int(doc["image-width"]),
                height=int(doc["image-height"]),
                color=bool(doc.get("color")),
                transform=transform,
                mean_path=mean_path,
            )
        except ImageError as exc:
            raise JobError(str(exc)) from None

    def classify(self, arrays: list[np.ndarray]) -> list[dict[str, Any]]:
        """One result per image: a batch forward, or image by image when the batch fails (then
        an image the net cannot take gets its `error`). Only this part is timed for
        `threads`: fetching and decoding the images does not run on more threads."""
        if self.threads is None:
            return self._classify(arrays)
        threads = self.threads.threads(len(arrays))
        use_threads(threads)
        started = time.perf_counter()
        try:
            return self._classify(arrays)
        finally:
            self.threads.observe(len(arrays), threads, time.perf_counter() - started)

    def _classify(self, arrays: list[np.ndarray]) -> list[dict[str, Any]]:
        try:
            probs = self.deploy.probabilities(np.stack(arrays).astype(np.float32, copy=False))
            return entries(self.doc, np.asarray(probs))
        except DeployError:
            if len(arrays) == 1:
                raise
        out = []
        for array in arrays:
            try:
                out.append(entry(self.doc, self.deploy.probabilities(array[None])[0]))
            except DeployError as exc:
                out.append({"error": str(exc)[:1000]})
        return out


def image_fetch_policy(ctx: JobContext) -> Any:
    """How a classify job fetches image URLs: the service's policy, bounded per image."""
    from elasticthought.fetch import FetchPolicy

    policy = FetchPolicy.from_config(ctx.config)
    policy.max_bytes = min(policy.max_bytes, IMAGE_MAX_BYTES)
    policy.total_timeout = min(policy.total_timeout, 120.0)
    return policy


def _image_bytes(ctx: JobContext, item: dict, policy: Any) -> bytes:
    from elasticthought.fetch import fetch_bytes

    if item.get("data") is not None:  # an upload handed over in memory (warm inference)
        return item["data"]
    if item.get("blob"):
        return ctx.blobs.get(item["blob"])
    return fetch_bytes(item["url"], policy())


def classify_items(
    ctx: JobContext, classifier: Classifier, items: list[dict], on_batch: Any = None,
    policy: Any = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """One result per item ({"name", "url"} or {"name", "blob"}), in order: images read and
    preprocessed, classified `BATCH` at a time; an image that cannot be read gets its `error`.
    `on_batch(done, failed)` is told the counts so far after each batch; between batches a
    cancel request stops the run (`JobError`). `policy` returns the fetch policy of image URLs
    (`image_fetch_policy`, made once, when the first URL is fetched, by default)."""
    from elasticthought.engine.errors import FormatError
    from elasticthought.engine.preprocess import ImageError
    from elasticthought.fetch import FetchError

    policy = policy or functools.cache(lambda: image_fetch_policy(ctx))
    results: list[dict[str, Any]] = [{} for _ in items]
    done = failed = 0
    for start in range(0, len(items), BATCH):
        if ctx.cancelled():
            raise JobError("canceled")
        places, arrays = [], []
        for place in range(start, min(start + BATCH, len(items))):
            try:
                arrays.append(classifier.prep(_image_bytes(ctx, items[place], policy)))
                places.append(place)
            except (FetchError, ImageError, FormatError) as exc:
                results[place] = {"error": str(exc)[:1000]}
                failed += 1
            except Exception as exc:  # a blob store or decoder surprise: this image only
                results[place] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
                failed += 1
        if arrays:
            try:
                answers = classifier.classify(arrays)
            except DeployError as exc:
                answers = [{"error": str(exc)[:1000]}]
            for place, result in zip(places, answers, strict=True):
                results[place] = result
                if "error" in result:
                    failed += 1
                else:
                    done += 1
        if on_batch is not None:
            on_batch(done, failed)
    return results


def summary(classifier: Classifier, items: list[dict], results: list[dict]) -> dict[str, Any]:
    """The job's result fields: `results` by image name (in order) with the counts, and how
    the classifier answered."""
    failed = sum(1 for r in results if "error" in r)
    return {
        "results": {item["name"]: result for item, result in zip(items, results, strict=True)},
        "classified-images": len(results) - failed,
        "failed-images": failed,
        "engine": classifier.engine,
        "softmax-applied": classifier.deploy.applies_softmax,
        "output-blob": classifier.deploy.output,
    }


def run(ctx: JobContext) -> dict[str, Any]:
    job = ctx.job
    try:
        doc = ctx.store.get(job["classifier-id"])
    except NotFound:
        raise JobError(f"classifier {job.get('classifier-id')} no longer exists") from None
    classifier = Classifier(ctx, doc)
    items = list(job.get("images") or [])

    def report(done: int, failed: int) -> None:
        ctx.progress(**{"classified-images": done, "failed-images": failed})

    return summary(classifier, items, classify_items(ctx, classifier, items, report))


class WarmClassifier:
    """A classifier kept loaded in the warm inference process (queue/inference.py): each
    `run` answers several requests' images with the same code as the classify job, their
    images batched together."""

    def __init__(self, env: Any, doc: dict) -> None:
        self.ctx = JobContext(
            {"_id": f"warm-{doc['_id']}", ENGINE: doc.get(ENGINE)},
            env.config,
            env.work_dir,
            1,
            env.store_url,
            env.blobs_url,
        )
        # each batch's forward runs on the threads its work pays for (one for a few images)
        threads = WorkThreads(env.config.cpus or os_cpus())
        self.classifier = Classifier(self.ctx, doc, threads)
        self.policy = functools.cache(lambda: image_fetch_policy(self.ctx))

    def run(self, payloads: list[list[dict]]) -> list[dict[str, Any]]:
        """Per payload (a classify job's `images`), the job's result fields."""
        items = [item for payload in payloads for item in payload]
        results = classify_items(self.ctx, self.classifier, items, policy=self.policy)
        out, start = [], 0
        for payload in payloads:
            end = start + len(payload)
            out.append(summary(self.classifier, payload, results[start:end]))
            start = end
        return out


def open_warm_classifier(env: Any, doc: dict) -> WarmClassifier:
    """The inference process's handler: load the classifier document `doc` once."""
    return WarmClassifier(env, doc)
