"""The torch engine's evaluation of a trained model on the whole test split: the TEST net over
every test record exactly once.

The TEST net's data layer reads the split from its first record, batch after batch, wrapping at
the end; `ceil(count / batch)` forwards cover every record once, and the rows of the last batch
past `count` (wrapped-around records) are ignored. Accuracy is computed here from the blobs that
feed the net's Accuracy layer (scores and label), as Caffe's Accuracy layer counts it: a record is
correct when fewer than `top_k` classes score at least as high as the true class (so a tie
counts against), records whose label is `ignore_label` are skipped. The loss is the mean
softmax cross-entropy of the same scores when a SoftmaxWithLoss layer reads them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from elasticthought.engine.interface import EvaluationError
from elasticthought.engine.transform import DATA_PARAMS, NoDataLayer, data_layer


def _target(net: Any) -> tuple[int, str, str, dict[str, Any]]:
    """(layer index, scores blob, label blob, accuracy options) to evaluate with."""
    bottoms = net.bottom_names
    for i, (name, lp) in enumerate(zip(net.layer_names, net.param.layer, strict=True)):
        if lp.type == "Accuracy" and len(bottoms[name]) >= 2:
            ap = lp.accuracy_param
            opts = {
                "top_k": int(ap.top_k),
                "axis": int(ap.axis),
                "ignore_label": int(ap.ignore_label) if ap.HasField("ignore_label") else None,
            }
            return i, bottoms[name][0], bottoms[name][1], opts
    for i, (name, lp) in enumerate(zip(net.layer_names, net.param.layer, strict=True)):
        if lp.type == "SoftmaxWithLoss" and len(bottoms[name]) >= 2:
            lsp = lp.loss_param
            opts = {
                "top_k": 1,
                "axis": int(lp.softmax_param.axis),
                "ignore_label": int(lsp.ignore_label) if lsp.HasField("ignore_label") else None,
            }
            return i, bottoms[name][0], bottoms[name][1], opts
    raise EvaluationError("the TEST net has no Accuracy or SoftmaxWithLoss layer to evaluate with")


def _softmax_loss_reads(net: Any, scores: str, label: str) -> bool:
    bottoms = net.bottom_names
    return any(
        lp.type == "SoftmaxWithLoss" and bottoms[name][:2] == [scores, label]
        for name, lp in zip(net.layer_names, net.param.layer, strict=True)
    )


def _rows(scores: np.ndarray, labels: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores as (records, inner, classes) and labels as (records, inner)."""
    axis = axis % scores.ndim
    outer = int(np.prod(scores.shape[:axis]))
    classes = scores.shape[axis]
    inner = int(np.prod(scores.shape[axis + 1 :]))
    s = scores.reshape(outer, classes, inner).transpose(0, 2, 1)
    return s, labels.reshape(outer, inner)


def score_batch(
    scores: np.ndarray, labels: np.ndarray, top_k: int, ignore_label: int | None, with_loss: bool
) -> tuple[int, int, float]:
    """(correct, counted, summed loss) of one batch's rows (Caffe's Accuracy rule)."""
    s = scores.astype(np.float64).reshape(-1, scores.shape[-1])
    lab = labels.reshape(-1).astype(np.int64)
    keep = np.ones(len(lab), dtype=bool) if ignore_label is None else lab != ignore_label
    s, lab = s[keep], lab[keep]
    if len(lab) == 0:
        return 0, 0, 0.0
    if np.any((lab < 0) | (lab >= s.shape[1])):
        bad = int(lab[(lab < 0) | (lab >= s.shape[1])][0])
        raise EvaluationError(f"label {bad} is outside the {s.shape[1]} scores of the net")
    true = s[np.arange(len(lab)), lab]
    better = (s >= true[:, None]).sum(axis=1) - 1  # the true class itself is counted once
    correct = int((better < top_k).sum())
    loss = 0.0
    if with_loss:
        shifted = s - s.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        p = np.exp(logp[np.arange(len(lab)), lab])
        loss = float(-np.log(np.maximum(p, np.finfo(np.float32).tiny)).sum())
    return correct, len(lab), loss


def evaluate(
    net_path: str,
    weights: str,
    count: int,
    device: Any = "cpu",
    cancel_check: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run the TEST net of `net_path` with `weights` over the `count` test records once."""
    import torch

    from elasticthought.engine.torch.net import Net

    if count <= 0:
        raise EvaluationError("the test split is empty")
    net = Net(net_path, "TEST", weights=weights, device=device)
    try:
        try:
            layer = data_layer(net.param)
        except NoDataLayer as exc:
            raise EvaluationError(str(exc)) from None
        batch = int(getattr(layer, DATA_PARAMS[layer.type]).batch_size)
        if batch <= 0:
            raise EvaluationError(f"data layer {layer.name!r} has batch_size {batch}")
        index, scores_name, label_name, opts = _target(net)
        input_shape = list(net.blobs[layer.top[0]].shape[1:]) if layer.top else None
        with_loss = _softmax_loss_reads(net, scores_name, label_name)
        end = net.layer_names[index - 1] if index > 0 else None
        forwards = math.ceil(count / batch)
        correct = counted = 0
        loss_sum = 0.0
        with torch.no_grad():
            for b in range(forwards):
                if cancel_check is not None and cancel_check():
                    raise EvaluationError("evaluation canceled")
                net.forward(end=end)
                scores = np.asarray(net.blobs[scores_name].data)
                labels = np.asarray(net.blobs[label_name].data)
                s, lab = _rows(scores, labels, opts["axis"])
                take = min(batch, count - b * batch, s.shape[0])
                c, n, loss = score_batch(
                    s[:take], lab[:take], opts["top_k"], opts["ignore_label"], with_loss
                )
                correct += c
                counted += n
                loss_sum += loss
    finally:
        net.close()
    result: dict[str, Any] = {
        "accuracy": correct / counted if counted else 0.0,
        "correct": correct,
        "count": counted,
        "records": count,
        "forwards": forwards,
        "batch-size": batch,
        "scores-blob": scores_name,
        "label-blob": label_name,
        "top-k": opts["top_k"],
        "input-shape": input_shape,
    }
    if with_loss and counted:
        result["loss"] = loss_sum / counted
    return result
