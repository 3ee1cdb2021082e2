"""`elasticthought compute-image-mean`: mean image of a Datum database (Caffe's tool)."""

from __future__ import annotations

import argparse
import sys

HELP = "compute the mean image of an LMDB/LevelDB of Datums and write it as a .binaryproto"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("db", help="LMDB or LevelDB folder of Datums")
    parser.add_argument("output", nargs="?", help="mean .binaryproto to write (optional)")
    parser.add_argument(
        "--backend",
        choices=("lmdb", "leveldb"),
        default=None,
        help="database kind (default: detected)",
    )


def run(args: argparse.Namespace) -> int:
    from elasticthought.engine.caffemodel import write_mean_binaryproto
    from elasticthought.engine.errors import FormatError
    from elasticthought.engine.imageset import compute_image_mean

    try:
        mean = compute_image_mean(args.db, args.backend)
        if args.output:
            write_mean_binaryproto(mean, args.output)
    except (FormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for channel, value in enumerate(mean.reshape(mean.shape[0], -1).mean(axis=1)):
        print(f"mean_value channel [{channel}]: {value:g}")
    if args.output:
        print(f"Wrote mean of shape {tuple(mean.shape)} to {args.output}")
    return 0
