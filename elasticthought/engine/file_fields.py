"""Fields of a Caffe solver or net that name a file on the machine that runs it.

A service must not let a user's prototxt read or write the server's files. The data layers'
sources and mean files, the solver's nets and its snapshot prefix are set by the service for
each job (`rewrite.rewrite_for_job`), so they are not listed here; the fields listed here have
no such replacement, and a service refuses a net or solver that sets one (`named_files`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Layer type -> (parameter message, field, what the engine does with the file).
LAYER_FILE_FIELDS: dict[str, tuple[str, str, str]] = {
    "HDF5Output": ("hdf5_output_param", "file_name", "writes"),
    "InfogainLoss": ("infogain_loss_param", "source", "reads"),
}
#: Solver fields naming files the solver reads (its nets and snapshot prefix are rewritten).
SOLVER_FILE_FIELDS: dict[str, str] = {"weights": "reads"}
#: Solver fields holding one whole net (`test_net_param`, repeated, holds several).
SOLVER_NET_FIELDS = ("net_param", "train_net_param")


@dataclass(frozen=True)
class NamedFile:
    """One field that names a file: where it is (`layer` is empty for a solver field)."""

    field: str  # "hdf5_output_param.file_name", "weights", "net_param: ..."
    action: str  # "reads" or "writes"
    layer: str = ""
    layer_number: int = 0  # 1-based; 0 for a solver field
    layer_type: str = ""

    def describe(self, with_names: bool = True) -> str:
        """The field in words; `with_names=False` leaves out the layer's name (text fetched
        from a URL is never echoed)."""
        if not self.layer_number:
            where = "the solver's"
        elif with_names:
            where = f"layer {self.layer!r} ({self.layer_type}):"
        else:
            where = f"layer {self.layer_number} ({self.layer_type}):"
        return (
            f"{where} {self.field} names a file on the server, which the "
            f"{'net' if self.layer_number else 'solver'} {self.action}; that is not allowed here"
        )


def named_files_in_net(net: Any) -> list[NamedFile]:
    """The fields of a V2 NetParameter (as `prototxt.parse_net` gives) that name a file, in
    layer order."""
    found = []
    for number, layer in enumerate(net.layer, 1):
        spec = LAYER_FILE_FIELDS.get(layer.type)
        if spec is None:
            continue
        message, field, action = spec
        if layer.HasField(message) and getattr(layer, message).HasField(field):
            found.append(NamedFile(f"{message}.{field}", action, layer.name, number, layer.type))
    return found


def named_files_in_solver(solver: Any) -> list[NamedFile]:
    """The fields of a SolverParameter that name a file, its embedded nets' included."""
    found = [
        NamedFile(name, action)
        for name, action in SOLVER_FILE_FIELDS.items()
        if len(getattr(solver, name))
    ]
    from elasticthought.engine.upgrade import upgrade_net

    nets = [getattr(solver, name) for name in SOLVER_NET_FIELDS if solver.HasField(name)]
    for net in [*nets, *solver.test_net_param]:  # embedded nets may be in any format
        found += named_files_in_net(upgrade_net(net))
    return found
