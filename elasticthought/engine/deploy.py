"""A deploy prototxt, read before any engine builds it: the net a classifier runs."""

from __future__ import annotations

from typing import Any

from elasticthought.engine.interface import DeployError

#: Layers that read a dataset: a deploy net takes its images through its input instead.
DATA_LAYER_TYPES = ("Data", "ImageData", "MemoryData", "HDF5Data", "WindowData", "DummyData")


def parse_deploy(text: str) -> Any:
    """The deploy NetParameter (V2); `FormatError` with line/column on bad text, `DeployError`
    for a data layer or a field naming a server file (`file_fields`)."""
    from elasticthought.engine.file_fields import named_files_in_net
    from elasticthought.engine.prototxt import parse_net

    net = parse_net(text)
    for layer in net.layer:
        if layer.type in DATA_LAYER_TYPES:
            raise DeployError(
                f"layer {layer.name!r} is a {layer.type} layer: a deploy net takes images through "
                "its input (input/input_dim or an Input layer), not a data layer"
            )
    named = named_files_in_net(net)
    if named:
        raise DeployError("; ".join(n.describe() for n in named))
    return net
