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


def _one(
    case: str,
    what: str,
    type_: str,
    inputs: dict,
    body: str = "",
    bottoms: list[str] | None = None,
    tops: list[str] | None = None,
    **extra,
) -> dict:
    """A case with one layer `l1` of `type_` on the inputs (in order) -> top `l1`."""
    spec = {
        "case": case,
        "what": what,
        "phase": extra.pop("phase", "TRAIN"),
        "inputs": inputs,
        "layers": _layer(
            "l1",
            type_,
            bottoms if bottoms is not None else list(inputs),
            tops or ["l1"],
            body,
            extra.pop("layer_extra", ""),
        ),
    }
    spec.update(extra)
    return spec


X4 = ([2, 3, 4, 5], ("normal", 1.0))

CASES += [
    # --- Clip, Swish, Threshold ---------------------------------------------------------------
    _one("clip", "Clip min -0.5 max 0.8", "Clip", {"x": X4}, "clip_param { min: -0.5 max: 0.8 }"),
    _one(
        "clip_bounds_inclusive",
        "Clip min -1 max 1 on integer-valued inputs: values on a bound keep their gradient",
        "Clip",
        {"x": ([4, 6], ("intnormal", 1.5))},
        "clip_param { min: -1 max: 1 }",
    ),
    _one("swish", "Swish beta 1 (default): x * sigmoid(x)", "Swish", {"x": X4}),
    _one(
        "swish_beta_inplace",
        "Swish beta 2.5, in place (top == bottom)",
        "Swish",
        {"x": ([3, 7], ("normal", 2.0))},
        "swish_param { beta: 2.5 }",
        tops=["x"],
    ),
    _one(
        "threshold",
        "Threshold 0 (default): 1 where x > 0 (forward only: Caffe has no backward)",
        "Threshold",
        {"x": ([3, 8], ("intnormal", 1.0))},
        forward_only=True,
    ),
    _one(
        "threshold_half",
        "Threshold 0.5 on values with ties at 0.5 (forward only)",
        "Threshold",
        {"x": ([4, 6], ("choice", [0.0, 0.25, 0.5, 0.75, 1.0]))},
        "threshold_param { threshold: 0.5 }",
        forward_only=True,
    ),
    # --- Tile -----------------------------------------------------------------------------------
    _one(
        "tile_axis1",
        "Tile axis 1 (default) tiles 3 on (2,3,4)",
        "Tile",
        {"x": ([2, 3, 4], ("normal", 1.0))},
        "tile_param { tiles: 3 }",
    ),
    _one(
        "tile_axis0",
        "Tile axis 0 tiles 2 on (2,3,2,2)",
        "Tile",
        {"x": ([2, 3, 2, 2], ("normal", 1.0))},
        "tile_param { axis: 0 tiles: 2 }",
    ),
    _one(
        "tile_axis_last",
        "Tile axis -1 tiles 4 on (3,2,5)",
        "Tile",
        {"x": ([3, 2, 5], ("normal", 1.0))},
        "tile_param { axis: -1 tiles: 4 }",
    ),
    # --- Reduction ------------------------------------------------------------------------------
    _one("reduction_sum", "Reduction SUM axis 0 (defaults): a scalar top", "Reduction", {"x": X4}),
    _one(
        "reduction_asum_axis1_coeff",
        "Reduction ASUM axis 1 coeff 2 on (2,3,4,5) -> (2,)",
        "Reduction",
        {"x": X4},
        "reduction_param { operation: ASUM axis: 1 coeff: 2 }",
    ),
    _one(
        "reduction_sumsq_axis2",
        "Reduction SUMSQ axis 2 on (2,3,4,5) -> (2,3)",
        "Reduction",
        {"x": X4},
        "reduction_param { operation: SUMSQ axis: 2 }",
    ),
    _one(
        "reduction_mean_last_coeff",
        "Reduction MEAN axis -1 coeff -0.5 on (2,3,4,5) -> (2,3,4)",
        "Reduction",
        {"x": X4},
        "reduction_param { operation: MEAN axis: -1 coeff: -0.5 }",
    ),
    {
        "case": "reduction_as_loss",
        "what": "Reduction SUMSQ (axis 0) used as a loss with loss_weight 0.5 behind an "
        "InnerProduct, no force_backward",
        "phase": "TRAIN",
        "force_backward": False,
        "inputs": {"x": ([3, 4], ("normal", 1.0))},
        "layers": _layer(
            "ip", "InnerProduct", ["x"], ["y"], "inner_product_param { num_output: 2 }"
        )
        + _layer(
            "l1",
            "Reduction",
            ["y"],
            ["loss"],
            "reduction_param { operation: SUMSQ }",
            "loss_weight: 0.5",
        ),
    },
    # --- MVN --------------------------------------------------------------------------------------
    _one(
        "mvn",
        "MVN defaults: per (n, c) mean and variance normalization, eps 1e-9",
        "MVN",
        {"x": ([2, 3, 4, 5], ("normal", 2.0))},
    ),
    _one(
        "mvn_mean_only",
        "MVN normalize_variance false: mean subtraction only",
        "MVN",
        {"x": ([2, 3, 4, 5], ("normal", 2.0))},
        "mvn_param { normalize_variance: false }",
    ),
    _one(
        "mvn_across_channels",
        "MVN across_channels: one mean/variance per sample",
        "MVN",
        {"x": ([3, 2, 3, 4], ("normal", 1.5))},
        "mvn_param { across_channels: true }",
    ),
    _one(
        "mvn_eps_large",
        "MVN eps 0.5 (added to the std): shows Caffe's approximate backward",
        "MVN",
        {"x": ([2, 2, 3, 3], ("normal", 0.7))},
        "mvn_param { eps: 0.5 }",
    ),
    # --- Parameter, Embed ---------------------------------------------------------------------
    {
        "case": "parameter_times_input",
        "what": "Parameter shape (3,4) multiplied (Eltwise PROD) with an input: the parameter's "
        "diff is its top's diff",
        "phase": "TRAIN",
        "inputs": {"x": ([3, 4], ("normal", 1.0))},
        "layers": _layer("p", "Parameter", [], ["p"], "parameter_param { shape { dim: 3 dim: 4 } }")
        + _layer("prod", "Eltwise", ["p", "x"], ["prod"], "eltwise_param { operation: PROD }"),
    },
]


