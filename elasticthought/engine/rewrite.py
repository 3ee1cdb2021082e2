"""Per-job rewrite of a solver + net so that they run inside one job's work directory.

The training runner calls `rewrite_for_job` with the user's solver and net, the job's work
folder and the database (or list file) each phase reads. It points every data layer's source
at those paths (by the phase its include rules give it), sets `data_param.backend` to the kind
of database actually there, optionally sets the mean file, points the solver's `net` at the
rewritten net file and its `snapshot_prefix` into the work folder, and writes both files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from elasticthought.engine.db import detect_backend, normalize_backend
from elasticthought.engine.errors import FormatError
from elasticthought.engine.netstate import phase_value
from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.prototxt import to_text
from elasticthought.engine.upgrade import upgrade_net, upgrade_solver

#: Layer type -> the parameter message holding its `source`.
SOURCE_PARAMS = {
    "Data": "data_param",
    "ImageData": "image_data_param",
    "HDF5Data": "hdf5_data_param",
    "WindowData": "window_data_param",
}
_PHASE_NAMES = {caffe_pb2.TRAIN: "TRAIN", caffe_pb2.TEST: "TEST"}


@dataclass
class JobFiles:
    """What `rewrite_for_job` wrote: file paths and the rewritten messages."""

    solver_path: Path
    net_path: Path
    solver: caffe_pb2.SolverParameter
    net: caffe_pb2.NetParameter
    snapshot_prefix: str


def layer_phases(layer: caffe_pb2.LayerParameter) -> set[str]:
    """Phases ("TRAIN"/"TEST") a layer can run in, from its `phase` or include/exclude rules."""
    if layer.HasField("phase"):
        return {_PHASE_NAMES[layer.phase]}
    phases = {"TRAIN", "TEST"}
    if len(layer.include):
        included = set()
        for rule in layer.include:
            if not rule.HasField("phase"):
                return phases
            included.add(_PHASE_NAMES[rule.phase])
        return included
    for rule in layer.exclude:
        only_phase = not (
            rule.HasField("min_level")
            or rule.HasField("max_level")
            or len(rule.stage)
            or len(rule.not_stage)
        )
        if rule.HasField("phase") and only_phase:
            phases.discard(_PHASE_NAMES[rule.phase])
    return phases


def data_layers(net: caffe_pb2.NetParameter) -> list[tuple[caffe_pb2.LayerParameter, set[str]]]:
    """(layer, phases) of every layer that reads a `source` (Data, ImageData, HDF5Data, ...)."""
    return [(layer, layer_phases(layer)) for layer in net.layer if layer.type in SOURCE_PARAMS]


def _phase_key(phase: str | int) -> str:
    return _PHASE_NAMES[phase_value(phase)]


def _pick(mapping: Mapping[str, str], phases: set[str], layer_name: str) -> str | None:
    """The mapping value for a layer's phase; a layer in both phases needs one shared value."""
    values = {mapping[p] for p in phases if p in mapping}
    if not values:
        return None
    if len(values) > 1:
        raise FormatError(
            f'data layer "{layer_name}" runs in both phases but TRAIN and TEST have different '
            "sources; give it include { phase: ... } rules"
        )
    return values.pop()


def _safe_name(prefix: str) -> str:
    base = os.path.basename(prefix.rstrip("/")) if prefix else ""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")
    return base or "snapshot"


