"""`elasticthought convert-imageset`: images -> LMDB/LevelDB of Datums (as Caffe's tool)."""

from __future__ import annotations

import argparse
import sys

HELP = "convert a folder-per-label tree or a '<file> <label>' list into an LMDB/LevelDB of Datums"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root", help="folder holding the images (one folder per label without LIST)"
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="[LIST] DB",
        help="optional list file ('<path relative to ROOT> <label>' lines), then the new database",
    )
    parser.add_argument("--backend", default="lmdb", choices=("lmdb", "leveldb"))
    parser.add_argument("--resize-height", "--resize_height", type=int, default=0)
    parser.add_argument("--resize-width", "--resize_width", type=int, default=0)
    parser.add_argument("--gray", action="store_true", help="store 1-channel grayscale images")
    parser.add_argument(
        "--encoded", action="store_true", help="store encoded images (PNG/JPEG bytes)"
    )
    parser.add_argument(
        "--encode-type",
        "--encode_type",
        default="",
        help="png or jpg for --encoded (default: each file's own format)",
    )
    parser.add_argument("--shuffle", action="store_true", help="shuffle the order of the images")
    parser.add_argument("--seed", type=int, default=None, help="seed for --shuffle")
    parser.add_argument(
        "--check-size",
        "--check_size",
        action="store_true",
        help="fail unless every image has the same size",
    )
    parser.add_argument(
        "--labels-file",
        default=None,
        help="folder-per-label mode: write the label names (line N = label N) to this file",
    )


def run(args: argparse.Namespace) -> int:
    from elasticthought.engine.errors import FormatError
    from elasticthought.engine.imageset import convert_imageset

    if len(args.paths) > 2:
        print("error: expected ROOT [LIST] DB", file=sys.stderr)
        return 2
    listfile, out = (None, args.paths[0]) if len(args.paths) == 1 else args.paths
    try:
        result = convert_imageset(
            args.root,
            listfile,
            out,
            backend=args.backend,
            resize_height=args.resize_height,
            resize_width=args.resize_width,
            gray=args.gray,
            encoded=args.encoded,
            shuffle=args.shuffle,
            seed=args.seed,
            encode_type=args.encode_type,
            check_size=args.check_size,
            progress=lambda done, total: print(f"Processed {done} of {total} files."),
        )
        if args.labels_file and result.labels:
            with open(args.labels_file, "w", encoding="utf-8") as fh:
                fh.writelines(f"{name}\n" for name in result.labels)
    except (FormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in result.skipped:
        print(f"warning: could not read image {name}; skipped", file=sys.stderr)
    for index, name in enumerate(result.labels):
        print(f"label {index}: {name}")
    print(f"Wrote {result.count} records to {out} ({args.backend}).")
    return 0