def _embed(case: str, what: str, body: str, idx_shape: list[int], k: int, n: int) -> dict:
    return {
        "case": case,
        "what": what,
        "phase": "TRAIN",
        "force_backward": False,
        "inputs": {
            "idx": (idx_shape, ("labels", k)),
            "target": ([*idx_shape, n], ("normal", 1.0)),
        },
        "layers": _layer("embed", "Embed", ["idx"], ["emb"], body)
        + _layer("loss", "EuclideanLoss", ["emb", "target"], ["loss"]),
    }


CASES += [
    _embed(
        "embed_bias",
        "Embed K=7 -> N=4 with bias on (2,5) indices, EuclideanLoss behind",
        "embed_param { num_output: 4 input_dim: 7 }",
        [2, 5],
        7,
        4,
    ),
    _embed(
        "embed_nobias_repeats",
        "Embed K=3 -> N=5 without bias on 12 indices (repeats: weight diffs accumulate)",
        "embed_param { num_output: 5 input_dim: 3 bias_term: false }",
        [12],
        3,
        5,
    ),
    # --- HingeLoss, MultinomialLogisticLoss -----------------------------------------------------
    _one(
        "hinge_l1",
        "HingeLoss L1 (default) on (6,5) scores",
        "HingeLoss",
        {"x": ([6, 5], ("normal", 1.0)), "label": ([6], ("labels", 5))},
    ),
    _one(
        "hinge_l2",
        "HingeLoss L2 on (6,5) scores",
        "HingeLoss",
        {"x": ([6, 5], ("normal", 1.0)), "label": ([6], ("labels", 5))},
        "hinge_loss_param { norm: L2 }",
    ),
    _one(
        "hinge_l1_4d_weight2",
        "HingeLoss L1 on (4,3,1,1) scores, loss_weight 2",
        "HingeLoss",
        {"x": ([4, 3, 1, 1], ("normal", 1.5)), "label": ([4], ("labels", 3))},
        layer_extra="loss_weight: 2",
    ),
    _one(
        "multinomial",
        "MultinomialLogisticLoss on (6,5) probabilities",
        "MultinomialLogisticLoss",
        {"p": ([6, 5], ("probs",)), "label": ([6], ("labels", 5))},
    ),
    _one(
        "multinomial_4d_weight",
        "MultinomialLogisticLoss on (4,3,1,1) probabilities with (4,1,1,1) labels, loss_weight 0.5",
        "MultinomialLogisticLoss",
        {"p": ([4, 3, 1, 1], ("probs",)), "label": ([4, 1, 1, 1], ("labels", 3))},
        layer_extra="loss_weight: 0.5",
    ),
    {
        "case": "multinomial_after_softmax",
        "what": "Softmax then MultinomialLogisticLoss (the pre-SoftmaxWithLoss pattern)",
        "phase": "TRAIN",
        "inputs": {"x": ([5, 4], ("normal", 2.0)), "label": ([5], ("labels", 4))},
        "layers": _layer("prob", "Softmax", ["x"], ["prob"])
        + _layer("loss", "MultinomialLogisticLoss", ["prob", "label"], ["loss"]),
    },
    # --- InfogainLoss --------------------------------------------------------------------------
    _one(
        "infogain_source",
        "InfogainLoss with H (5x5) read from a BlobProto file",
        "InfogainLoss",
        {"x": ([6, 5], ("normal", 1.0)), "label": ([6], ("labels", 5))},
        'infogain_loss_param { source: "H.binaryproto" }',
        blob_files={"H.binaryproto": ([1, 1, 5, 5], ("uniform", 0.0, 1.0))},
    ),
    _one(
        "infogain_spatial_ignore_prob",
        "InfogainLoss on spatial (2,4,3,3) with ignore_label 1, "
        "VALID normalization and the probability as a second top",
        "InfogainLoss",
        {"x": ([2, 4, 3, 3], ("normal", 1.0)), "label": ([2, 1, 3, 3], ("labels", 4))},
        'infogain_loss_param { source: "H.binaryproto" }\n  loss_param { ignore_label: 1 }',
        tops=["loss", "prob"],
        layer_extra="loss_weight: 1\n  loss_weight: 0",
        blob_files={"H.binaryproto": ([4, 4], ("uniform", 0.0, 2.0))},
    ),
    _one(
        "infogain_batchsize_axis2",
        "InfogainLoss axis 2 on (2,3,4) with normalization BATCH_SIZE, loss_weight 1.5",
        "InfogainLoss",
        {"x": ([2, 3, 4], ("normal", 1.0)), "label": ([2, 3], ("labels", 4))},
        'infogain_loss_param { source: "H.binaryproto" axis: 2 }\n'
        "  loss_param { normalization: BATCH_SIZE }",
        blob_files={"H.binaryproto": ([4, 4], ("uniform", -0.5, 1.0))},
        layer_extra="loss_weight: 1.5",
    ),
    {
        "case": "infogain_matrix_bottom",
        "what": "InfogainLoss with H as a third bottom, behind an InnerProduct (no "
        "force_backward: Caffe cannot backpropagate to H)",
        "phase": "TRAIN",
        "force_backward": False,
        "inputs": {
            "x": ([5, 3], ("normal", 1.0)),
            "label": ([5], ("labels", 4)),
            "H": ([4, 4], ("uniform", 0.0, 1.0)),
        },
        "layers": _layer(
            "ip", "InnerProduct", ["x"], ["score"], "inner_product_param { num_output: 4 }"
        )
        + _layer("loss", "InfogainLoss", ["score", "label", "H"], ["loss"]),
    },
    # --- BatchReindex, Filter -----------------------------------------------------------------
    {
        "case": "batch_reindex_repeats",
        "what": "BatchReindex of an InnerProduct's (4,2) top with 6 indices (repeats: diffs "
        "add up), EuclideanLoss behind, no force_backward",
        "phase": "TRAIN",
        "force_backward": False,
        "inputs": {
            "x": ([4, 3], ("normal", 1.0)),
            "idx": ([6], ("labels", 4)),
            "target": ([6, 2], ("normal", 1.0)),
        },
        "layers": _layer(
            "ip", "InnerProduct", ["x"], ["y"], "inner_product_param { num_output: 2 }"
        )
        + _layer("reindex", "BatchReindex", ["y", "idx"], ["r"])
        + _layer("loss", "EuclideanLoss", ["r", "target"], ["loss"]),
    },
    {
        "case": "batch_reindex_4d",
        "what": "BatchReindex of a 1x1 Convolution's (5,2,3,3) top with 3 indices, EuclideanLoss",
        "phase": "TRAIN",
        "force_backward": False,
        "inputs": {
            "x": ([5, 2, 3, 3], ("normal", 1.0)),
            "idx": ([3], ("choice", [4, 0, 2])),
            "target": ([3, 2, 3, 3], ("normal", 1.0)),
        },
        "layers": _layer(
            "conv",
            "Convolution",
            ["x"],
            ["y"],
            "convolution_param { num_output: 2 kernel_size: 1 }",
        )
        + _layer("reindex", "BatchReindex", ["y", "idx"], ["r"])
        + _layer("loss", "EuclideanLoss", ["r", "target"], ["loss"]),
    },
    {
        "case": "filter_two_bottoms",
        "what": "Filter of two InnerProducts' tops (6,3) and (6,2) by a (6,) 0/1 selector; "
        "SUMSQ and SUM Reductions as losses; no force_backward",
        "phase": "TRAIN",
        "force_backward": False,
        "inputs": {
            "x": ([6, 4], ("normal", 1.0)),
            "z": ([6, 2, 2], ("normal", 1.0)),
            "sel": ([6], ("choice", [0.0, 1.0, 1.0, 0.0, 1.0, 1.0])),
        },
        "layers": _layer(
            "ip", "InnerProduct", ["x"], ["y"], "inner_product_param { num_output: 3 }"
        )
        + _layer("ip_z", "InnerProduct", ["z"], ["w"], "inner_product_param { num_output: 2 }")
        + _layer("filter", "Filter", ["y", "w", "sel"], ["fy", "fz"])
        + _layer(
            "loss_y",
            "Reduction",
            ["fy"],
            ["loss_y"],
            "reduction_param { operation: SUMSQ }",
            "loss_weight: 1",
        )
        + _layer(
            "loss_z",
            "Reduction",
            ["fz"],
            ["loss_z"],
            "reduction_param { operation: SUM }",
            "loss_weight: 1",
        ),
    },
    {
        "case": "filter_selector_4d",
        "what": "Filter with a (5,1,1,1) selector (nonzero values other than 1 select too) "
        "behind an InnerProduct",
        "phase": "TRAIN",
        "force_backward": False,
        "inputs": {
            "x": ([5, 3], ("normal", 1.0)),
            "sel": ([5, 1, 1, 1], ("choice", [0.0, 2.0, -1.0])),
        },
        "layers": _layer(
            "ip", "InnerProduct", ["x"], ["y"], "inner_product_param { num_output: 2 }"
        )
        + _layer("filter", "Filter", ["y", "sel"], ["fy"])
        + _layer(
            "loss",
            "Reduction",
            ["fy"],
            ["loss"],
            "reduction_param { operation: SUMSQ }",
            "loss_weight: 1",
        ),
    },
    # --- SPP ------------------------------------------------------------------------------------
    _one(
        "spp_max_h3",
        "SPP pyramid_height 3, MAX on (2,3,8,8) -> (2, 3*(1+4+16))",
        "SPP",
        {"x": ([2, 3, 8, 8], ("normal", 1.0))},
        "spp_param { pyramid_height: 3 }",
    ),
    _one(
        "spp_ave_h2_odd",
        "SPP pyramid_height 2, AVE on (2,2,7,9) (padded bins)",
        "SPP",
        {"x": ([2, 2, 7, 9], ("normal", 1.0))},
        "spp_param { pyramid_height: 2 pool: AVE }",
    ),
    _one(
        "spp_h1",
        "SPP pyramid_height 1: a (2,3,1,1) top (global MAX, not flattened)",
        "SPP",
        {"x": ([2, 3, 5, 6], ("normal", 1.0))},
        "spp_param { pyramid_height: 1 }",
    ),
]


