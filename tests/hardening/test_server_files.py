"""A user's prototxt may not make the server read or write its own files: an HDF5Output
`file_name` (the engine creates, and truncates, that file when the net is built), an
InfogainLoss `source` or the solver's `weights` (read). The API answers 422 before anything is
stored; a solver document that got into the store some other way fails its job, and the file
is never touched."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from elasticthought.store import open_store
from tests.api import helpers as h
from tests.e2e import training_support as ts
from tests.support.server import LiveServer

SOLVER = 'net: "x"\nbase_lr: 0.01\nmax_iter: 5'


# The seed's alphabet net is in the V1 format (`layers`, enum types): so are these layers.
def _hdf5_output(path: Path) -> str:
    return (
        'layers { name: "dump" type: HDF5_OUTPUT bottom: "data" bottom: "label"\n'
        f'  hdf5_output_param {{ file_name: "{path}" }} }}\n'
    )


def _infogain(path: Path) -> str:
    return (
        'layers { name: "gain" type: INFOGAIN_LOSS bottom: "ip2" bottom: "label" top: "g"\n'
        f'  infogain_loss_param {{ source: "{path}" }} }}\n'
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, h.FileServer]]:
    root = tmp_path_factory.mktemp("server-files-served")
    shutil.copyfile(h.ALPHABET, root / "alphabet.tar.gz")
    files = h.FileServer(root)
    with LiveServer(tmp_path_factory.mktemp("server-files"), workers=1,
                    args=["--allow-private-urls"]) as srv:  # fmt: skip
        yield srv, files
    files.close()


def test_nets_and_solvers_naming_server_files_are_refused(
    served: tuple[LiveServer, h.FileServer], tmp_path: Path
) -> None:
    srv, files = served
    user = h.new_user(srv.url, "files")
    df = user.ok("POST", "/datafiles", 201, json={"url": "http://127.0.0.1:9/a.tar.gz"})
    ds = h.split_dataset(user, df["id"])
    net = (h.SEED / "alphabet" / "alpha_net.prototxt").read_text()
    victim = tmp_path / "victim.db"
    victim.write_bytes(b"the service's data")
    cases = [
        ({"specification-net": net + _hdf5_output(victim)},
         "layer 'dump' (HDF5Output): hdf5_output_param.file_name names a file on the server"),
        ({"specification-net": net + _infogain(victim)},
         "layer 'gain' (InfogainLoss): infogain_loss_param.source names a file on the server"),
        ({"specification": SOLVER + f'\nweights: "{victim}"'},
         "the solver's weights names a file on the server, which the solver reads"),
        ({"specification": SOLVER + "\nnet_param { " + _hdf5_output(victim) + " }"},  # V1 too
         "hdf5_output_param.file_name names a file on the server"),
    ]  # fmt: skip
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "net.prototxt").write_text(net + _hdf5_output(victim))
    fetched = h.FileServer(tmp_path / "served")
    try:
        cases.append(  # fetched text is never echoed: the layer by its number
            ({"specification-net-url": fetched.url + "/net.prototxt"},
             f"layer {net.count('layers {') + 1} (HDF5Output): hdf5_output_param.file_name")
        )  # fmt: skip
        for fields, words in cases:
            body = {"dataset-id": ds["id"], "specification": SOLVER, "specification-net": net}
            if "specification-net-url" in fields:
                del body["specification-net"]
            r = user.post("/solvers", json={**body, **fields})
            assert r.status_code == 422, (fields, r.text)
            assert words in r.json()["detail"], r.json()["detail"]
    finally:
        fetched.close()
    deploy = (
        'input: "data"\ninput_shape { dim: 1 dim: 1 dim: 28 dim: 28 }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
        "  inner_product_param { num_output: 2 } }\n"
        'layer { name: "dump" type: "HDF5Output" bottom: "data" bottom: "ip"\n'
        f'  hdf5_output_param {{ file_name: "{victim}" }} }}\n'
    )
    r = user.post("/classifiers", json={"specification": deploy, "model-url": files.url + "/m"})
    assert r.status_code == 422 and "hdf5_output_param.file_name" in r.json()["detail"], r.text
    assert not user.ok("GET", "/solvers")["items"] and not user.ok("GET", "/classifiers")["items"]
    assert victim.read_bytes() == b"the service's data"


def test_a_stored_solver_naming_a_server_file_fails_its_job_untouched(
    served: tuple[LiveServer, h.FileServer], tmp_path: Path
) -> None:
    """A solver document changed in the store behind the API (an older document, or a write
    by anything holding the store's credentials) to write an HDF5 file over a server file:
    the job fails naming the field, the file is unchanged."""
    srv, files = served
    user = h.new_user(srv.url, "behind")
    _, ds = h.alphabet_dataset(user, files)
    net = ts.seed_text("alphabet/alpha_net.prototxt")
    solver = ts.edit_solver(ts.seed_text("alphabet/alpha_solver.prototxt"), max_iter=2)
    made = user.ok("POST", "/solvers", 201, json={
        "dataset-id": ds["id"], "specification": solver, "specification-net": net})  # fmt: skip
    victim = tmp_path / f"victim-{uuid.uuid4().hex[:6]}.db"
    victim.write_bytes(b"the service's data")
    store = open_store(f"sqlite:{srv.data_dir / 'elasticthought.db'}")
    try:
        store.modify(made["id"], lambda doc: doc.update(
            {"specification-net": net + _hdf5_output(victim)}))  # fmt: skip
    finally:
        store.close()
    job = user.wait(f"/training-jobs/{ts.train(user, made['id'])['id']}", timeout=240)
    assert job["processing-state"] == "failed", job
    assert "hdf5_output_param.file_name names a file on the server" in job["processing-log"]
    assert victim.read_bytes() == b"the service's data"
