"""Pooling (MAX, AVE, STOCHASTIC; global; Caffe's output-size rounding and AVE divisor;
round_mode).

Output size: `ceil((H + 2p - k) / s) + 1` (CEIL, the default) or floor (FLOOR), minus one when
there is padding and the last window would start in it. AVE divides by the window clipped to
`H + pad` (padding counts, the ceil overhang does not). MAX takes the first maximum in row-major
order and can write the argmax (`h * W + w`) into an optional second top.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from elasticthought.engine.torch.layer import Layer, register

MAX, AVE, STOCHASTIC = 0, 1, 2
CEIL, FLOOR = 0, 1
FLT_MIN = float(np.finfo(np.float32).tiny)


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int, round_mode: int) -> int:
    span = (size + 2 * pad - kernel) / stride
    out = (math.floor(span) if round_mode == FLOOR else math.ceil(span)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _torch_pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    span = (size + 2 * pad - kernel) / stride
    out = (math.ceil(span) if ceil else math.floor(span)) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class _MaxPoolCpu(torch.autograd.Function):
    """`F.max_pool2d(x, ..., return_indices=True)` on the CPU, bit for bit, about 3x faster:
    torch's CPU kernel for NCHW tensors is scalar (4 ms for LeNet's pool1 at batch 64), its
    channels-last kernel is vectorised over channels, and both take the first maximum of a
    window in row-major order (NaN counting as largest), so the values and indices agree. The
    forward pools a channels-last copy and returns NCHW-contiguous outputs (what the layers
    after it get today); the backward is torch's own NCHW max-pool backward on those indices,
    the same kernel (and accumulation order) as F.max_pool2d's."""

    @staticmethod
    def forward(ctx, x, kernel, stride, pad, ceil):
        y, idx = F.max_pool2d(
            x.contiguous(memory_format=torch.channels_last), kernel, stride, pad, 1, ceil, True
        )
        y, idx = y.contiguous(), idx.contiguous()
        ctx.save_for_backward(x, idx)
        ctx.pool_args = (kernel, stride, pad, ceil)
        ctx.mark_non_differentiable(idx)
        return y, idx

    @staticmethod
    def backward(ctx, grad_y, _grad_idx):
        x, idx = ctx.saved_tensors
        kernel, stride, pad, ceil = ctx.pool_args
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(
            grad_y.contiguous(), x, kernel, stride, pad, (1, 1), ceil, idx
        )
        return grad_x, None, None, None, None


