"""Caffe's recurrent layers: LSTMUnit, LSTM and RNN.

LSTM and RNN take x (T, N, ...) -- T timesteps of N independent streams -- and the sequence
continuation markers cont (T, N): 0 where a stream starts a new sequence (its previous state is
dropped), 1 where it continues. An optional static input x_static (N, ...) is added at every
timestep; with `recurrent_param.expose_hidden` the initial states are extra bottoms and the final
ones extra tops (Caffe shares only their data: no gradient flows through them). Without it the
final state of one forward pass is the initial state of the next (zeros at first), as Caffe does.

Parameter blobs, in Caffe's order and layout (so caffemodels move both ways):

- LSTM: W_xc (4H, D), b_c (4H,), [W_xc_static (4H, D_static)], W_hc (4H, H); the 4H gate
  rows are ordered input, forget, output, candidate (i, f, o, g).
- RNN: W_xh (H, D), b_h (H,), [W_xh_static (H, D_static)], W_hh (H, H), W_ho (H, H), b_o (H,).

Per timestep: LSTM gates = W_hc (cont_t * h_{t-1}) + W_xc x_t + b_c [+ W_xc_static x_static],
then LSTMUnit; RNN h_t = tanh(W_hh (cont_t * h_{t-1}) + W_xh x_t + b_h [+ static]),
o_t = tanh(W_ho h_t + b_o). Tops: LSTM h (T, N, H) [, h_T, c_T]; RNN o (T, N, H) [, h_T].
"""

from __future__ import annotations

import math

import torch

from elasticthought.engine.torch.layer import Layer, register


class _LSTMUnitFn(torch.autograd.Function):
    """Caffe's LSTMUnit with its backward: f = cont * sigmoid(x_f) (0 where cont == 0) and the
    forget-gate diff c_term * c_prev * f * (1 - f)."""

    @staticmethod
    def forward(ctx, c_prev, x, cont):
        hidden = c_prev.shape[-1]
        i = torch.sigmoid(x[..., :hidden])
        f = torch.sigmoid(x[..., hidden : 2 * hidden]) * cont.unsqueeze(-1)
        o = torch.sigmoid(x[..., 2 * hidden : 3 * hidden])
        g = torch.tanh(x[..., 3 * hidden :])
        c = f * c_prev + i * g
        tanh_c = torch.tanh(c)
        h = o * tanh_c
        ctx.save_for_backward(c_prev, i, f, o, g, tanh_c)
        return c, h

    @staticmethod
    def backward(ctx, dc, dh):
        c_prev, i, f, o, g, tanh_c = ctx.saved_tensors
        if dc is None:
            dc = torch.zeros_like(c_prev)
        if dh is None:
            dh = torch.zeros_like(c_prev)
        c_term = dc + dh * o * (1 - tanh_c * tanh_c)
        dx = torch.cat(
            [
                c_term * g * i * (1 - i),
                c_term * c_prev * f * (1 - f),
                dh * tanh_c * o * (1 - o),
                c_term * i * (1 - g * g),
            ],
            -1,
        )
        return c_term * f, dx, None


