"""A deploy net run by real Caffe (engine `caffe`): the same surface as the torch engine's
`engine.torch.deploy.DeployNet`
(`probabilities`, `input`, `output`, `outputs`, `applies_softmax`) with the forward done by
`caffe.Net` in a child process (`engine.caffe.backend.classify`). The input arrays come from
the same preprocessing as the torch engine's; only the forward differs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elasticthought.engine.interface import DeployError


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass
class CaffeDeployNet:
    deploy_path: str
    model_path: str
    input: str
    output: str
    outputs: int
    applies_softmax: bool
    python: str
    prefix: str

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """N x K class probabilities of a N x C x H x W float32 batch."""
        from elasticthought.engine.caffe.backend import CaffeError, classify

        try:
            out = classify(
                self.deploy_path,
                self.model_path,
                {self.input: np.asarray(batch, dtype=np.float32)},
                blobs=[self.output],
                python=self.python,
                prefix=self.prefix,
            )[self.output]
        except CaffeError as exc:
            raise DeployError(f"real Caffe failed on the image(s): {exc.reason}") from None
        scores = np.asarray(out, dtype=np.float64).reshape(len(batch), -1)
        return softmax(scores) if self.applies_softmax else scores


def load_caffe_deploy(doc: dict, work: Path, model_path: str, config: object) -> CaffeDeployNet:
    """The classifier `doc`'s deploy net for real Caffe. Input/output blobs and whether the
    service applies the softmax come from the classifier (checked with the torch engine when
    it was created), or from the torch engine now for an older document."""
    from elasticthought.engine.caffe.backend import caffe_available
    from elasticthought.engine.deploy import parse_deploy

    parse_deploy(doc["specification"])  # refuses data layers and fields naming server files
    python = getattr(config, "caffe_python", "/usr/bin/python3")
    prefix = getattr(config, "caffe_prefix", "/opt/elasticthought-caffe")
    ok, reason = caffe_available(python, prefix)
    if not ok:
        raise DeployError(f"engine 'caffe' cannot run here: {reason}")
    deploy_path = work / "deploy.prototxt"
    deploy_path.write_text(doc["specification"])
    facts = ("input-blob", "output-blob", "classes", "softmax-applied")
    if all(doc.get(k) is not None for k in facts):
        names = (doc["input-blob"], doc["output-blob"], int(doc["classes"]))
        applies = bool(doc["softmax-applied"])
    else:
        from elasticthought.engine.torch.deploy import load_deploy

        torch_net = load_deploy(doc["specification"], model_path)
        names = (torch_net.input, torch_net.output, torch_net.outputs)
        applies = torch_net.applies_softmax
    return CaffeDeployNet(
        deploy_path=str(deploy_path),
        model_path=model_path,
        input=names[0],
        output=names[1],
        outputs=names[2],
        applies_softmax=applies,
        python=python,
        prefix=prefix,
    )
