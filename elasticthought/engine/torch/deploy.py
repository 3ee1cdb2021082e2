"""The torch engine's classifier: a deploy net with its trained weights, checked against
each other, then used to classify.

`load_deploy(text, model)` parses the deploy prototxt (V1 `input`/`input_dim` or an Input layer),
builds it with the torch engine in the TEST phase and copies the `.caffemodel`'s weights in;
every mismatch is a `DeployError` naming the layer (a prototxt syntax error stays a
`FormatError` with its line and column). `probabilities(batch)` runs it: the net's output if
it ends with Softmax, else the softmax of the output (`applies_softmax` says which).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from elasticthought.engine.deploy import parse_deploy
from elasticthought.engine.interface import DeployError

__all__ = ["DeployError", "DeployNet", "load_deploy", "parse_deploy"]


@dataclass
class DeployNet:
    net: Any
    input: str
    input_shape: tuple[int, ...]
    output: str
    outputs: int
    applies_softmax: bool

    def probabilities_raw(self, batch: np.ndarray) -> np.ndarray:
        """The output blob for a batch of one."""
        try:
            return np.asarray(self.net.forward(**{self.input: batch})[self.output])
        except (RuntimeError, ValueError) as exc:
            raise DeployError(f"the deploy net failed on the image: {exc}") from None

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """N x K class probabilities of a N x C x H x W float32 batch."""
        import torch

        with torch.no_grad():
            try:
                out = np.asarray(self.net.forward(**{self.input: batch})[self.output])
            except (RuntimeError, ValueError) as exc:
                if len(batch) == 1:
                    raise DeployError(f"the deploy net failed on the image: {exc}") from None
                # a net written for one image at a time (e.g. a Reshape with a fixed batch)
                out = np.concatenate([self.probabilities_raw(image[None]) for image in batch])
        scores = np.asarray(out, dtype=np.float64).reshape(len(batch), -1)
        if not self.applies_softmax:
            return scores
        scores = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)


def _model(model: bytes | str) -> Any:
    from elasticthought.engine.caffemodel import read_caffemodel
    from elasticthought.engine.errors import FormatError

    try:
        param = read_caffemodel(model)
    except FormatError as exc:
        raise DeployError(f"the model is not a readable .caffemodel: {exc.reason}") from None
    if not any(len(layer.blobs) for layer in param.layer):
        raise DeployError("the model holds no weights (no layer has blobs)")
    return param


def load_deploy(text: str, model: bytes | str, device: str = "cpu") -> DeployNet:
    """Build the deploy net of `text` with the weights of `model` (bytes or a path)."""
    from elasticthought.engine.torch.layer import LayerError
    from elasticthought.engine.torch.net import Net, NetError

    param = parse_deploy(text)
    try:
        net = Net(param, "TEST", device=device)
    except (NetError, LayerError, ValueError, KeyError) as exc:
        raise DeployError(f"the deploy net cannot be built: {exc}") from None
    if len(net.inputs) != 1:
        raise DeployError(
            f"the deploy net must have exactly one input blob (it has {len(net.inputs)}: "
            f"{', '.join(net.inputs) or 'none'})"
        )
    weights = _model(model)
    have = {layer.name for layer in weights.layer if len(layer.blobs)}
    for name in net.params:
        if name not in have:
            raise DeployError(f"layer {name!r} of the deploy net has no weights in the model")
    try:
        net.copy_from(weights)
    except NetError as exc:
        raise DeployError(f"the model does not fit the deploy net: {exc}") from None
    output, last_type = _output(net)
    shape = tuple(int(d) for d in net.blobs[output].shape)
    count = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if count < 1:
        raise DeployError(f"the deploy net's output {output!r} has shape {list(shape)}")
    return DeployNet(
        net=net,
        input=net.inputs[0],
        input_shape=tuple(int(d) for d in net.blobs[net.inputs[0]].shape),
        output=output,
        outputs=count,
        applies_softmax=last_type != "Softmax",
    )


def _output(net: Any) -> tuple[str, str]:
    """The classification output blob and the type of the layer that produced it."""
    outputs = list(net.outputs)
    if not outputs:
        raise DeployError("the deploy net has no output blob")
    producer: dict[str, str] = {}
    last: dict[str, int] = {}
    for i, layer in enumerate(net.param.layer):
        for top in layer.top:
            producer[top] = layer.type
            last[top] = i
    if len(outputs) > 1:
        if "prob" in outputs:
            outputs = ["prob"]
        else:
            outputs = [max(outputs, key=lambda name: last.get(name, -1))]
    return outputs[0], producer.get(outputs[0], "")
