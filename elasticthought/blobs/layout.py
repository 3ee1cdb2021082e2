"""Where each document's files live in the blob store: every blob key is built here.

Every document's blobs are under its id with `:` turned into `/`
(`dataset:user~ann:0005f...` -> `dataset/user~ann/0005f.../`):

- datafile: `archive.tar.gz` (the upload or the downloaded URL, as given)
- dataset:  `training.tar.gz`, `testing.tar.gz` (one per split), for IMAGE_DATA also
  `training.txt`, `testing.txt` (ImageData list files: `<label>/<file> <label index>` lines,
  relative to the folder the split archive is extracted into), and `mean.binaryproto` when
  `compute-mean` was asked. For DATA the split archives hold a database of Datums (the files of a
  LevelDB, or LMDB's `data.mdb`) at their root, in the datafile's backend.
- training-job: `train.log`, `metrics.json`, `solver.prototxt`, `net.prototxt` (as rewritten),
  `weights.caffemodel` (a fine-tuning input given by URL or upload),
  `snapshots/<name>_iter_<N>.caffemodel|.solverstate`, `model.caffemodel` (the final weights).
- classifier: `model.caffemodel`, `mean.binaryproto` (copied, so it outlives its job).
- classify-job: `images/<NNNNN>` (the uploaded images, in request order).
"""

from __future__ import annotations

import re

SPLITS = ("training", "testing")

MODEL = "model.caffemodel"
MEAN = "mean.binaryproto"
LOG = "train.log"
METRICS = "metrics.json"
SOLVER = "solver.prototxt"
NET = "net.prototxt"
WEIGHTS = "weights.caffemodel"
SNAPSHOTS = "snapshots/"
IMAGES = "images/"
#: A snapshot's file name: `<name>_iter_<N>.caffemodel` or `.solverstate`.
SNAPSHOT_RE = re.compile(r"^(?P<name>.+)_iter_(?P<iter>\d+)\.(?P<ext>caffemodel|solverstate)$")


def prefix(doc_id: str) -> str:
    """The blob folder of one document: its id with `:` as `/` (`datafile/user~a/KEY/`)."""
    return doc_id.replace(":", "/") + "/"


def key(doc_id: str, name: str) -> str:
    """The key of the file `name` of document `doc_id`."""
    return prefix(doc_id) + name


def datafile_archive(doc_id: str) -> str:
    return key(doc_id, "archive.tar.gz")


def split_archive(dataset_id: str, split: str) -> str:
    return key(dataset_id, f"{split}.tar.gz")


def split_list(dataset_id: str, split: str) -> str:
    return key(dataset_id, f"{split}.txt")


def mean_file(doc_id: str) -> str:
    return key(doc_id, MEAN)


def model(doc_id: str) -> str:
    """A training job's final weights, or a classifier's copy of its model."""
    return key(doc_id, MODEL)


def snapshots(job_id: str) -> str:
    """The folder of a training job's snapshots."""
    return key(job_id, SNAPSHOTS)


def snapshot(job_id: str, filename: str) -> str:
    return key(job_id, SNAPSHOTS + filename)


def image(job_id: str, index: int) -> str:
    """The `index`th uploaded image of a classify job."""
    return key(job_id, f"{IMAGES}{index:05d}")
