"""The blob-memory estimate of a solver's nets (engine/memory.py): exact arithmetic over the
shapes of the seed's LeNet on a real LMDB, a lower bound of what a built net holds, no batch
loaded for a huge batch size, and unknown shapes never counted."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import pytest

from elasticthought.engine.datum import array_to_datum
from elasticthought.engine.db import open_db
from elasticthought.engine.memory import describe, phase_need, size_text, solver_needs
from elasticthought.engine.prototxt import parse_solver, read_net
from elasticthought.engine.upgrade import upgrade_net
from tests.support.paths import SHARED

SEED = SHARED / "data" / "seed-examples" / "mnist"


@pytest.fixture(scope="module")
def lenet(tmp_path_factory: pytest.TempPathFactory):
    """The seed's MNIST net reading a small LMDB of 28 x 28 gray digits."""
    folder = tmp_path_factory.mktemp("lmdb") / "db"
    rng = np.random.default_rng(0)
    with open_db(str(folder), "lmdb", "w") as db:
        for i in range(8):
            image = rng.integers(0, 255, (1, 28, 28), dtype=np.uint8)
            db.put(f"{i:08d}", array_to_datum(image, i % 10).SerializeToString())
    net = upgrade_net(read_net(str(SEED / "mnist_net.prototxt")))
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.source = str(folder)
            layer.data_param.backend = 1  # LMDB
    return net


def _batch(net, size: int):
    copy = type(net)()
    copy.CopyFrom(net)
    for layer in copy.layer:
        if layer.type == "Data":
            layer.data_param.batch_size = size
    return copy


def test_lenet_need_is_the_sum_over_its_shapes(lenet) -> None:
    per_image = 20 * 24 * 24 + 20 * 12 * 12 + 50 * 8 * 8 + 50 * 4 * 4 + 500 + 10
    params = (20 * 25 + 20) + (50 * 20 * 25 + 50) + (500 * 800 + 500) + (10 * 500 + 10)
    train = phase_need(lenet, "TRAIN")
    # data and label tops once (no diff), every other blob data + diff, params data + diff
    assert train.bytes == 4 * (64 * (784 + 1) + 2 * 64 * per_image + 2 * params)
    assert train.batch_size == 64
    test = phase_need(lenet, "TEST")
    assert test.bytes == 4 * 100 * (784 + 1 + per_image)  # no diffs, parameters shared
    solver = parse_solver((SEED / "mnist_solver.prototxt").read_text())
    assert [n.phase for n in solver_needs(solver, lenet)] == ["TRAIN", "TEST"]
    solver.ClearField("test_iter")
    assert [n.phase for n in solver_needs(solver, lenet)] == ["TRAIN"]


def test_the_need_is_a_lower_bound_of_what_a_built_net_holds(lenet) -> None:
    from elasticthought.engine.netstate import filter_net
    from elasticthought.engine.torch.net import Net

    net = Net(filter_net(lenet, "TRAIN"), "TRAIN")
    try:
        net.forward()
        net.backward()
        held = sum(b.data.size + b.diff.size for b in net.blobs.values())
        held += sum(p.data.size + p.diff.size for p in net.learnable_params)
    finally:
        net.close()
    assert phase_need(lenet, "TRAIN").bytes <= 4 * held


def test_a_huge_batch_is_estimated_without_memory(lenet) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    need = phase_need(_batch(lenet, 100_000_000), "TRAIN")
    assert time.monotonic() - started < 30
    assert need.batch_size == 100_000_000
    assert need.bytes > 100_000_000 * 4 * 2 * 20 * 24 * 24  # conv1 data + diff alone
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024, f"the estimate itself took {grown_kib} KiB"
    text = describe([need])
    assert text.startswith("at least ") and "GiB at batch size 100000000 (TRAIN)" in text


def test_layers_whose_shapes_are_unknown_count_nothing(lenet, tmp_path: Path) -> None:
    """A bottom nobody produces: that layer and everything after it are not counted."""
    broken = _batch(lenet, 64)
    conv1 = next(layer for layer in broken.layer if layer.name == "conv1")
    conv1.bottom[0] = "nowhere"
    need = phase_need(broken, "TRAIN")
    assert need.bytes == 4 * 64 * (784 + 1)  # the data layer's tops only


def test_size_text() -> None:
    assert size_text(3 * 1024**3) == "3 GiB"
    assert size_text(int(38.25 * 1024**3)) == "38.2 GiB"
    assert size_text(5 * 1024**2 + 1) == "6 MiB"
