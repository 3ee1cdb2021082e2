"""`elasticthought layers`: list the Caffe layer types the torch engine supports."""

from __future__ import annotations

import argparse

HELP = "list the Caffe layer types the torch engine supports"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "type",
        nargs="?",
        default="",
        help="a layer type to look up: exit 0 when supported, else 1 naming the nearest one",
    )


def run(args: argparse.Namespace) -> int:
    from elasticthought.engine.torch.layer import LAYERS, UnsupportedLayer, layer_class
    from elasticthought.engine.torch.net import _load_data_layers

    _load_data_layers()
    if args.type:
        try:
            layer_class(args.type)
        except UnsupportedLayer as exc:
            print(str(exc).split("; supported:")[0])
            return 1
        print(f"{args.type}: supported")
        return 0
    from elasticthought.engine.torch.layer import OPT_IN

    for name in sorted(set(LAYERS) | set(OPT_IN)):
        print(f"{name} (opt-in: {OPT_IN[name]})" if name in OPT_IN else name)
    return 0