@register
class Pooling(Layer):
    type_name = "Pooling"
    num_bottoms = (1, 1)
    num_tops = (1, 2)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.pooling_param
        if bottoms[0].dim() != 4:
            raise self.error(f"Pooling needs 4-D input, got shape {list(bottoms[0].shape)}")
        self.pool = int(p.pool)
        self.global_pooling = bool(p.global_pooling)
        has_k = p.HasField("kernel_h") or p.HasField("kernel_w")
        if self.global_pooling:
            if p.HasField("kernel_size") or has_k:
                raise self.error("global_pooling takes no kernel size")
        elif has_k == p.HasField("kernel_size"):
            raise self.error("give either kernel_size or kernel_h and kernel_w")
        self.kernel = (int(p.kernel_h), int(p.kernel_w)) if has_k else (int(p.kernel_size),) * 2
        has_p = p.HasField("pad_h") or p.HasField("pad_w")
        self.pad = (int(p.pad_h), int(p.pad_w)) if has_p else (int(p.pad),) * 2
        has_s = p.HasField("stride_h") or p.HasField("stride_w")
        self.stride = (int(p.stride_h), int(p.stride_w)) if has_s else (int(p.stride),) * 2
        self.round_mode = int(p.round_mode)
        if self.global_pooling and (any(self.pad) or self.stride != (1, 1)):
            raise self.error("global pooling needs pad 0 and stride 1")
        if not self.global_pooling:
            if min(self.kernel) < 1 or min(self.stride) < 1:
                raise self.error("kernel and stride must be positive")
            if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
                raise self.error("pad must be smaller than the kernel")
        self.want_mask = len(self.param.top) > 1
        if self.want_mask and self.pool != MAX:
            raise self.error("only MAX pooling has a second (mask) top")
        self._plans: dict[tuple[int, int], tuple] = {}

    def _plan(self, h: int, w: int) -> tuple:
        """(kernel, out, fast) for an input of h x w; cached per input size."""
        plan = self._plans.get((h, w))
        if plan is None:
            kernel = (h, w) if self.global_pooling else self.kernel
            out = tuple(
                caffe_pooled_size(n, k, s, p, self.round_mode)
                for n, k, s, p in zip((h, w), kernel, self.stride, self.pad, strict=True)
            )
            ceil = self.round_mode == CEIL
            fast = all(
                p <= k // 2 and _torch_pooled_size(n, k, s, p, ceil) == o
                for n, k, s, p, o in zip((h, w), kernel, self.stride, self.pad, out, strict=True)
            )
            plan = self._plans[(h, w)] = (kernel, out, fast)
        return plan

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        h, w = x.shape[2], x.shape[3]
        kernel, out, fast = self._plan(h, w)
        ceil = self.round_mode == CEIL
        if self.pool == MAX:
            if fast:
                if x.device.type == "cpu":
                    y, idx = _MaxPoolCpu.apply(x, kernel, self.stride, self.pad, ceil)
                    return [y, idx.to(x.dtype)] if self.want_mask else [y]
                if self.want_mask:
                    y, idx = F.max_pool2d(x, kernel, self.stride, self.pad, 1, ceil, True)
                    return [y, idx.detach().to(x.dtype)]
                return [F.max_pool2d(x, kernel, self.stride, self.pad, 1, ceil)]
            return self._slow_max(x, kernel, out)
        if self.pool == STOCHASTIC:
            return [self._stochastic(x, kernel, out)]
        if fast:
            return [F.avg_pool2d(x, kernel, self.stride, self.pad, ceil, True)]
        return [self._slow_ave(x, kernel, out)]

    def _stochastic(self, x: torch.Tensor, kernel, out) -> torch.Tensor:
        """Caffe's STOCHASTIC pooling (its GPU kernels; Caffe has no CPU version). Windows
        start at `p * stride` and are clipped to the input (padding only affects the output
        size). TRAIN: with s the window's sum and u ~ U[0, 1), the first element (row-major)
        whose running sum reaches u * s is the output and gets the gradient (activations are
        expected to be non-negative, as after a ReLU). TEST: sum(x^2) / (FLT_MIN + sum(x))."""
        h, w = x.shape[2], x.shape[3]
        (sh, sw), (kh, kw) = self.stride, kernel
        rh = max(0, (out[0] - 1) * sh + kh - h)
        rw = max(0, (out[1] - 1) * sw + kw - w)
        xp = F.pad(x, (0, rw, 0, rh)) if rh or rw else x
        n, c = x.shape[0], x.shape[1]
        lh = (xp.shape[2] - kh) // sh + 1
        lw = (xp.shape[3] - kw) // sw + 1
        cols = F.unfold(xp, (kh, kw), stride=(sh, sw)).reshape(n, c, kh * kw, lh, lw)
        cols = cols[..., : out[0], : out[1]].reshape(n, c, kh * kw, out[0] * out[1])
        if self.phase == "TEST":
            total = cols.sum(2) + FLT_MIN
            y = (cols * cols).sum(2) / total
        else:
            with torch.no_grad():
                running = torch.cumsum(cols, 2)
                thres = torch.rand(running[:, :, -1].shape, device=x.device, dtype=x.dtype)
                thres = thres * running[:, :, -1]
                pick = (running < thres.unsqueeze(2)).sum(2, keepdim=True)
                pick = torch.clamp(pick, max=kh * kw - 1)
            y = torch.gather(cols, 2, pick).squeeze(2)
        return y.reshape(n, c, out[0], out[1])

    def _right_pad(self, size: int, kernel: int, stride: int, pad: int, out: int) -> int:
        return max(0, (out - 1) * stride + kernel - (size + pad))

    def _slow_max(self, x: torch.Tensor, kernel, out) -> list[torch.Tensor]:
        h, w = x.shape[2], x.shape[3]
        (ph, pw), (sh, sw) = self.pad, self.stride
        rh = self._right_pad(h, kernel[0], sh, ph, out[0])
        rw = self._right_pad(w, kernel[1], sw, pw, out[1])
        xp = F.pad(x, (pw, rw, ph, rh), value=-float(np.finfo(np.float32).max))
        y, idx = F.max_pool2d(xp, kernel, self.stride, 0, 1, False, True)
        y = y[:, :, : out[0], : out[1]]
        if not self.want_mask:
            return [y]
        idx = idx[:, :, : out[0], : out[1]]
        wp = w + pw + rw
        hh, ww = idx // wp - ph, idx % wp - pw
        mask = torch.where((hh >= 0) & (hh < h) & (ww >= 0) & (ww < w), hh * w + ww, -1)
        return [y, mask.detach().to(x.dtype)]

    def _slow_ave(self, x: torch.Tensor, kernel, out) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        (ph, pw), (sh, sw) = self.pad, self.stride
        rh = self._right_pad(h, kernel[0], sh, ph, out[0])
        rw = self._right_pad(w, kernel[1], sw, pw, out[1])
        xp = F.pad(x, (pw, rw, ph, rh))
        sums = F.avg_pool2d(xp, kernel, self.stride, 0, False, True, 1)[:, :, : out[0], : out[1]]

        def sizes(n, k, s, p, o):
            start = np.arange(o) * s - p
            return np.minimum(start + k, n + p) - start

        div = np.outer(sizes(h, kernel[0], sh, ph, out[0]), sizes(w, kernel[1], sw, pw, out[1]))
        return sums / torch.as_tensor(div, dtype=x.dtype, device=x.device)
