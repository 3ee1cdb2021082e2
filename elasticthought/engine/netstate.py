"""Select the layers of a net for a phase/stage/level, by Caffe's include/exclude rules."""

from __future__ import annotations

from collections.abc import Iterable

from elasticthought.engine.errors import FormatError
from elasticthought.engine.proto import caffe_pb2

PhaseLike = str | int


def phase_value(phase: PhaseLike) -> int:
    """`"TRAIN"`/`"TEST"` (any case) or `caffe_pb2.TRAIN`/`TEST` -> the enum value."""
    if isinstance(phase, str):
        try:
            return caffe_pb2.Phase.Value(phase.upper())
        except ValueError:
            raise FormatError(f"unknown phase {phase!r} (use TRAIN or TEST)") from None
    if phase not in (caffe_pb2.TRAIN, caffe_pb2.TEST):
        raise FormatError(f"unknown phase {phase!r} (use TRAIN or TEST)")
    return int(phase)


def state_meets_rule(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    """True when `state` satisfies every condition `rule` sets."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(stage not in stages for stage in rule.stage):
        return False
    return not any(stage in stages for stage in rule.not_stage)


def layer_included(layer: caffe_pb2.LayerParameter, state: caffe_pb2.NetState) -> bool:
    """Caffe's rule: no include rules -> in unless an exclude rule matches;
    include rules -> in only if one matches. Both kinds on one layer is an error."""
    if len(layer.include) and len(layer.exclude):
        raise FormatError(
            f'layer "{layer.name}" specifies both include and exclude rules; use one kind'
        )
    if len(layer.include):
        return any(state_meets_rule(state, rule) for rule in layer.include)
    return not any(state_meets_rule(state, rule) for rule in layer.exclude)


def net_state(
    net: caffe_pb2.NetParameter,
    phase: PhaseLike,
    stages: Iterable[str] = (),
    level: int | None = None,
) -> caffe_pb2.NetState:
    """The state Caffe uses: the net's own `state`, with phase set, stages added and
    level replaced when given."""
    state = caffe_pb2.NetState()
    state.CopyFrom(net.state)
    state.phase = phase_value(phase)
    state.stage.extend(s for s in stages if s not in state.stage)
    if level is not None:
        state.level = level
    return state


def filter_net(
    net: caffe_pb2.NetParameter,
    phase: PhaseLike,
    stages: Iterable[str] = (),
    level: int | None = None,
) -> caffe_pb2.NetParameter:
    """A copy of `net` (upgraded to V2 if needed) holding only the layers included in this
    state; its `state` field records the state used. `level=None` keeps the net's own level."""
    from elasticthought.engine.upgrade import net_needs_upgrade, upgrade_net

    if net_needs_upgrade(net):
        net = upgrade_net(net)
    state = net_state(net, phase, stages, level)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    out.ClearField("layer")
    out.state.CopyFrom(state)
    for layer in net.layer:
        if layer_included(layer, state):
            out.layer.add().CopyFrom(layer)
    return out
