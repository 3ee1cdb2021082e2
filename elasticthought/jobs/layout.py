"""Where a document's files live in the blob store (part 2 reads datasets from here).

Every document's blobs are under its id with `:` turned into `/`
(`dataset:user~ann:0005f...` -> `dataset/user~ann/0005f.../`):

- datafile: `archive.tar.gz` (the upload or the downloaded URL, as given)
- dataset:  `training.tar.gz`, `testing.tar.gz` (one per split), for IMAGE_DATA also
  `training.txt`, `testing.txt` (ImageData list files: `<label>/<file> <label index>` lines,
  relative to the folder the split archive is extracted into), and `mean.binaryproto` when
  `compute-mean` was asked. For DATA the split archives hold a database of Datums (the files of a
  LevelDB, or LMDB's `data.mdb`) at their root, in the datafile's backend.
"""

from __future__ import annotations

SPLITS = ("training", "testing")


def prefix(doc_id: str) -> str:
    return doc_id.replace(":", "/") + "/"


def datafile_archive(doc_id: str) -> str:
    return prefix(doc_id) + "archive.tar.gz"


def split_archive(dataset_id: str, split: str) -> str:
    return prefix(dataset_id) + f"{split}.tar.gz"


def split_list(dataset_id: str, split: str) -> str:
    return prefix(dataset_id) + f"{split}.txt"


def mean_file(dataset_id: str) -> str:
    return prefix(dataset_id) + "mean.binaryproto"