def _recurrent(
    case: str,
    what: str,
    type_: str,
    body: str,
    t: int = 4,
    n: int = 3,
    x_shape: tuple = (4,),
    static: tuple | None = None,
    expose: int = 0,
    hidden: int = 3,
    cont=("choice", [0.0, 1.0, 1.0]),
    **extra,
) -> dict:
    inputs = {"x": ([t, n, *x_shape], ("normal", 1.0)), "cont": ([t, n], cont)}
    bottoms = ["x", "cont"]
    if static is not None:
        inputs["x_static"] = ([n, *static], ("normal", 1.0))
        bottoms.append("x_static")
    states = ["h_0", "c_0"][:expose]
    for name in states:
        inputs[name] = ([1, n, hidden], ("normal", 0.5))
        bottoms.append(name)
    tops = ["out"] + [f"{s[0]}_T" for s in states]
    param = f"recurrent_param {{ num_output: {hidden}{' expose_hidden: true' if expose else ''}"
    return {
        "case": case,
        "what": what,
        "phase": "TRAIN",
        "inputs": inputs,
        "layers": _layer("rec", type_, bottoms, tops, param + body + " }"),
        **extra,
    }


CASES += [
    _recurrent(
        "lstm",
        "LSTM num_output 3 on x (4,3,4) with cont markers (sequence starts mid-batch)",
        "LSTM",
        "",
    ),
    _recurrent(
        "lstm_2d_input_static",
        "LSTM with x (3,2,2,3) (flattened per step) and a static input (2,5)",
        "LSTM",
        "",
        t=3,
        n=2,
        x_shape=(2, 3),
        static=(5,),
        hidden=4,
    ),
    _recurrent(
        "lstm_expose_hidden",
        "LSTM expose_hidden: h_0, c_0 bottoms and h_T, c_T tops "
        "(no gradient through them, as Caffe)",
        "LSTM",
        "",
        expose=2,
        cont=("choice", [1.0]),
    ),
    _recurrent(
        "lstm_state_carries_over",
        "LSTM run forward twice: the second pass starts from "
        "the first's final state where cont is 1",
        "LSTM",
        "",
        t=3,
        n=4,
        forwards=2,
        cont=("choice", [0.0, 1.0, 1.0, 1.0]),
    ),
    _recurrent("rnn", "RNN num_output 3 on x (4,3,4) with cont markers", "RNN", ""),
    _recurrent(
        "rnn_static_expose",
        "RNN with a static input and expose_hidden (h_0 bottom, h_T top)",
        "RNN",
        "",
        t=3,
        n=2,
        static=(3,),
        expose=1,
        hidden=2,
    ),
    {
        "case": "lstm_unit",
        "what": "LSTMUnit on (1,4,3) cells, (1,4,12) gate inputs and cont (1,4) with values 0, 1 "
        "and 0.5 (Caffe's forget-gate diff uses f = cont * sigmoid)",
        "phase": "TRAIN",
        "inputs": {
            "c_prev": ([1, 4, 3], ("normal", 1.0)),
            "x": ([1, 4, 12], ("normal", 1.0)),
            "cont": ([1, 4], ("choice", [0.0, 1.0, 0.5])),
        },
        "layers": _layer("unit", "LSTMUnit", ["c_prev", "x", "cont"], ["c", "h"]),
    },
]

CASES += [
    _one(
        "im2col",
        "Im2col kernel 3 stride 2 pad 1 on (2,3,7,6) -> (2,27,4,3)",
        "Im2col",
        {"x": ([2, 3, 7, 6], ("normal", 1.0))},
        "convolution_param { kernel_size: 3 stride: 2 pad: 1 }",
    ),
    _one(
        "im2col_hw_dilation",
        "Im2col kernel_h 2 kernel_w 3, dilation 2 on (1,2,8,9)",
        "Im2col",
        {"x": ([1, 2, 8, 9], ("normal", 1.0))},
        "convolution_param { kernel_h: 2 kernel_w: 3 dilation: 2 }",
    ),
]
