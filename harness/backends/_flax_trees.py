"""Flax's LSTM parameter trees (linen and nnx) to and from the canonical weights. Imports no framework.

A Flax LSTM cell has no input-side bias: its one bias lives on the hidden side (hi/hf/hg/ho, or
dense_h), so the canonical single bias (b_ih, with b_hh zero) is written there, and a double bias
reaches Flax summed (Capabilities.double_bias=False folds it). Kernels are [in, out]: the canonical
matrices transposed. Gate order i, f, g, o.

Cells (one (layer, direction)):
  per-gate  (linen LSTMCell and OptimizedLSTMCell, which hold the same tree; nnx LSTMCell):
            ii, if (nnx: if_), ig, io: {kernel [in, H]};  hi, hf, hg, ho: {kernel [H, H], bias [H]}
  fused     (nnx OptimizedLSTMCell): dense_i: {kernel [in, 4H]};  dense_h: {kernel [H, 4H], bias [4H]}

Around the cells, the trees the frameworks' own wrappers produce:
  nn.RNN / nnx.RNN:                {cell: <cell>}
  nn.Bidirectional / nnx.Bidirectional: {forward_rnn: {cell: ...}, backward_rnn: {cell: ...}}
  stacked (nn.Sequential / nnx.Sequential of those):  linen {layers_0: ..., layers_1: ...},
                                                      nnx   {layers: {0: ..., 1: ...}}
  linen wraps it all in {params: ...} (what Module.init returns); nnx's is nnx.state(model, nnx.Param).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..canonical import GATES, CanonicalLSTM, LayerWeights
from ..spec import DIRECTIONS, LSTMSpec
from . import _jax
from ._names import group_by_prefix, part, pick, take

PER_GATE, FUSED = "LSTMCell", "OptimizedLSTMCell"


@dataclass(frozen=True)
class TreeStyle:
    """How one Flax API names things."""

    framework: str  # for messages: "flax.linen" / "flax.nnx"
    forget_name: str  # the input-side forget kernel: "if" (linen) or "if_" (nnx)
    layer_path: str  # format of a stacked layer's path, e.g. "layers_{k}" or "layers/{k}"
    top: str | None  # the wrapper around everything ("params" for linen's variables) or None
    fused: bool  # whether this API has a fused cell (dense_i / dense_h)

    def gate_names(self) -> tuple[list[str], list[str]]:
        return ["ii", self.forget_name, "ig", "io"], ["hi", "hf", "hg", "ho"]

    def local_pattern(self) -> str:
        """A regex for the path of one parameter below the LSTM's root (see group_by_prefix)."""
        inp, hid = self.gate_names()
        cells = inp + hid + (["dense_i", "dense_h"] if self.fused else [])
        layer = re.escape(self.layer_path).replace(r"\{k\}", r"(?P<layer>\d+)")
        # (?<![^/]): the LSTM's root starts a path segment, so 'encoder_layers_0' is not layer 0.
        return (rf"(?<![^/])(?:{layer}/)?(?:(?P<dir>forward|backward)_rnn/)?(?:cell/)?"
                rf"(?P<param>{'|'.join(map(re.escape, cells))})/(?P<leaf>kernel|bias)")


LINEN = TreeStyle("flax.linen", "if", "layers_{k}", "params", fused=False)
NNX = TreeStyle("flax.nnx", "if_", "layers/{k}", None, fused=True)


def unit_path(style: TreeStyle, spec: LSTMSpec, layer: int, direction: int) -> list[str]:
    """The keys from the root to one (layer, direction)'s cell tree."""
    path = [] if style.top is None else [style.top]
    if spec.num_layers > 1:
        path += style.layer_path.format(k=layer).split("/")
    if spec.bidirectional:
        path.append(f"{DIRECTIONS[direction]}_rnn")
    return path + ["cell"]


def cell_tree(style: TreeStyle, lw: LayerWeights, hidden: int, cell: str, dtype) -> dict:
    """One (layer, direction) as a Flax cell tree (numpy arrays of `dtype`)."""
    H = hidden
    bias = (lw.b_ih + lw.b_hh).astype(dtype)  # Flax's one (hidden-side) bias
    if cell == FUSED:
        return {"dense_i": {"kernel": lw.W_ih.T.astype(dtype)},
                "dense_h": {"kernel": lw.W_hh.T.astype(dtype), "bias": bias}}
    inp, hid = style.gate_names()
    tree = {}
    for j in range(4):
        rows = slice(j * H, (j + 1) * H)
        tree[inp[j]] = {"kernel": lw.W_ih[rows].T.astype(dtype)}
        tree[hid[j]] = {"kernel": lw.W_hh[rows].T.astype(dtype), "bias": bias[rows]}
    return tree


def to_tree(style: TreeStyle, model: CanonicalLSTM, dtype, cell: str) -> dict:
    """The whole (already adapted: one bias, no forget_bias) LSTM as the wrappers' tree."""
    if cell not in (PER_GATE, FUSED) or (cell == FUSED and not style.fused):
        kinds = (PER_GATE, FUSED) if style.fused else (PER_GATE,)
        raise ValueError(f"cell: expected one of {kinds} for {style.framework}, got {cell!r}")
    spec = model.spec
    root: dict = {}
    for (k, d), lw in model.weights.items():
        node = root
        *parents, last = unit_path(style, spec, k, d)
        for key in parents:
            node = node.setdefault(int(key) if key.isdigit() else key, {})
        node[last] = cell_tree(style, lw, spec.hidden_size, cell, dtype)
    return root


