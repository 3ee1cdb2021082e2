"""Caffe's update rules, one module per solver type, in a registry keyed by Caffe's type name.

Each rule turns a parameter's regularized gradient into the value that `w -= value` applies,
keeping its history blobs in Caffe's order (all params of history set 0, then set 1), which is
also their order in a `.solverstate`.
"""

from __future__ import annotations

from elasticthought.engine.torch.solvers.adadelta import AdaDelta
from elasticthought.engine.torch.solvers.adagrad import AdaGrad
from elasticthought.engine.torch.solvers.adam import Adam
from elasticthought.engine.torch.solvers.base import UpdateRule
from elasticthought.engine.torch.solvers.nesterov import Nesterov
from elasticthought.engine.torch.solvers.rmsprop import RMSProp
from elasticthought.engine.torch.solvers.sgd import SGD

RULES: dict[str, type[UpdateRule]] = {
    cls.type_name: cls for cls in (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam)
}


class UnknownSolverType(ValueError):
    """The solver names a type this engine does not implement."""


def rule_class(type_name: str) -> type[UpdateRule]:
    """The update rule for a solver `type` string (Caffe's names), or `UnknownSolverType`."""
    try:
        return RULES[type_name]
    except KeyError:
        raise UnknownSolverType(
            f"unknown solver type {type_name!r}; supported: {', '.join(RULES)}"
        ) from None


__all__ = ["RULES", "UpdateRule", "UnknownSolverType", "rule_class"]
