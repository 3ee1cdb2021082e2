"""Caffe's learning-rate policies: the rate of the update made at (0-based) iteration `it`.

The policies and formulas are Caffe's (`SGDSolver::GetLearningRate`): fixed, step, exp, inv,
multistep, poly, sigmoid. `multistep` is stateful in Caffe (`current_step` advances by at most one
per call and is stored in the `.solverstate`), so the state is passed in and returned.
The rate is computed in float64 from the float32 solver fields and returned as a float32 value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


class LrPolicyError(ValueError):
    """The solver names an unknown policy or lacks a field the policy needs."""


def check_policy(param: Any) -> None:
    """Raise `LrPolicyError` when `param` (a SolverParameter) cannot produce a learning rate."""
    policy = param.lr_policy
    if policy not in POLICIES:
        raise LrPolicyError(f"unknown lr_policy {policy!r}; supported: {', '.join(POLICIES)}")
    if policy == "step" and param.stepsize <= 0:
        raise LrPolicyError("lr_policy 'step' needs a positive stepsize")
    if policy == "poly" and param.max_iter <= 0:
        raise LrPolicyError("lr_policy 'poly' needs a positive max_iter")
    if policy in ("step", "exp", "inv", "multistep", "sigmoid") and param.gamma < 0:
        raise LrPolicyError(f"lr_policy {policy!r} needs gamma >= 0")
    if policy == "sigmoid" and param.stepsize <= 0:
        raise LrPolicyError("lr_policy 'sigmoid' needs a positive stepsize")


def _powf(x: np.float32, y: np.float32) -> np.float32:
    """C's powf: the double result rounded to float32."""
    return np.float32(float(x) ** float(y))


def learning_rate(param: Any, it: int, current_step: int = 0) -> tuple[float, int]:
    """(rate, current_step) for the update at iteration `it` under solver parameter `param`."""
    policy = param.lr_policy
    f32 = np.float32
    base = float(f32(param.base_lr))
    gamma = f32(param.gamma)
    power = f32(param.power)
    # As Caffe evaluates them: float32 (Dtype) arithmetic, pow(float, float) -> float,
    # pow(float, int) -> double.
    if policy == "fixed":
        rate = base
    elif policy == "step":
        current_step = it // param.stepsize
        rate = base * float(gamma) ** current_step
    elif policy == "exp":
        rate = base * float(gamma) ** it
    elif policy == "inv":
        rate = float(f32(base) * _powf(f32(1) + gamma * f32(it), -power))
    elif policy == "multistep":
        values = list(param.stepvalue)
        if current_step < len(values) and it >= values[current_step]:
            current_step += 1
        rate = base * float(gamma) ** current_step
    elif policy == "poly":
        rate = float(f32(base) * _powf(f32(1) - f32(it) / f32(param.max_iter), power))
    elif policy == "sigmoid":
        rate = base * float(
            f32(1) / (f32(1) + f32(math.exp(-float(gamma * (f32(it) - f32(param.stepsize))))))
        )
    else:
        check_policy(param)
        raise AssertionError("unreachable")
    return float(f32(rate)), current_step
