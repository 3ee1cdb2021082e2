"""The per-layer golden cases made with real BVLC Caffe for the layers added in issue 18.

Pure data (no imports beyond the standard library) so that both the generator (`generate.py`,
run under Debian's python3 with pycaffe) and the tests (the project's venv) read it.

A case: `case` (folder name), `what`, `phase`, `inputs` (blob -> (shape, draw)), `layers`
(prototxt text of the layer(s) under test, after one Input layer per input), optional
`params` (("<layer>.<i>") -> draw, default `DEFAULT_PARAM_DRAW`), `forward_only`, and `files`
(name -> text written next to net.prototxt, e.g. an InfogainLoss matrix made by the
generator). Draws are (kind, *args) as in golden/README.md: normal std, uniform lo hi,
labels n, choice values, const value, intnormal std, plus `probs` (positive rows that sum to
one along axis 1) and `pairs` (0/1 similarity labels).
"""

from __future__ import annotations

DEFAULT_PARAM_DRAW = ("uniform", -0.5, 0.5)


def _layer(
    name: str, type_: str, bottoms: list[str], tops: list[str], body: str = "", extra: str = ""
) -> str:
    lines = [f'layer {{\n  name: "{name}"\n  type: "{type_}"']
    lines += [f'  bottom: "{b}"' for b in bottoms]
    lines += [f'  top: "{t}"' for t in tops]
    if extra:
        lines.append("  " + extra)
    if body:
        lines.append("  " + body)
    return "\n".join(lines) + "\n}\n"


def _contrastive(
    case: str,
    what: str,
    params: str,
    n: int = 6,
    c: int = 4,
    spatial: bool = False,
    std: float = 0.4,
    extra: str = "",
) -> dict:
    shape = [n, c, 1, 1] if spatial else [n, c]
    return {
        "case": case,
        "what": what,
        "phase": "TRAIN",
        "inputs": {
            "a": (shape, ("normal", std)),
            "b": (shape, ("normal", std)),
            "sim": ([n], ("pairs",)),
        },
        "layers": _layer(
            "loss",
            "ContrastiveLoss",
            ["a", "b", "sim"],
            ["loss"],
            f"contrastive_loss_param {{ {params} }}" if params else "",
            extra,
        ),
    }


CASES: list[dict] = [
    _contrastive(
        "contrastive_default",
        "ContrastiveLoss margin 1 (default) on (6,4) pairs, "
        "mixed similar/dissimilar, some dissimilar pairs beyond the margin",
        "",
    ),
    _contrastive(
        "contrastive_margin2_4d",
        "ContrastiveLoss margin 2 on (8,5,1,1) pairs (the siamese example's layout)",
        "margin: 2",
        n=8,
        c=5,
        spatial=True,
        std=0.6,
    ),
    _contrastive(
        "contrastive_legacy",
        "ContrastiveLoss legacy_version: max(margin - d^2, 0)",
        "margin: 1.5 legacy_version: true",
        n=8,
        c=3,
        std=0.5,
    ),
    {
        "case": "contrastive_weight3_propagate_down",
        "what": "ContrastiveLoss (margin 1.2, loss_weight 3) behind two InnerProducts, "
        "propagate_down false for b and no force_backward: ip_b gets no diff",
        "phase": "TRAIN",
        "force_backward": False,
        "inputs": {
            "x": ([6, 5], ("normal", 0.5)),
            "y": ([6, 5], ("normal", 0.5)),
            "sim": ([6], ("pairs",)),
        },
        "layers": _layer(
            "ip_a", "InnerProduct", ["x"], ["a"], "inner_product_param { num_output: 3 }"
        )
        + _layer("ip_b", "InnerProduct", ["y"], ["b"], "inner_product_param { num_output: 3 }")
        + _layer(
            "loss",
            "ContrastiveLoss",
            ["a", "b", "sim"],
            ["loss"],
            "contrastive_loss_param { margin: 1.2 }",
            "loss_weight: 3\n  propagate_down: true\n  propagate_down: false\n"
            "  propagate_down: false",
        ),
    },
]
