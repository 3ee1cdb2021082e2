"""Convolution and Deconvolution (Caffe's BaseConvolutionLayer family), N spatial axes (1-3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from elasticthought.engine.torch.layer import Layer, canonical_axis, register

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
#: oneDNN (torch's default CPU convolution) computes NCHW tensors in layouts blocked by 16
#: channels: channel counts off that grid are padded to it and reordered at every call. On such
#: layers (`_cpu_path`, measured at one thread, forward + backward unless said):
#: - without gradients (test passes, classification), torch's own im2col + GEMM convolution,
#:   which Caffe's is, was faster when the outputs are off the grid: 20 outputs 0.27-0.8x the
#:   time, 50 outputs 0.56x (16, 32, 64, 96 and 256 outputs: 1.2-2.4x slower);
#: - with gradients, oneDNN on channels-last tensors (no padding, no reorder) was faster when
#:   inputs and outputs are both off the grid and there are at least 16 inputs: 20 -> 50
#:   channels 0.83x, 20 -> 20 0.60x, 50 -> 30 0.81x (1 or 3 inputs: 1.13-2.84x slower; on the
#:   grid: 0.97-1.28x).
ONEDNN_CHANNEL_BLOCK = 16
#: The ways `_cpu_path` convolves.
ONEDNN, NATIVE, CHANNELS_LAST = "oneDNN", "native", "channels-last"
_DECONV = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _spatial(values, h_value, w_value, has_hw: bool, n: int, default: int, what: str, layer):
    """Caffe's per-axis kernel/stride/pad/dilation: one value for all axes or one per axis;
    `*_h`/`*_w` override for 2-D."""
    if has_hw:
        if n != 2:
            raise layer.error(f"{what}_h/{what}_w need 2 spatial axes")
        return [int(h_value), int(w_value)]
    values = [int(v) for v in values]
    if not values:
        return [default] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise layer.error(f"{what} has {len(values)} values for {n} spatial axes")
    return values


class _ConvBase(Layer):
    num_bottoms = (1, None)
    num_tops = (1, None)
    transposed = False

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.convolution_param
        shape = bottoms[0].shape
        if len(bottoms) != len(self.param.top):
            raise self.error("needs as many tops as bottoms")
        if any(b.shape != shape for b in bottoms):
            raise self.error("all bottoms need the same shape")
        self.axis = canonical_axis(p.axis, len(shape))
        self.nsp = len(shape) - self.axis - 1
        if self.nsp not in _CONV:
            raise self.error(f"{self.nsp} spatial axes are not supported (1 to 3)")
        has_k = p.HasField("kernel_h") or p.HasField("kernel_w")
        if has_k and len(p.kernel_size):
            raise self.error("either kernel_size or kernel_h/kernel_w, not both")
        if not has_k and not len(p.kernel_size):
            raise self.error("kernel_size is required")
        self.kernel = _spatial(
            p.kernel_size, p.kernel_h, p.kernel_w, has_k, self.nsp, 1, "kernel", self
        )
        has_s = p.HasField("stride_h") or p.HasField("stride_w")
        self.stride = _spatial(p.stride, p.stride_h, p.stride_w, has_s, self.nsp, 1, "stride", self)
        has_p = p.HasField("pad_h") or p.HasField("pad_w")
        self.pad = _spatial(p.pad, p.pad_h, p.pad_w, has_p, self.nsp, 0, "pad", self)
        self.dilation = _spatial(p.dilation, 0, 0, False, self.nsp, 1, "dilation", self)
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.dilation) < 1:
            raise self.error("kernel, stride and dilation must be positive")
        self.group = int(p.group)
        channels = int(shape[self.axis])
        num_output = int(p.num_output)
        if num_output < 1:
            raise self.error("num_output must be positive")
        if self.group < 1 or channels % self.group or num_output % self.group:
            raise self.error(
                f"group {self.group} must divide the input channels ({channels}) and "
                f"num_output ({num_output})"
            )
        if self.transposed:
            wshape = [channels, num_output // self.group, *self.kernel]
        else:
            wshape = [num_output, channels // self.group, *self.kernel]
        self.blobs = [self.make_blob(wshape, self.filler(p, "weight_filler"))]
        self.bias_term = bool(p.bias_term)
        if self.bias_term:
            self.blobs.append(self.make_blob([num_output], self.filler(p, "bias_filler")))

    def _cpu_path(self, x: torch.Tensor) -> str:
        """How this forward convolves (see ONEDNN_CHANNEL_BLOCK): the choice depends on the
        layer and on whether gradients are on, so every such forward computes the same way."""
        if self.transposed or self.group != 1 or x.device.type != "cpu":
            return ONEDNN
        outputs, inputs = (int(n) for n in self.blobs[0].shape[:2])
        if outputs % ONEDNN_CHANNEL_BLOCK == 0:
            return ONEDNN
        if not torch.is_grad_enabled():
            return NATIVE
        if self.nsp == 2 and inputs > ONEDNN_CHANNEL_BLOCK and inputs % ONEDNN_CHANNEL_BLOCK:
            return CHANNELS_LAST
        return ONEDNN

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        path = self._cpu_path(bottoms[0]) if bottoms else ONEDNN
        if path == NATIVE:
            onednn = torch.backends.mkldnn.enabled
            torch.backends.mkldnn.enabled = False
            try:
                return self._forward(bottoms, channels_last=False)
            finally:
                torch.backends.mkldnn.enabled = onednn
        return self._forward(bottoms, channels_last=path == CHANNELS_LAST)

    def _forward(self, bottoms: list[torch.Tensor], channels_last: bool) -> list[torch.Tensor]:
        w = self.blobs[0]
        if channels_last:
            w = w.contiguous(memory_format=torch.channels_last)
        b = self.blobs[1] if self.bias_term else None
        fn = (_DECONV if self.transposed else _CONV)[self.nsp]
        tops = []
        for x in bottoms:
            lead = x.shape[: self.axis]
            if self.axis != 1:
                x = x.reshape(-1, *x.shape[self.axis :])
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.transposed:
                y = fn(x, w, b, self.stride, self.pad, 0, self.group, self.dilation)
            else:
                y = fn(x, w, b, self.stride, self.pad, self.dilation, self.group)
            if channels_last:  # the layers after it get NCHW-contiguous tops, as always
                y = y.contiguous()
            if self.axis != 1:
                y = y.reshape(*lead, *y.shape[1:])
            tops.append(y)
        return tops


@register
class Convolution(_ConvBase):
    """Cross-correlation with weights (num_output, C/group, k...), output size rounded down."""

    type_name = "Convolution"


@register
class Deconvolution(_ConvBase):
    """Transposed convolution with weights (C_in, num_output/group, k...)."""

    type_name = "Deconvolution"
    transposed = True
