"""Flax parameter trees written with flax.serialization.to_bytes (.msgpack): linen's variables
({"params": ...}) and nnx's parameter state (nnx.state(model, nnx.Param).to_pure_dict()).

Read with flax.serialization.msgpack_restore: msgpack plus Flax's own extension types (an ndarray is
(shape, dtype name, raw bytes), made with numpy.frombuffer). Nothing is unpickled: a dtype name of 'O'
(object) cannot come out of a buffer, and an unknown extension type stays an opaque msgpack.ExtType, which
the import refuses as "not a numeric array". Orbax checkpoints are read in harness.readers.orbax.

The spec comes from the tree (spec_fields, also for .npz / .safetensors trees and Orbax): sizes from the
kernels, layers from layers_{k} (linen) or layers/{k} (nnx), directions from forward_rnn / backward_rnn;
a Flax cell always has its one (hidden-side) bias, so the bias kind is "single" without being said.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import Source, pick

SUFFIXES = (".msgpack",)


def handles(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def read(path: Path, family: str, select, what: str = "SRC") -> Source:
    from flax import serialization

    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file {path}")
    try:
        tree = serialization.msgpack_restore(path.read_bytes())
    except Exception as exc:  # msgpack's own errors, numpy refusing an object dtype from a buffer
        raise ValueError(f"{what}: {path} could not be read as a flax.serialization msgpack file: "
                         f"{type(exc).__name__}: {exc}") from exc
    return tree_source(plain_tree(tree), "flax msgpack", family, select, what)


def tree_source(tree, form: str, family: str, select, what: str) -> Source:
    if not isinstance(tree, Mapping):
        raise ValueError(f"{what}: the {form} holds a {type(tree).__name__}, not a tree of parameters")
    source = Source(tree, form, select=select)
    source.fields, source.evidence = spec_fields(family, tree, select, what)
    return source


def plain_tree(node):
    """Nested dicts of numpy arrays; nnx's {'value': array} leaves (Orbax, nnx.State) become the array."""
    if isinstance(node, Mapping):
        if set(node) == {"value"} and not isinstance(node["value"], Mapping):
            return plain_tree(node["value"])
        return {str(k): plain_tree(v) for k, v in node.items()}
    if hasattr(node, "__array__") and not isinstance(node, np.ndarray):
        return np.asarray(node)
    return node


def style(family: str):
    from ..backends._flax_trees import LINEN, NNX

    return NNX if family == "flax-nnx" else LINEN


def spec_fields(family: str, native, select, what: str = "SRC"):
    """(fields, evidence) of the one Flax LSTM in the tree (select: its '/'-path where there are several)."""
    from ..backends._jax import flatten
    from ..backends._names import group_by_prefix

    s = style(family)
    groups = group_by_prefix(flatten(native, what), s.local_pattern())
    if not groups:
        other = "flax-nnx" if family == "flax" else "flax"
        raise ValueError(f"{what}: no {s.framework} LSTM cell parameters (.../cell/ii/kernel, ...) in the tree "
                         f"(a {other} tree? then --from {other})")
    prefix, group = pick(groups, select, what, s.framework)
    rx = re.compile(s.local_pattern())
    units = {}
    for local, value in group.items():
        m = rx.fullmatch(local)
        units.setdefault((m["layer"], m["dir"]), {})[f"{m['param']}/{m['leaf']}"] = np.shape(value)
    layers = sorted({k for k, _ in units}, key=lambda v: -1 if v is None else int(v))
    first = units[(layers[0], next(d for k, d in units if k == layers[0]))]
    if "dense_i/kernel" in first:
        n_in, H = first["dense_i/kernel"][0], first["dense_i/kernel"][1] // 4
        where = "dense_i/kernel"
    else:
        n_in, H = first["ii/kernel"]
        where = "ii/kernel"
    directions = {d for _, d in units}
    fields = {"input_size": int(n_in), "hidden_size": int(H), "num_layers": len(layers),
              "bidirectional": directions == {"forward", "backward"}, "bias": "single", "proj_size": 0,
              "peephole": False, "forget_bias": 0.0, "cell_clip": None, "proj_clip": None, "gate_clip": None}
    path = f"{prefix}{s.layer_path.format(k=0) + '/' if layers[0] is not None else ''}" \
           f"{'forward_rnn/' if fields['bidirectional'] else ''}cell/{where}"
    evidence = {"input_size": f"{path} is {list(first[where])}", "hidden_size": f"{path} is {list(first[where])}",
                "num_layers": f"{len(layers)} layer(s) under {prefix!r}",
                "bidirectional": f"{'forward_rnn and backward_rnn' if fields['bidirectional'] else 'no backward_rnn'} "
                                 f"under {prefix!r}",
                "bias": "a Flax LSTM cell has one bias, on the hidden side"}
    for feature in ("proj_size", "peephole", "forget_bias", "cell_clip", "proj_clip", "gate_clip"):
        evidence[feature] = f"a {s.framework} LSTM cell has none"
    return fields, evidence
