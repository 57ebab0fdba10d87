"""A TF1 cell with its variables. Two forms:

    cell                  a built LSTMCell / BasicLSTMCell, a MultiRNNCell of them, or a (fw, bw) pair of cells
                          (dynamic_rnn / bidirectional_dynamic_rnn built their variables): the cell's own variables
    (cell, variables)     variables: checkpoint names -> arrays (tf.train.load_checkpoint's tensors, any scope)

The cell says what a checkpoint does not hold: forget_bias, cell_clip, proj_clip (and use_peepholes, num_proj,
which the variables must agree with; an activation other than tanh is refused by name). The spec and weights
come from the variables (tf1.spec_from_checkpoint, the tf1 backend's import; select= a leading scope).

Running: built cells run themselves through dynamic_rnn / bidirectional_dynamic_rnn (the tf1 backend's run);
with checkpoint variables, TF1 cells of the same arguments are built holding them (the tf1 backend's prepare),
since a TF1 cell is a recipe and its variables live in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import backends
from ..backends import UnsupportedFeature
from ..backends.tf1 import LEGACY_CELLS
from . import Side, dtype_name, framework_lengths, loaded


def _is_cell(rc, obj) -> bool:
    return isinstance(obj, (rc.LSTMCell, rc.BasicLSTMCell, rc.MultiRNNCell))


def _is_cells(rc, obj) -> bool:
    return _is_cell(rc, obj) or (isinstance(obj, tuple) and len(obj) == 2 and all(_is_cell(rc, c) for c in obj))


def recognise(obj) -> bool:
    rc = loaded(LEGACY_CELLS)
    if rc is None:
        return False
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], Mapping):
        return _is_cells(rc, obj[0])
    return _is_cells(rc, obj)


def _arguments(rc, cell) -> dict:
    act = getattr(cell._activation, "__name__", repr(cell._activation))
    if act != "tanh":
        raise UnsupportedFeature(f"{type(cell).__name__} has activation={act}: the canonical LSTM uses tanh")
    if isinstance(cell, rc.BasicLSTMCell):
        return {"basic": True, "forget_bias": cell._forget_bias, "cell_clip": None, "proj_clip": None,
                "peephole": False, "proj_size": 0}
    return {"basic": False, "forget_bias": cell._forget_bias, "cell_clip": cell._cell_clip,
            "proj_clip": cell._proj_clip, "peephole": bool(cell._use_peepholes), "proj_size": cell._num_proj or 0}


def read(obj, select, option: str, lenient: bool) -> Side:
    import importlib

    from ..backends import tf1

    rc = importlib.import_module(LEGACY_CELLS)
    cells, variables = obj if isinstance(obj, tuple) and isinstance(obj[1], Mapping) else (obj, None)
    pair = isinstance(cells, tuple)
    outer = list(cells) if pair else [cells]
    inner = [c for o in outer for c in (o._cells if isinstance(o, rc.MultiRNNCell) else [o])]
    args = [_arguments(rc, c) for c in inner]
    if any(a != args[0] for a in args):
        raise UnsupportedFeature(f"the cells' arguments differ ({args}): one canonical LSTM has one forget_bias, clip "
                                 "and cell kind")
    own = variables is None
    if own:
        variables = {v.name: v.numpy() for o in outer for v in o.variables}
        if not variables:
            raise ValueError("the cell has no variables yet (dynamic_rnn builds them): pass (cell, variables) with "
                             "the checkpoint's, e.g. {n: r.get_tensor(n) for n in r.get_variable_to_shape_map()} "
                             "of r = tf.train.load_checkpoint(path)")
    a = args[0]
    spec = tf1.spec_from_checkpoint(variables, forget_bias=a["forget_bias"], cell_clip=a["cell_clip"],
                                    proj_clip=a["proj_clip"], select=select)
    for field, value in (("peephole", a["peephole"]), ("proj_size", a["proj_size"])):
        if getattr(spec, field) != value:
            raise ValueError(f"the cell says {field}={value!r}, its variables {field}={getattr(spec, field)!r}")
    name = "tf1-basic" if a["basic"] else "tf1"
    backend = backends.get(name)
    model = backend.import_(variables, spec, select)
    dtype = dtype_name(np.asarray(next(iter(variables.values()))).dtype)
    kind = type(outer[0]).__name__ + (" pair" if pair else "")
    if own:
        units = ({(0, d): c for d, c in enumerate(outer)} if pair else {(k, 0): c for k, c in enumerate(inner)})
        if set(units) != set(spec.units()):
            raise ValueError(f"the cells ({kind}) do not match their variables' layout ({spec.features()})")
        multi = outer[0] if isinstance(outer[0], rc.MultiRNNCell) and not pair else None
        live = backends.Prepared(name, spec, dtype, "cpu", {"spec": spec, "dtype": dtype, "cells": units,
                                                            "multi": multi, "rc": rc})
        how = "the user's cells through dynamic_rnn" + (" (bidirectional_dynamic_rnn)" if pair else "")
    else:
        live = backend.prepare(model, dtype, "cpu")
        how = f"TF1 {type(inner[0]).__name__}s of the same arguments holding the checkpoint's variables"
    side = Side(f"TF1 {kind} (forget_bias={a['forget_bias']:g})", name, model, dtype,
                lambda x, h0, c0, lengths=None: backend.run(live, x, h0, c0, lengths=lengths), how)
    return framework_lengths(side, name)
