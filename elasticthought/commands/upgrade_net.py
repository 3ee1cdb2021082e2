"""`elasticthought upgrade-net`: old (V0/V1) Caffe nets and solvers -> the current format."""

from __future__ import annotations

import argparse
import sys

HELP = "upgrade a V0/V1 net prototxt (or .caffemodel, or solver) to the current Caffe format"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="net prototxt, binary .caffemodel, or solver prototxt")
    parser.add_argument("output", nargs="?", default="-", help="where to write ('-': stdout)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument(
        "--binary",
        action="store_true",
        help="input and output are binary NetParameters (.caffemodel)",
    )
    kind.add_argument("--solver", action="store_true", help="input is a solver prototxt")


def run(args: argparse.Namespace) -> int:
    from elasticthought.engine.caffemodel import read_caffemodel, write_caffemodel
    from elasticthought.engine.errors import FormatError
    from elasticthought.engine.prototxt import read_net, read_solver, to_text

    binary = args.binary or args.input.endswith(".caffemodel")
    try:
        if binary:
            if args.output == "-":
                print("error: binary output needs an OUTPUT file", file=sys.stderr)
                return 2
            write_caffemodel(read_caffemodel(args.input), args.output)
            print(f"Wrote upgraded NetParameter binary proto to {args.output}", file=sys.stderr)
            return 0
        msg = read_solver(args.input) if args.solver else read_net(args.input)
    except (FormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = to_text(msg)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"Wrote upgraded text proto to {args.output}", file=sys.stderr)
    return 0