def rewrite_net_sources(
    net: caffe_pb2.NetParameter,
    sources: Mapping[str | int, str | os.PathLike],
    backend: str | int | None = None,
    mean_file: str | os.PathLike | Mapping[str | int, str | os.PathLike] | None = None,
) -> caffe_pb2.NetParameter:
    """A V2 copy of `net` whose data layers read `sources[phase]` (phase "TRAIN"/"TEST").

    Data layers get `data_param.backend` from the database found at the path (or `backend`
    when nothing is there yet). `mean_file` (one path or one per phase) is set as
    `transform_param.mean_file` of every data layer. Layers of a phase without a source keep
    theirs.
    """
    out = upgrade_net(net)
    srcs = {_phase_key(k): os.fspath(v) for k, v in sources.items()}
    if isinstance(mean_file, Mapping):
        means = {_phase_key(k): os.fspath(v) for k, v in mean_file.items()}
    elif mean_file is not None:
        means = {"TRAIN": os.fspath(mean_file), "TEST": os.fspath(mean_file)}
    else:
        means = {}
    for layer, phases in data_layers(out):
        source = _pick(srcs, phases, layer.name)
        if source is not None:
            param = getattr(layer, SOURCE_PARAMS[layer.type])
            param.source = source
            if layer.type == "Data":
                if os.path.exists(source):
                    kind = detect_backend(source)
                elif backend is not None:
                    kind = normalize_backend(backend)
                else:
                    raise FormatError(f"no database at {source} and no backend given")
                param.backend = caffe_pb2.DataParameter.DB.Value(kind.upper())
        mean = _pick(means, phases, layer.name)
        if mean is not None:
            layer.transform_param.mean_file = mean
    return out


def rewrite_for_job(
    solver: caffe_pb2.SolverParameter,
    net: caffe_pb2.NetParameter | None,
    work_dir: str | os.PathLike,
    sources: Mapping[str | int, str | os.PathLike],
    *,
    backend: str | int | None = None,
    mean_file: str | os.PathLike | Mapping[str | int, str | os.PathLike] | None = None,
    solver_name: str = "solver.prototxt",
    net_name: str = "net.prototxt",
    snapshot_name: str | None = None,
    solver_mode: str | None = None,
    device_id: int | None = None,
) -> JobFiles:
    """Rewrite `solver` and `net` for one job and write them into `work_dir`.

    - `net`: the net (any format; upgraded); None takes the solver's embedded `net_param`.
    - `sources`: {"TRAIN": path, "TEST": path} databases (or ImageData list files) per phase.
    - `backend`: used only for a Data source that does not exist yet; otherwise detected.
    - `mean_file`: optional mean `.binaryproto` (one path, or one per phase).
    - The solver's `net` becomes the absolute path of `work_dir/net_name` (the other net fields
      are cleared); `snapshot_prefix` becomes `work_dir/<snapshot_name>`, by default the file
      name part of the user's prefix (or "snapshot"), so snapshots are
      `<work_dir>/<name>_iter_<N>.caffemodel`.
    - `solver_mode` ("CPU"/"GPU") and `device_id` override the solver's when given.
    Returns the written paths and the rewritten messages; paths inside are absolute.
    """
    if net is None:
        if not solver.HasField("net_param"):
            raise FormatError("no net given and the solver embeds none (net_param)")
        net = solver.net_param
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    abs_sources = {k: os.path.abspath(v) for k, v in sources.items()}
    if isinstance(mean_file, Mapping):
        abs_mean = {k: os.path.abspath(v) for k, v in mean_file.items()}
    else:
        abs_mean = os.path.abspath(mean_file) if mean_file is not None else None
    new_net = rewrite_net_sources(net, abs_sources, backend, abs_mean)

    new_solver = upgrade_solver(solver)
    for field in ("net_param", "train_net", "test_net", "train_net_param", "test_net_param"):
        new_solver.ClearField(field)
    net_path = work / net_name
    solver_path = work / solver_name
    new_solver.net = str(net_path)
    prefix = str(work / (snapshot_name or _safe_name(solver.snapshot_prefix)))
    new_solver.snapshot_prefix = prefix
    if solver_mode is not None:
        try:
            new_solver.solver_mode = caffe_pb2.SolverParameter.SolverMode.Value(solver_mode.upper())
        except ValueError:
            raise FormatError(f"unknown solver_mode {solver_mode!r} (CPU or GPU)") from None
    if device_id is not None:
        new_solver.device_id = int(device_id)

    net_path.write_text(to_text(new_net), encoding="utf-8")
    solver_path.write_text(to_text(new_solver), encoding="utf-8")
    return JobFiles(solver_path, net_path, new_solver, new_net, prefix)