def lstm_unit(
    c_prev: torch.Tensor, x: torch.Tensor, cont: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(c, h) of one LSTM step: c_prev (..., H), gate inputs x (..., 4H), cont (...)."""
    return _LSTMUnitFn.apply(c_prev, x, cont.detach())


@register
class LSTMUnit(Layer):
    """One LSTM step: bottoms c_prev (1, N, H), gate inputs (1, N, 4H), cont (1, N); tops c and
    h (1, N, H). The markers get no gradient."""

    type_name = "LSTMUnit"
    num_bottoms = (3, 3)
    num_tops = (2, 2)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        c_prev, x, cont = bottoms
        if c_prev.dim() != 3 or x.dim() != 3 or cont.dim() != 2:
            raise self.error("bottoms must be (1, N, H), (1, N, 4H) and (1, N)")
        n = c_prev.shape[1]
        if any(int(b.shape[0]) != 1 or int(b.shape[1]) != n for b in bottoms):
            raise self.error("every bottom needs 1 timestep and the same N")
        if x.shape[2] != 4 * c_prev.shape[2]:
            raise self.error(f"gate inputs need 4*H = {4 * c_prev.shape[2]} values")

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 2

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        c, h = lstm_unit(bottoms[0], bottoms[1], bottoms[2])
        return [c, h]


def _ip(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, axis: int):
    """Caffe's InnerProduct with `axis`: flatten the axes from `axis` on."""
    flat = x.reshape(*x.shape[:axis], -1)
    y = flat @ weight.t()
    return y + bias if bias is not None else y


class _Recurrent(Layer):
    """Shared parts of LSTM and RNN (see the module docstring)."""

    #: the per-state names, in Caffe's order of the exposed bottoms/tops
    states: tuple[str, ...] = ()
    gates: int = 1

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.recurrent_param
        self.hidden = int(p.num_output)
        if self.hidden <= 0:
            raise self.error("num_output must be positive")
        x, cont = bottoms[0], bottoms[1]
        if x.dim() < 2:
            raise self.error("bottom[0] must have at least 2 axes -- (#timesteps, #streams, ...)")
        if cont.dim() != 2:
            raise self.error("bottom[1] must have exactly 2 axes -- (#timesteps, #streams)")
        if tuple(cont.shape) != tuple(x.shape[:2]):
            raise self.error(f"cont {list(cont.shape)} must be (T, N) of x {list(x.shape)}")
        self.expose = bool(p.expose_hidden)
        exposed = len(self.states) if self.expose else 0
        self.static = len(bottoms) > 2 + exposed
        if len(bottoms) != 2 + exposed + self.static:
            raise self.error(f"takes x, cont, [x_static]{', the initial states' * self.expose}")
        if len(self.param.top) != 1 + exposed:
            raise self.error(f"needs {1 + exposed} tops")
        if self.static and (bottoms[2].dim() < 1 or bottoms[2].shape[0] != x.shape[1]):
            raise self.error("x_static must be (N, ...)")
        self.steps = int(x.shape[0])
        wf = self.filler(p, "weight_filler")
        bf = self.filler(p, "bias_filler")
        rows = self.gates * self.hidden
        in_dim = math.prod(x.shape[2:])
        self.blobs = [self.make_blob([rows, in_dim], wf), self.make_blob([rows], bf)]
        if self.static:
            self.blobs.append(self.make_blob([rows, math.prod(bottoms[2].shape[1:])], wf))
        self.blobs.append(self.make_blob([rows, self.hidden], wf))
        self._extra_blobs(wf, bf)
        self._state: list[torch.Tensor] | None = None

    def _extra_blobs(self, wf, bf) -> None:
        """More parameter blobs after the recurrent weights (RNN's output layer)."""

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1

    def _initial(self, bottoms: list[torch.Tensor], n: int, like: torch.Tensor):
        if self.expose:
            first = 2 + self.static
            init = [b.detach() for b in bottoms[first : first + len(self.states)]]
            for name, t in zip(self.states, init, strict=True):
                if tuple(t.shape) != (1, n, self.hidden):
                    raise self.error(f"{name} must be (1, {n}, {self.hidden})")
            return init
        state = self._state
        if state is None or state[0].shape[1] != n:
            return [like.new_zeros(1, n, self.hidden) for _ in self.states]
        return [s.to(like.device) for s in state]

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x, cont = bottoms[0], bottoms[1].detach()
        if x.shape[0] != self.steps:
            raise self.error("input number of timesteps changed")
        if tuple(cont.shape) != tuple(x.shape[:2]):
            raise self.error(f"cont {list(cont.shape)} must be (T, N) of x {list(x.shape)}")
        n = int(x.shape[1])
        x_proj = _ip(x, self.blobs[0], self.blobs[1], 2)
        static = None
        if self.static:
            static = _ip(bottoms[2], self.blobs[2], None, 1).reshape(1, n, -1)
        state = self._initial(bottoms, n, x_proj)
        outputs, final = self._unroll(x_proj, cont, static, state)
        if not self.expose and not self.in_setup:
            self._state = [s.detach() for s in final]
        tops = [torch.cat(outputs, 0)]
        if self.expose:
            tops += [s.detach() for s in final]
        return tops

    def _unroll(self, x_proj, cont, static, state):
        raise NotImplementedError


@register
class LSTM(_Recurrent):
    """Caffe's LSTM (see the module docstring)."""

    type_name = "LSTM"
    num_bottoms = (2, 5)
    num_tops = (1, 3)
    states = ("h_0", "c_0")
    gates = 4

    def _unroll(self, x_proj, cont, static, state):
        h, c = state
        w_hc = self.blobs[3 if self.static else 2]
        outputs = []
        for t in range(self.steps):
            cont_t = cont[t : t + 1]
            gates = (h * cont_t.unsqueeze(-1)) @ w_hc.t() + x_proj[t : t + 1]
            if static is not None:
                gates = gates + static
            c, h = lstm_unit(c, gates, cont_t)
            outputs.append(h)
        return outputs, [h, c]


@register
class RNN(_Recurrent):
    """Caffe's plain RNN (see the module docstring)."""

    type_name = "RNN"
    num_bottoms = (2, 4)
    num_tops = (1, 2)
    states = ("h_0",)

    def _extra_blobs(self, wf, bf) -> None:
        self.blobs.append(self.make_blob([self.hidden, self.hidden], wf))
        self.blobs.append(self.make_blob([self.hidden], bf))

    def _unroll(self, x_proj, cont, static, state):
        (h,) = state
        k = 3 if self.static else 2
        w_hh, w_ho, b_o = self.blobs[k], self.blobs[k + 1], self.blobs[k + 2]
        outputs = []
        for t in range(self.steps):
            pre = (h * cont[t : t + 1].unsqueeze(-1)) @ w_hh.t() + x_proj[t : t + 1]
            if static is not None:
                pre = pre + static
            h = torch.tanh(pre)
            outputs.append(torch.tanh(h @ w_ho.t() + b_o))
        return outputs, [h]
