"""Shared pieces of the classification end-to-end tests: served test files (the seed's
classifier prototxts, the golden LeNet model and digits, the alphabet images, bad inputs), and
small HTTP helpers. Fixtures are imported into the test modules explicitly."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.api import helpers as h

GOLDEN_LENET = h.SHARED / "golden" / "lenet" / "lenet_mnist_200"
MNIST_DEPLOY = h.SEED / "mnist" / "classifier.prototxt"
ALPHABET_DEPLOY = h.SEED / "alphabet" / "classifier.prototxt"
SEED_FIELDS = {
    "scale": "255",
    "image-width": "28",
    "image-height": "28",
    "color": "false",
    "gpu": "false",
}  # fmt: skip  (the seed's curl sends strings)


def png(gray: np.ndarray) -> bytes:
    """A uint8 H x W array as PNG bytes (Pillow, independent of the service's encoder)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(gray, dtype=np.uint8), "L").save(buf, format="PNG")
    return buf.getvalue()


def golden_digits() -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """The golden deploy check: 20 MNIST test digits (as PNG), their labels, and the
    probabilities real Caffe's deploy net gave them with final.caffemodel (input * 1/256)."""
    case = np.load(GOLDEN_LENET / "case.npz")
    pixels = np.rint(case["deploy_input"] * 256).astype(np.uint8)  # exact: x/256 in float32
    images = [png(p[0]) for p in pixels]
    return images, case["deploy_labels"].astype(int), case["deploy_probs"]


def alphabet_members() -> list[str]:
    """`label/file.png` names of the alphabet archive, in archive order."""
    with tarfile.open(h.ALPHABET) as tar:
        return [m.name for m in tar.getmembers() if m.isfile()]


def seed_test_split(names: list[str], train_tenths: int = 7) -> list[str]:
    """The test split of the seed's rule, written out here: within each label, in order, an
    item goes to training while train * test_share <= test * train_share."""
    test_tenths = 10 - train_tenths
    counts: dict[str, list[int]] = {}
    testing = []
    for name in names:
        c = counts.setdefault(name.split("/")[0], [0, 0])
        if c[0] * test_tenths <= c[1] * train_tenths:
            c[0] += 1
        else:
            c[1] += 1
            testing.append(name)
    return testing


@pytest.fixture(scope="session")
def classify_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[h.FileServer]:
    """Served over HTTP: seed prototxts, the golden LeNet model, alphabet images, bad files."""
    root = tmp_path_factory.mktemp("classify-served")
    shutil.copyfile(MNIST_DEPLOY, root / "mnist_classifier.prototxt")
    shutil.copyfile(ALPHABET_DEPLOY, root / "alpha_classifier.prototxt")
    shutil.copyfile(GOLDEN_LENET / "final.caffemodel", root / "lenet.caffemodel")
    with tarfile.open(h.ALPHABET) as tar:
        tar.extractall(root / "alphabet", filter="data")
    images, _, _ = golden_digits()
    (root / "digits").mkdir()
    for i, data in enumerate(images):
        (root / "digits" / f"{i}.png").write_bytes(data)
    server = h.FileServer(root)
    yield server
    server.close()


def upload_classifier(user: h.Client, files: h.FileServer, **fields: Any) -> Any:
    """POST /classifiers as multipart: the golden LeNet model uploaded, the seed's MNIST deploy
    net by URL, the seed's string fields; `fields` override (None drops one)."""
    form = {**SEED_FIELDS, "specification-url": files.url + "/mnist_classifier.prototxt",
            "transform": '{"scale": 0.00390625}', **fields}  # fmt: skip
    form = {k: v for k, v in form.items() if v is not None}
    model = (GOLDEN_LENET / "final.caffemodel").read_bytes()
    return user.post(
        "/classifiers",
        data=form,
        files={"model": ("lenet.caffemodel", model, "application/octet-stream")},
    )


def classify(
    user: h.Client,
    classifier_id: str,
    urls: list[str] = (),
    uploads: list[tuple[str, bytes]] = (),
    wait: bool = True,
) -> dict:
    """POST /classifiers/{id}/classify (multipart) and, unless answered, wait for the job."""
    parts = [("urls", (None, url)) for url in urls]
    parts += [("files", (name, data, "application/octet-stream")) for name, data in uploads]
    response = user.post(
        f"/classifiers/{classifier_id}/classify",
        files=parts,
        params={"wait": "true"} if wait else None,
        timeout=120,
    )
    assert response.status_code == 201, response.text
    job = response.json()
    if job["processing-state"] in h.FINAL:
        return job
    return user.wait(f"/classify-jobs/{job['id']}", timeout=120)


def finished_job(job: dict) -> dict:
    assert job["processing-state"] == "finished_successfully", job.get("processing-log")
    return job
