"""Make the per-layer golden cases of `specs.py` with real BVLC Caffe (pycaffe).

Runs under the Python that imports real Caffe (Debian's /usr/bin/python3 with the prefix of
scripts/install-caffe on PYTHONPATH); `scripts/make-layer-goldens` sets that up. For every case
it writes `<out>/<case>/net.prototxt`, `case.npz` and `meta.json` in the format of
golden/README.md (the procedure is recorded in each meta.json):

1. the net: one Input layer per input, then the layer(s) under test; `force_backward: true`
   unless the case says otherwise;
2. files of BlobProtos (`blob_files`, e.g. an InfogainLoss matrix) drawn from a second seed;
   inputs and parameter blobs drawn from `numpy.random.RandomState(seed)` (seed from the case
   name), in prototxt order, then parameters in `net.params` order;
3. `net.forward()`; the diffs of the non-loss output blobs drawn next (loss tops keep the
   loss_weight Caffe gives them); `net.clear_param_diffs()`; `net.backward()`;
4. the same case rerun under `OPENBLAS_CORETYPE=Prescott` (another float32 summation order);
   each array's tolerance is `atol = max(10 * err_vs_blas_variant, 1e-5 * max_abs, 1e-7)`
   rounded up to one significant digit, `rtol = 1e-5`.

Usage: generate.py --out DIR [CASE ...]        (all cases when none are named)
       generate.py --arrays-only DIR [CASE ...] (internal: the BLAS-variant rerun)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import specs  # noqa: E402

PROCEDURE = [
    "net = caffe.Net('net.prototxt', phase)  # pycaffe, CPU mode, float32",
    "rng = numpy.random.RandomState(meta.seed)",
    "for each Input blob in prototxt order: blob.data[...] = draw(input_gen[blob], shape)",
    "for each layer in net.params order, each blob i: blob.data[...] = draw(param_gen, shape)",
    "net.forward() (`forwards` times: recurrent state carries over)",
    "output.<blob> = blob.data for every blob (no '*_split_*' blobs)",
    "param_after_forward.<layer>.<i> = parameter blobs after forward",
    "unless forward_only: for b in top_diff_blobs: blob.diff[...] = rng.normal(size=shape)",
    "net.clear_param_diffs(); net.backward()  # loss tops keep diff = loss_weight",
    "bottom_diff.<input>, diff.<blob>, param_diff.<layer>.<i> after backward",
]


def case_seed(name: str) -> int:
    return zlib.crc32(name.encode()) % (2**31)


def draw(rng: np.random.RandomState, gen, shape) -> np.ndarray:
    kind, args = gen[0], gen[1:]
    shape = tuple(shape)
    if kind == "normal":
        out = rng.normal(0, args[0], size=shape)
    elif kind == "uniform":
        out = rng.uniform(args[0], args[1], size=shape)
    elif kind == "labels":
        out = rng.randint(0, args[0], size=shape)
    elif kind == "choice":
        out = rng.choice(list(args[0]), size=shape)
    elif kind == "const":
        out = np.full(shape, args[0])
    elif kind == "intnormal":
        out = np.round(rng.normal(0, args[0], size=shape))
    elif kind == "pairs":
        out = rng.randint(0, 2, size=shape)
    elif kind == "probs":
        raw = rng.uniform(0.05, 1.0, size=shape)
        out = raw / raw.sum(axis=1, keepdims=True)
    else:
        raise ValueError(f"unknown draw {kind!r}")
    return out.astype(np.float32)


def net_text(spec: dict) -> str:
    parts = [f'name: "{spec["case"]}"\n']
    if spec.get("force_backward", True):
        parts.append("force_backward: true\n")
    for name, (shape, _) in spec["inputs"].items():
        dims = " ".join(f"dim: {d}" for d in shape)
        parts.append(
            f'layer {{\n  name: "{name}"\n  type: "Input"\n  top: "{name}"\n'
            f"  input_param {{ shape {{ {dims} }} }}\n}}\n"
        )
    parts.append(spec["layers"])
    return "".join(parts)


def run_case(caffe, spec: dict, folder: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Write net.prototxt (+ files) into `folder`, run Caffe there; (arrays, facts)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.prototxt").write_text(net_text(spec))
    blob_arrays = {}
    rng_files = np.random.RandomState(case_seed(spec["case"] + "/files"))
    for name, (shape, gen) in spec.get("blob_files", {}).items():
        value = draw(rng_files, gen, shape)
        (folder / name).write_bytes(caffe.io.array_to_blobproto(value).SerializeToString())
        blob_arrays[f"file.{name}"] = value
    phase = caffe.TRAIN if spec["phase"] == "TRAIN" else caffe.TEST
    old = os.getcwd()
    os.chdir(folder)
    try:
        net = caffe.Net("net.prototxt", phase)
        rng = np.random.RandomState(case_seed(spec["case"]))
        arrays: dict[str, np.ndarray] = dict(blob_arrays)
        for name, (shape, gen) in spec["inputs"].items():
            value = draw(rng, gen, shape)
            net.blobs[name].reshape(*shape)
            net.blobs[name].data[...] = value
            arrays[f"input.{name}"] = value
        param_gen = {}
        for layer, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                gen = spec.get("params", {}).get(f"{layer}.{i}", specs.DEFAULT_PARAM_DRAW)
                value = draw(rng, gen, blob.data.shape)
                blob.data[...] = value
                arrays[f"param.{layer}.{i}"] = value
                param_gen[f"{layer}.{i}"] = list(gen)
        for _ in range(spec.get("forwards", 1)):
            net.forward()
        inputs = list(spec["inputs"])
        for name, blob in net.blobs.items():
            if "_split_" not in name:  # inputs too: in-place layers change them
                arrays[f"output.{name}"] = blob.data.astype(np.float32).copy()
        for layer, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                arrays[f"param_after_forward.{layer}.{i}"] = blob.data.copy()
        weights = net.blob_loss_weights
        loss_blobs = {n: float(w) for n, w in weights.items() if w}
        top_diff_blobs = []
        if not spec.get("forward_only", False):
            for name in net.outputs:
                if name in loss_blobs:
                    continue
                value = rng.normal(size=net.blobs[name].data.shape).astype(np.float32)
                net.blobs[name].diff[...] = value
                arrays[f"top_diff.{name}"] = value
                top_diff_blobs.append(name)
            net.clear_param_diffs()
            net.backward()
            for name, blob in net.blobs.items():
                if "_split_" in name:
                    continue
                key = "bottom_diff" if name in inputs else "diff"
                arrays[f"{key}.{name}"] = blob.diff.astype(np.float32).copy()
            for layer, blobs in net.params.items():
                for i, blob in enumerate(blobs):
                    arrays[f"param_diff.{layer}.{i}"] = blob.diff.copy()
        facts = {"loss_blobs": loss_blobs, "top_diff_blobs": top_diff_blobs, "param_gen": param_gen}
        return arrays, facts
    finally:
        os.chdir(old)


def round_up(x: float) -> float:
    if x <= 0:
        return 0.0
    e = math.floor(math.log10(x))
    m = math.ceil(x / 10**e - 1e-9)
    return float(f"{m}e{e}")


def caffe_version(caffe) -> str:
    return f"BVLC caffe {getattr(caffe, '__version__', '?')} (Debian 1.0.0+git20180821.99bd997)"


def selected(names: list[str]) -> list[dict]:
    if not names:
        return list(specs.CASES)
    by_name = {c["case"]: c for c in specs.CASES}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown case(s): {', '.join(unknown)}")
    return [by_name[n] for n in names]


def import_caffe():
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe

    caffe.set_mode_cpu()
    return caffe


def arrays_only(out: Path, cases: list[dict]) -> None:
    caffe = import_caffe()
    for spec in cases:
        with tempfile.TemporaryDirectory() as tmp:
            arrays, _ = run_case(caffe, spec, Path(tmp))
        np.savez(out / f"{spec['case']}.npz", **arrays)


def generate(out: Path, cases: list[dict]) -> None:
    caffe = import_caffe()
    with tempfile.TemporaryDirectory() as variant_dir:
        env = dict(os.environ, OPENBLAS_CORETYPE="Prescott")
        subprocess.run(
            [sys.executable, __file__, "--arrays-only", variant_dir, *[c["case"] for c in cases]],
            check=True,
            env=env,
        )
        for spec in cases:
            folder = out / spec["case"]
            arrays, facts = run_case(caffe, spec, folder)
            with np.load(Path(variant_dir) / f"{spec['case']}.npz") as npz:
                variant = {k: npz[k] for k in npz.files}
            exact = [k for k in arrays if k.split(".")[0] in ("input", "param", "top_diff", "file")]
            meta_arrays = {}
            for key, value in arrays.items():
                if key in exact:
                    continue
                max_abs = float(np.max(np.abs(value))) if value.size else 0.0
                err_blas = float(np.max(np.abs(value - variant[key]))) if value.size else 0.0
                atol = round_up(max(10 * err_blas, 1e-5 * max_abs, 1e-7))
                meta_arrays[key] = {
                    "shape": list(value.shape),
                    "max_abs": max_abs,
                    "err_vs_blas_variant": err_blas,
                    "atol": atol,
                    "rtol": 1e-5,
                }
            meta = {
                "family": "caffe_layers",
                "case": spec["case"],
                "what": spec["what"],
                "caffe_version": caffe_version(caffe),
                "phase": spec["phase"],
                "seed": case_seed(spec["case"]),
                "generator": "tests/engine/torch/caffe_layers/generate.py "
                "(scripts/make-layer-goldens)",
                "procedure": PROCEDURE,
                "input_gen": {n: list(g) for n, (_, g) in spec["inputs"].items()},
                "param_gen": facts["param_gen"],
                "inputs": {n: list(s) for n, (s, _) in spec["inputs"].items()},
                "forward_only": bool(spec.get("forward_only", False)),
                "forwards": int(spec.get("forwards", 1)),
                "force_backward": bool(spec.get("force_backward", True)),
                "top_diff_blobs": facts["top_diff_blobs"],
                "loss_blobs": facts["loss_blobs"],
                "exact_arrays": exact,
                "tolerance": "atol = max(10 * err_vs_blas_variant, 1e-5 * max_abs, 1e-7) "
                "rounded up to one significant digit; rtol = 1e-5",
                "arrays": meta_arrays,
            }
            np.savez_compressed(folder / "case.npz", **arrays)
            (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
            print(f"{spec['case']}: {len(meta_arrays)} arrays")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=Path, help="folder that receives one folder per case")
    group.add_argument("--arrays-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    args = parser.parse_args(argv)
    cases = selected(args.cases)
    if args.arrays_only:
        arrays_only(args.arrays_only, cases)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        generate(args.out, cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