def _fail(style: TreeStyle, message: str):
    raise ValueError(f"{style.framework} import: {message}")


def from_tree(style: TreeStyle, native, spec: LSTMSpec, select: str | None = None) -> tuple[CanonicalLSTM, set[str]]:
    """Read one LSTM from a Flax tree (any enclosing path; `select` names it if there are several).

    Returns the canonical model and the cell kinds found (a tree says which cell it is made for,
    except linen, whose two cells share one tree).
    """
    if spec.bias == "double":
        _fail(style, "a Flax LSTM cell has one bias (on the hidden side); describe it with bias='single' (or 'none')")
    if spec.forget_bias:
        _fail(style, "Flax has no run-time forget_bias; describe the Flax LSTM with forget_bias=0")
    group = pick(group_by_prefix(_jax.flatten(native, f"{style.framework} import"), style.local_pattern()),
                 select, f"{style.framework} LSTM")
    rx = re.compile(style.local_pattern())
    units: dict[tuple[int | None, str | None], dict[str, np.ndarray]] = {}
    for local, value in group.items():
        m = rx.fullmatch(local)
        layer = None if m["layer"] is None else int(m["layer"])
        units.setdefault((layer, m["dir"]), {})[f"{m['param']}/{m['leaf']}"] = (group.key(local), value)
    layers = sorted({k for k, _ in units}, key=lambda v: -1 if v is None else v)
    if spec.num_layers > 1 and layers != list(range(spec.num_layers)):
        _fail(style, f"spec.num_layers={spec.num_layers} needs stacked layers "
                     f"{[style.layer_path.format(k=k) for k in range(spec.num_layers)]}, found "
                     f"{['(not stacked)' if k is None else style.layer_path.format(k=k) for k in layers]}")
    if spec.num_layers == 1 and layers not in ([None], [0]):
        _fail(style, f"spec.num_layers=1, but the tree holds stacked layers {layers}")
    weights, kinds = {}, set()
    for (layer, direction), params in units.items():
        k = layer or 0
        want_dirs = {"forward", "backward"} if spec.bidirectional else {None}
        if direction not in want_dirs:
            _fail(style, f"found {direction or 'no'} *_rnn level at layer {k}, but spec.bidirectional={spec.bidirectional} "
                         f"(a bidirectional tree has forward_rnn and backward_rnn)")
        d = 0 if direction in (None, "forward") else 1
        lw, kind = _read_cell(style, params, spec, k, d, f"layer {k}" + (f" {direction}_rnn" if direction else ""))
        weights[(k, d)] = lw
        kinds.add(kind)
    missing = sorted(set(spec.units()) - set(weights))
    if missing:
        _fail(style, f"no cell for (layer, direction) {missing}; spec {spec.features()}")
    return CanonicalLSTM(spec, weights), kinds


def _read_cell(style: TreeStyle, found: dict[str, tuple[str, Any]], spec: LSTMSpec, layer: int, direction: int,
               where: str):
    """One cell's LayerWeights and kind from its leaves ({param/leaf: (the user's path, value)})."""
    H, n_in = spec.hidden_size, spec.layer_input_size(layer)
    inp, hid = style.gate_names()
    layouts = {PER_GATE: {**{f"{g}/kernel": (n_in, H) for g in inp},
                          **{f"{g}/kernel": (H, H) for g in hid}, **{f"{g}/bias": (H,) for g in hid}}}
    if style.fused:
        layouts[FUSED] = {"dense_i/kernel": (n_in, 4 * H), "dense_h/kernel": (H, 4 * H), "dense_h/bias": (4 * H,)}
    kind = FUSED if any(p.startswith("dense_") for p in found) else PER_GATE
    expected = layouts[kind]
    if set(found) != set(expected):
        _fail(style, f"{where}: a {kind} needs {sorted(expected)}; missing {sorted(set(expected) - set(found))}, "
                     f"unexpected {sorted(set(found) - set(expected))}")
    params = {name: take(*found[name], shape, part(layer, direction, _holds(name, inp, hid)))
              for name, shape in expected.items()}
    if kind == FUSED:
        W_ih, W_hh, bias = params["dense_i/kernel"].T, params["dense_h/kernel"].T, params["dense_h/bias"]
    else:
        W_ih = np.concatenate([params[f"{g}/kernel"].T for g in inp])
        W_hh = np.concatenate([params[f"{g}/kernel"].T for g in hid])
        bias = np.concatenate([params[f"{g}/bias"] for g in hid])
    return LayerWeights(W_ih=W_ih, W_hh=W_hh, b_ih=bias, b_hh=np.zeros(4 * H)), kind


def _holds(name: str, inp: list[str], hid: list[str]) -> str:
    """What one Flax leaf holds canonically: 'ii/kernel' -> 'W_ih rows of gate i, transposed'."""
    if name.startswith("dense_"):
        return {"dense_i/kernel": "W_ih transposed", "dense_h/kernel": "W_hh transposed",
                "dense_h/bias": "b_ih + b_hh"}[name]
    gate, leaf = name.split("/")
    canonical = GATES[(inp.index(gate) if gate in inp else hid.index(gate))]
    if leaf == "bias":
        return f"b_ih + b_hh of gate {canonical}"
    return f"{'W_ih' if gate in inp else 'W_hh'} of gate {canonical}, transposed"
