"""The torch engine's layer classes; importing this package registers them all."""

from elasticthought.engine.torch.layers import (  # noqa: F401
    accuracy,
    batch_norm,
    contrastive_loss,
    conv,
    eltwise,
    inner_product,
    inputs,
    losses,
    lrn,
    neuron,
    pooling,
    scale_bias,
    shape,
    softmax,
)
