"""`onnx`: the ONNX LSTM operator, one node per layer, run in onnxruntime. The model building and the
import live here and are shared with `onnx-reference` (onnx.reference.ReferenceEvaluator).

ONNX's layout, per node (= one layer), D = 1 (direction "forward") or 2 ("bidirectional"):
  W [D, 4H, in], R [D, 4H, H], B [D, 8H] = [Wb, Rb] (b_ih, b_hh), P [D, 3H] peepholes in order i, o, f;
  gate order i, o, f, c (c is the canonical g); Y [T, D, B, H], Y_h and Y_c [D, B, H] (layout 0).

Native parameters: a NativeDict of the exported model's initializers, under the names it gives them:
  lstm_{k}.W, lstm_{k}.R, lstm_{k}.B (absent for bias="none"), lstm_{k}.P (only with peepholes).
  (Not the ModelProto itself: a protobuf message cannot carry `.folded`, and one set of initializers
  builds every input form a runtime needs: time- or batch-major, with or without initial state.)
build_model(native) (or OnnxBackend.export_model(canonical)) makes the onnx.ModelProto from them:
  inputs x [T, B, in] (or [B, T, in]), h0 [L*D, B, H], c0 [L*D, B, H] (left out for the default zero
  state); outputs y [T, B, D*H] (or [B, T, D*H]), h_n, c_n [L*D, B, H]: torch.nn.LSTM's interface.
  Layer k reads h0[k*D:(k+1)*D] (a Split); between layers Y [T, D, B, H] is transposed to [T, B, D, H]
  and reshaped to [T, B, D*H]. A bidirectional layer is one node with direction "bidirectional".
  layout=1 builds batch-major nodes (Y [B, T, D, H] reshaped to [B, T, D*H], states [B, D, H]).
  lengths=True adds the input sequence_lens int32 [B], every node's sequence_lens (ONNX's own per-example
  lengths, right padding: zeros in Y past each length, Y_h and Y_c at the last valid step, measured in
  onnxruntime).
  spec.gate_clip is every node's `clip` attribute (a float32 attribute: 0.1 is written rounded to float32);
  the initializers do not hold it, as a TF1 checkpoint does not hold cell_clip: the spec says it.

Import reads that NativeDict (any key prefix), an onnx.ModelProto, a path to an .onnx file or its
bytes, e.g. one written by torch.onnx.export. W, R, B, P may be initializers, Constant nodes or
constant expressions of them (the legacy exporter without constant folding writes Slice/Concat of
initializers); those are evaluated, once ONNX's shape inference has sized every step within what the file
stores (FOLD_ALLOWANCE, FOLD_STEPS_TOTAL: a crafted file cannot make the import allocate without bound). LSTM
nodes chain into a stack where one node's Y reaches the next node's X through reshaping ops only; select= names the first LSTM node of a stack or its name
scope ("/encoder"), and spec.num_layers nodes are taken from there (two LSTMs where one reads the
other's y chain like one stack: the first node's name tells them apart). A node's `clip` is the
canonical gate_clip: it must equal spec.gate_clip (in float32), on every node of the stack. A node
using what the canonical LSTM cannot express (non-default activations, activation_alpha/beta,
input_forget, direction "reverse", a clip <= 0) is refused with UnsupportedFeature naming the attribute.
A node's sequence_lens is the run's per-example lengths: fed at run time (a graph input, or computed from
one, as torch.onnx.export writes it for a packed sequence), or a constant, which the imported model then
carries as CanonicalLSTM.fixed_lengths (every run must pass those lengths). Every node of the stack must
have it, or none. Not checked: that the ops between chained layers are the standard transpose +
reshape (what every exporter writes); the torch export case runs the file itself.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..canonical import CanonicalLSTM, LayerWeights
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Backend, Capabilities, NativeDict, UnsupportedFeature
from ._names import group_by_prefix, part, pick, take

OPSET = 21  # LSTM-14 semantics (the layout attribute); run by onnxruntime 1.32 and onnx.reference
IR_VERSION = 10  # the IR version released with opset 21

# ONNX gate block j holds canonical block _TO_ONNX[j] (i, o, f, c = g); _TO_CANONICAL is the inverse.
_TO_ONNX = (0, 3, 1, 2)
_TO_CANONICAL = (0, 2, 3, 1)
_DEFAULT_ACTIVATIONS = ["sigmoid", "tanh", "tanh"]
_LOCAL = r"lstm_\d+\.(?:W|R|B|P)"  # the local names of the native initializers
# Ops that only move data: an LSTM node's Y reaching another LSTM's X through these makes them a stack.
_RESHAPING = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Flatten"}


def _gates(a: np.ndarray, order: tuple[int, ...], H: int) -> np.ndarray:
    """The four H-row gate blocks of `a` (along axis 0) in `order`."""
    return np.concatenate([a[j * H : (j + 1) * H] for j in order], axis=0)


# Canonical <-> native -------------------------------------------------------------------------
def to_native(model: CanonicalLSTM, dtype) -> NativeDict:
    """The per-node initializers of an (already adapted) model: no projection, cell/proj clips or forget_bias
    (gate_clip is the nodes' clip attribute, written by build_model)."""
    spec, H = model.spec, model.spec.hidden_size
    out = NativeDict()
    for k in range(spec.num_layers):
        units = [model.weights[(k, d)] for d in range(spec.num_directions)]
        out[f"lstm_{k}.W"] = np.stack([_gates(u.W_ih, _TO_ONNX, H) for u in units]).astype(dtype)
        out[f"lstm_{k}.R"] = np.stack([_gates(u.W_hh, _TO_ONNX, H) for u in units]).astype(dtype)
        if spec.bias != "none":
            out[f"lstm_{k}.B"] = np.stack(
                [np.concatenate([_gates(u.b_ih, _TO_ONNX, H), _gates(u.b_hh, _TO_ONNX, H)]) for u in units]
            ).astype(dtype)
        if spec.peephole:
            out[f"lstm_{k}.P"] = np.stack([np.concatenate([u.w_i, u.w_o, u.w_f]) for u in units]).astype(dtype)
    return out


@dataclass
class _Node:
    """One LSTM node as read for import: its name, tensors (W, R and any of B, P) and attributes."""

    name: str
    tensors: dict[str, Any]
    sources: dict[str, str]  # W/R/B/P -> the user's name for it: an initializer, a node's output, a NativeDict key
    direction: str | None = None  # None: not stated (a NativeDict); W's first dimension says it
    hidden_size: int | None = None
    clip: float | None = None  # the clip attribute (a NativeDict holds none: the spec's gate_clip stands)
    sequence_lens: Any = None  # None: no sequence_lens; RUN_TIME: fed at run; an array: a constant


def _unit_weights(node: _Node, spec: LSTMSpec, k: int) -> dict[tuple[int, int], LayerWeights]:
    """The canonical weights of layer k from one node, after checking it against the spec."""
    D, H, n_in = spec.num_directions, spec.hidden_size, spec.layer_input_size(k)
    where = f"onnx import: LSTM node {node.name!r} (layer {k})"
    want_dir = "bidirectional" if spec.bidirectional else "forward"
    if node.direction is not None and node.direction != want_dir:
        raise ValueError(f"{where}: direction={node.direction!r}, but spec.bidirectional={spec.bidirectional}")
    if node.hidden_size is not None and node.hidden_size != H:
        raise ValueError(f"{where}: hidden_size={node.hidden_size}, but spec.hidden_size={H}")
    if (node.clip is None) != (spec.gate_clip is None) or (
            node.clip is not None and np.float32(node.clip) != np.float32(spec.gate_clip)):
        stated = "no clip" if node.clip is None else f"clip={node.clip:g}"
        hint = "gate_clip=None" if node.clip is None else f"gate_clip={node.clip:g}"
        raise ValueError(f"{where}: has {stated}, but spec.gate_clip={spec.gate_clip} (ONNX's clip bounds every gate "
                         f"pre-activation: describe it with {hint})")
    shapes = {"W": (D, 4 * H, n_in), "R": (D, 4 * H, H), "B": (D, 8 * H), "P": (D, 3 * H)}
    holds = {"W": "W_ih, gates i o f c", "R": "W_hh, gates i o f c", "B": "[b_ih, b_hh], gates i o f c",
             "P": "peepholes [w_i, w_o, w_f]"}
    for name in ("W", "R"):
        if name not in node.tensors:
            raise ValueError(f"{where}: no {name}")
    directions = None if D == 2 else 0
    t = {name: take(node.sources[name], value, shapes[name], part(k, directions, f"{holds[name]}; input {name} of "
                                                                     f"LSTM node {node.name!r}"),
                    why=f"D={D}, H={H}, input size {n_in}: spec {spec.features()}")
         for name, value in node.tensors.items()}
    B = t.get("B")
    if B is None and spec.bias != "none":
        raise ValueError(f"{where}: has no bias B, but spec.bias={spec.bias!r} (describe it with bias='none')")
    if B is not None and spec.bias == "none" and np.any(B):
        raise ValueError(f"{where}: has a nonzero bias B, but spec.bias='none'")
    if B is not None and spec.bias == "single" and np.any(B[:, 4 * H :]):
        raise ValueError(f"{where}: the recurrence bias Rb = B[:, 4H:] is nonzero, but spec.bias='single' "
                         "(describe it with bias='double')")
    P = t.get("P")
    if P is None and spec.peephole:
        raise ValueError(f"{where}: has no peepholes P, but spec.peephole=True")
    if P is not None and not spec.peephole and np.any(P):
        raise ValueError(f"{where}: has nonzero peepholes P, but spec.peephole=False")
    out = {}
    for d in range(D):
        bias = np.zeros(8 * H) if B is None or spec.bias == "none" else B[d]
        lw = LayerWeights(
            W_ih=_gates(t["W"][d], _TO_CANONICAL, H), W_hh=_gates(t["R"][d], _TO_CANONICAL, H),
            b_ih=_gates(bias[: 4 * H], _TO_CANONICAL, H), b_hh=_gates(bias[4 * H :], _TO_CANONICAL, H),
        )
        if spec.peephole:
            lw.w_i, lw.w_o, lw.w_f = P[d, :H], P[d, H : 2 * H], P[d, 2 * H :]
        out[(k, d)] = lw
    return out


def _nodes_from_mapping(native: Mapping, spec: LSTMSpec, select: str | None) -> list[_Node]:
    params = pick(group_by_prefix(native, _LOCAL), select, "ONNX LSTM (lstm_<k>.W/R/B/P)")
    layers: dict[int, dict[str, Any]] = defaultdict(dict)
    for local, value in params.items():
        node, kind = local.split(".")
        layers[int(node[len("lstm_"):])][kind] = value
    if sorted(layers) != list(range(spec.num_layers)):
        raise ValueError(f"onnx import: found initializers of layers {sorted(layers)}, "
                         f"but spec.num_layers={spec.num_layers} needs layers {list(range(spec.num_layers))}")
    return [_Node(f"lstm_{k}", layers[k], {kind: params.key(f"lstm_{k}.{kind}") for kind in layers[k]},
                  clip=spec.gate_clip) for k in range(spec.num_layers)]


# Reading any ONNX model ----------------------------------------------------------------------
def _load(native) -> Any:
    import onnx

    if isinstance(native, onnx.ModelProto):
        return native
    if isinstance(native, (bytes, bytearray)):
        return onnx.load_model_from_string(bytes(native))
    if isinstance(native, (str, os.PathLike)):
        path = Path(native)
        if not path.is_file():
            raise FileNotFoundError(f"onnx import: no ONNX file at {path}")
        return onnx.load(str(path))  # reads external data files beside it too
    raise TypeError("onnx import: expected a NativeDict of lstm_<k>.W/R/B/P arrays, an onnx.ModelProto, a path "
                    f"to an .onnx file or its bytes, got {type(native).__name__}")


def _describe(node) -> str:
    return f"{node.name!r} ({node.op_type})" if node.name else f"<unnamed {node.op_type}>"


# A constant expression is evaluated only within these bounds (checked first, by ONNX's shape inference): each step
# at most what the file stores plus FOLD_ALLOWANCE elements (room for a zeros bias or an expanded constant in a
# model that stores little), all its steps together FOLD_STEPS_TOTAL times that. Measured on torch's legacy export
# without constant folding (W, R, B as Slice/Concat/Unsqueeze of the parameters: 15-59 steps): each weight's
# steps together hold 0.3-1.8 x what the file stores.
FOLD_ALLOWANCE = 2**20
FOLD_STEPS_TOTAL = 16


def _elements(dims) -> int:
    return int(np.prod(dims, dtype=np.float64))


def _constant_elements(attribute) -> int:
    """The elements a Constant node's value attribute stores (value_float, value_int, value_string: one)."""
    if attribute.name == "value":
        return _elements(attribute.t.dims)
    if attribute.name == "sparse_value":
        return _elements(attribute.sparse_tensor.values.dims)
    return len(attribute.floats) + len(attribute.ints) + len(attribute.strings) or 1


class _Graph:
    """The main graph of a model, indexed for finding LSTM stacks and constant values."""

    def __init__(self, model) -> None:
        self.model = model
        self._stored: int | None = None  # stored_elements(), counted once
        g = model.graph
        self.nodes = list(g.node)
        self.inits = {t.name: t for t in g.initializer}
        self.inputs = {i.name for i in g.input} - set(self.inits)
        self.producer: dict[str, Any] = {}
        for n in self.nodes:
            for o in filter(None, n.output):  # "" is an output left out
                if o in self.producer or o in self.inits or o in self.inputs:
                    earlier = (f"the output of node {_describe(self.producer[o])}" if o in self.producer
                               else "an initializer" if o in self.inits else "a graph input")
                    raise ValueError(f"onnx import: node {_describe(n)} re-defines tensor {o!r}, already "
                                     f"{earlier}: not a valid ONNX graph (every tensor has one definition)")
                self.producer[o] = n
        self.consumers: dict[str, list] = defaultdict(list)
        for n in self.nodes:
            for i in n.input:
                if i:
                    self.consumers[i].append(n)
        self._refuse_cycles()

    def _refuse_cycles(self) -> None:
        """A node that (through others) reads its own output: a named error, so no walk below can loop."""
        # in graph and input order, so the node named is the same on every run
        preds = {id(n): list(dict.fromkeys(id(self.producer[i]) for i in n.input if i in self.producer))
                 for n in self.nodes}
        by_id = {id(n): n for n in self.nodes}
        waiting = {k: len(v) for k, v in preds.items()}
        ready = [k for k, v in waiting.items() if not v]
        succs: dict[int, list[int]] = defaultdict(list)
        for k, ps in preds.items():
            for p in ps:
                succs[p].append(k)
        while ready:  # Kahn's topological sort: whatever never becomes ready lies on or after a cycle
            for s in succs[ready.pop()]:
                waiting[s] -= 1
                if not waiting[s]:
                    ready.append(s)
        stuck = [id(n) for n in self.nodes if waiting[id(n)]]
        if not stuck:
            return
        seen, k = [], stuck[0]
        while k not in seen:  # step back through stuck predecessors until one repeats: that one is on the cycle
            seen.append(k)
            k = next(p for p in preds[k] if waiting[p])  # a stuck predecessor
        cycle = [k, *reversed(seen[seen.index(k) + 1:]), k]  # in the direction the data flows
        raise ValueError(f"onnx import: node {_describe(by_id[k])} reads its own output through a cycle "
                         f"({' -> '.join(_describe(by_id[c]) for c in cycle)}): "
                         "not a valid ONNX graph (nodes must form a DAG)")

    def value(self, name: str, what: str) -> np.ndarray:
        """The constant behind tensor `name`: an initializer, or a constant expression evaluated."""
        from onnx import TensorProto, numpy_helper

        if name in self.inits:
            tensor = self.inits[name]
            if tensor.data_location == TensorProto.EXTERNAL:
                raise ValueError(f"{what}: initializer {name!r} keeps its data in an external file that was not "
                                 "loaded; pass the .onnx path (or onnx.load it) so the data is read")
            return numpy_helper.to_array(tensor)
        return self._fold(name, what)

    def _fold(self, name: str, what: str) -> np.ndarray:
        """Evaluate the nodes that compute `name` (Constant, Slice, Concat...) if they read no graph input."""
        import onnx
        from onnx.reference import ReferenceEvaluator

        needed, inits, todo = set(), [], [name]
        while todo:
            t = todo.pop()
            if t in self.inits:
                inits.append(self.inits[t])
            elif t in self.producer:
                n = self.producer[t]
                if id(n) not in needed:
                    needed.add(id(n))
                    todo += [i for i in n.input if i]
            elif t in self.inputs:
                raise ValueError(f"{what}: {name!r} depends on the graph input {t!r}, fed at run time: "
                                 "not a stored weight")
            else:
                raise ValueError(f"{what}: {name!r} is neither an initializer nor an output of any node")
        nodes = [n for n in self.nodes if id(n) in needed]
        graph = onnx.helper.make_graph(nodes, "fold", [], [onnx.ValueInfoProto(name=name)],
                                       list({i.name: i for i in inits}.values()))
        sub = onnx.helper.make_model(graph, opset_imports=self.model.opset_import, ir_version=self.model.ir_version,
                                     functions=self.model.functions)
        self._check_sizes(sub, nodes, name, what)
        return np.asarray(ReferenceEvaluator(sub).run([name], {})[0])

    def _check_sizes(self, sub, nodes: list, name: str, what: str) -> None:
        """Before evaluating: every step's size, by ONNX's own shape inference, known and within what the file
        stores. Slicing, concatenating and reshaping stored weights (what exporters write) never make more; a
        crafted file (ConstantOfShape, Expand, Tile to billions) would allocate without bound while importing."""
        import onnx

        step_limit = self.stored_elements() + FOLD_ALLOWANCE
        total, total_limit = 0, FOLD_STEPS_TOTAL * step_limit
        inferred = onnx.shape_inference.infer_shapes(sub, data_prop=True)
        shapes = {v.name: v.type.tensor_type.shape for v in (*inferred.graph.value_info, *inferred.graph.output)
                  if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")}
        for n in nodes:
            for out in filter(None, n.output):
                shape = shapes.get(out)
                dims = None if shape is None else [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]
                if dims is None or None in dims:
                    raise ValueError(f"{what}: {name!r} is computed by node {_describe(n)}, whose output {out!r} has "
                                     "a size ONNX's shape inference cannot tell before running it: not evaluated (a "
                                     "constant expression is evaluated only when every step's size is known)")
                size = _elements(dims)
                total += size
                if size > step_limit or total > total_limit:
                    over = (f"would hold {size} elements {dims}, more than the {step_limit} the whole file stores "
                            f"(+{FOLD_ALLOWANCE})" if size > step_limit else
                            f"takes the expression past {total_limit} elements in all ({FOLD_STEPS_TOTAL} x what "
                            "the file stores)")
                    raise ValueError(f"{what}: {name!r} is computed by node {_describe(n)}, whose output {out!r} "
                                     f"{over}: not evaluated (weights made of stored values never need more)")

    def stored_elements(self) -> int:
        """How many elements the model stores: its initializers and its Constant nodes' values (a sparse one
        by the values it stores, not by its dense shape)."""
        if self._stored is None:
            sizes = [_elements(t.dims) for t in self.inits.values()]
            sizes += [_constant_elements(a) for n in self.nodes if n.op_type == "Constant" for a in n.attribute]
            self._stored = max(sum(sizes), 1)
        return self._stored

    def next_layer(self, node):
        """The one LSTM node whose X is this node's Y through reshaping ops only, else None."""
        found, todo = {}, [node.output[0]] if node.output and node.output[0] else []
        seen = set()  # each tensor walked once (the graph is a DAG, see _refuse_cycles; this bounds the walk too)
        while todo:
            t = todo.pop()
            if t in seen:
                continue
            seen.add(t)
            for c in self.consumers.get(t, []):
                if c.input[0] != t:
                    continue
                if c.op_type == "LSTM":
                    found[id(c)] = c
                elif c.op_type in _RESHAPING and c.output and c.output[0]:
                    todo.append(c.output[0])
        return next(iter(found.values())) if len(found) == 1 else None  # several readers: not one stack


def _stack(graph: _Graph, spec: LSTMSpec, select: str | None) -> list:
    """The spec.num_layers chained LSTM nodes to import (see the module docstring for select=)."""
    lstms = [n for n in graph.nodes if n.op_type == "LSTM" and n.domain in ("", "ai.onnx")]
    if not lstms:
        where = " (LSTM nodes inside model-local functions are not searched)" if any(
            n.op_type == "LSTM" for f in graph.model.functions for n in f.node) else ""
        raise ValueError(f"onnx import: the model's main graph has no LSTM node{where}")
    nxt = {id(n): graph.next_layer(n) for n in lstms}
    followers = {id(v) for v in nxt.values() if v is not None}

    def chain(start, limit=None):
        out = [start]
        while nxt[id(out[-1])] is not None and (limit is None or len(out) < limit):
            following = nxt[id(out[-1])]
            if any(following is n for n in out):  # unreachable after _refuse_cycles; a bound all the same
                raise ValueError(f"onnx import: LSTM node {_describe(following)} follows itself in the stack "
                                 f"{[n.name for n in out]}: the graph has a cycle")
            out.append(following)
        return out

    L = spec.num_layers
    if select is None:
        stacks = [chain(n) for n in lstms if id(n) not in followers]
        if len(stacks) == 1 and len(stacks[0]) == L:
            return stacks[0]
        found = "; ".join(f"{len(s)} layer(s) from {s[0].name!r}" for s in stacks)
        raise ValueError(f"onnx import: the model's LSTM nodes form {len(stacks)} stack(s): {found}; "
                         f"spec.num_layers={L}. Pass select= the name of the first LSTM node (or the name scope) "
                         "of the one to import")
    scope = select.strip("/")
    matched = [n for n in lstms if n.name.strip("/") == scope or n.name.lstrip("/").startswith(scope + "/")]
    if not matched:
        raise ValueError(f"onnx import: select={select!r} names no LSTM node and no scope of one; "
                         f"the LSTM nodes are {[n.name for n in lstms]}")
    taken = chain(matched[0], L)
    names = [n.name for n in taken]
    if len(taken) < L:
        raise ValueError(f"onnx import: select={select!r}: the stack from LSTM node {matched[0].name!r} has "
                         f"{len(taken)} layer(s) {names}, but spec.num_layers={L}")
    stray = [n.name for n in matched if all(n is not t for t in taken)]
    if stray:
        raise ValueError(f"onnx import: select={select!r} also matches LSTM node(s) {stray} outside the "
                         f"{L}-layer stack {names} (spec.num_layers={L})")
    return taken


def _refuse_unexpressible(node) -> None:
    """UnsupportedFeature, naming the attribute, for a node the canonical LSTM cannot express."""
    from onnx.helper import get_attribute_value

    attrs = {a.name: get_attribute_value(a) for a in node.attribute}
    where = f"onnx import: LSTM node {node.name!r}"
    if "clip" in attrs and not attrs["clip"] > 0:  # a positive clip is the canonical gate_clip
        raise UnsupportedFeature(f"{where} sets clip={attrs['clip']:g}: the canonical gate_clip is > 0 "
                                 "(onnxruntime refuses clip <= 0)")
    acts = [a.decode().lower() for a in attrs.get("activations", [])]
    if acts and acts not in (_DEFAULT_ACTIVATIONS, _DEFAULT_ACTIVATIONS * 2):
        raise UnsupportedFeature(f"{where} sets activations={[a.decode() for a in attrs['activations']]}: "
                                 "the canonical LSTM uses Sigmoid, Tanh, Tanh")
    for name in ("activation_alpha", "activation_beta"):
        if name in attrs:
            raise UnsupportedFeature(f"{where} sets {name}={attrs[name]}: the canonical LSTM's activations "
                                     "have no parameters")
    if attrs.get("input_forget", 0):
        raise UnsupportedFeature(f"{where} sets input_forget={attrs['input_forget']} (input and forget gates "
                                 "coupled): the canonical LSTM has no such coupling")
    if attrs.get("direction", b"forward") == b"reverse":
        raise UnsupportedFeature(f"{where} has direction='reverse': the canonical LSTM has forward or "
                                 "bidirectional layers, no reverse-only one")


RUN_TIME = "fed at run time"  # a node's sequence_lens that is not a constant of the model


def _sequence_lens(graph: "_Graph", node):
    """A node's sequence_lens: None (absent), RUN_TIME, or the constant's int64 array."""
    if len(node.input) <= 4 or not node.input[4]:
        return None
    name = node.input[4]
    if name in graph.inputs:
        return RUN_TIME
    try:
        return np.asarray(graph.value(name, f"onnx import: LSTM node {node.name!r} input sequence_lens"), np.int64)
    except ValueError as exc:
        if "depends on the graph input" in str(exc):
            return RUN_TIME  # computed from a graph input (torch.onnx.export casts its lengths input)
        raise


def _fixed_lengths(nodes: list[_Node]) -> tuple[int, ...] | None:
    """The stack's constant sequence_lens, if any; a stack whose nodes disagree on it is refused."""
    kinds = {n.name: (None if n.sequence_lens is None else RUN_TIME if isinstance(n.sequence_lens, str)
                      else tuple(int(v) for v in n.sequence_lens.ravel())) for n in nodes}
    if len(set(kinds.values())) > 1:
        said = "; ".join(f"{name!r}: {'none' if v is None else v}" for name, v in kinds.items())
        raise UnsupportedFeature(f"onnx import: the LSTM nodes of the stack differ in sequence_lens ({said}): a layer "
                                 "that runs over another layer's padding is not the canonical stacked LSTM")
    fixed = next(iter(kinds.values()))
    return fixed if isinstance(fixed, tuple) else None


def _nodes_from_model(model, spec: LSTMSpec, select: str | None) -> list[_Node]:
    from onnx.helper import get_attribute_value

    graph = _Graph(model)
    out = []
    for node in _stack(graph, spec, select):
        _refuse_unexpressible(node)
        attrs = {a.name: get_attribute_value(a) for a in node.attribute}
        slots = {"W": 1, "R": 2, "B": 3, "P": 7}
        given = {kind: node.input[i] for kind, i in slots.items() if len(node.input) > i and node.input[i]}
        tensors = {kind: graph.value(name, f"onnx import: LSTM node {node.name!r} input {kind}")
                   for kind, name in given.items()}
        out.append(_Node(node.name, tensors, given, attrs.get("direction", b"forward").decode(),
                         attrs.get("hidden_size"), attrs.get("clip"), _sequence_lens(graph, node)))
    return out


# Building the model ---------------------------------------------------------------------------
def build_model(native: Mapping[str, np.ndarray], *, batch_first: bool = False, initial_state: bool = True,
                layout: int = 0, gate_clip: float | None = None, lengths: bool = False):
    """The ONNX model of exported initializers (see the module docstring for its interface); gate_clip, when
    set, is every LSTM node's clip attribute; lengths adds the input sequence_lens [B] for every node.

    layout=0: time-major nodes; batch-first x and y are transposed around them. layout=1: batch-major
    nodes fed batch-first x directly (onnxruntime refuses layout=1).
    """
    import onnx
    from onnx import helper, numpy_helper

    if layout not in (0, 1):
        raise ValueError(f"build_model: layout must be 0 (time-major) or 1 (batch-major), got {layout!r}")
    if layout == 1 and not batch_first:
        raise ValueError("build_model: layout=1 (batch-major nodes) needs batch_first=True input")
    L = len({k.split(".")[0] for k in native})
    required = {f"lstm_{k}.{t}" for k in range(L) for t in "WR"}
    if not required <= set(native) <= {f"lstm_{k}.{t}" for k in range(L) for t in "WRBP"}:
        raise ValueError(f"build_model: expected initializers lstm_0.W, lstm_0.R ... lstm_{L - 1}.R (and .B, .P), "
                         f"got {sorted(native)}")
    D, H4, n_in = native["lstm_0.W"].shape
    H = H4 // 4
    elem = helper.np_dtype_to_tensor_dtype(native["lstm_0.W"].dtype)
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in native.items()]
    inits.append(numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), "merge_directions"))
    nodes = []

    def node(op: str, ins: list[str], outs: list[str], **attrs) -> str:
        nodes.append(helper.make_node(op, ins, outs, **attrs))
        return outs[0]

    batch_dims = ["B", "T"] if batch_first else ["T", "B"]
    inputs = [helper.make_tensor_value_info("x", elem, [*batch_dims, n_in])]
    seq = "x" if layout == 1 or not batch_first else node("Transpose", ["x"], ["x_time_major"], perm=[1, 0, 2])
    if lengths:
        inputs.append(helper.make_tensor_value_info("sequence_lens", onnx.TensorProto.INT32, ["B"]))
    states = {}
    for s, width in (("h", H), ("c", H)):
        if not initial_state:
            states[s] = [""] * L
            continue
        inputs.append(helper.make_tensor_value_info(f"{s}0", elem, [L * D, "B", width]))
        per_layer = [f"{s}0"] if L == 1 else [f"{s}0_layer{k}" for k in range(L)]
        if L > 1:
            node("Split", [f"{s}0"], per_layer, axis=0, num_outputs=L)
        if layout == 1:  # batch-major nodes take states [B, D, H]
            per_layer = [node("Transpose", [p], [f"{s}0_layer{k}_batch_major"], perm=[1, 0, 2])
                         for k, p in enumerate(per_layer)]
        states[s] = per_layer
    finals = {"h": [], "c": []}
    for k in range(L):
        names = {t: f"lstm_{k}.{t}" if f"lstm_{k}.{t}" in native else "" for t in "BP"}
        ins = [seq, f"lstm_{k}.W", f"lstm_{k}.R", names["B"], "sequence_lens" if lengths else "", states["h"][k],
               states["c"][k], names["P"]]
        while not ins[-1]:
            ins.pop()
        y, y_h, y_c = (f"lstm_{k}.{o}" for o in ("Y", "Y_h", "Y_c"))
        clip = {} if gate_clip is None else {"clip": float(gate_clip)}
        node("LSTM", ins, [y, y_h, y_c], name=f"lstm_{k}", hidden_size=H,
             direction="bidirectional" if D == 2 else "forward", layout=layout, **clip)
        if layout == 0:  # [T, D, B, H] -> [T, B, D, H]
            y = node("Transpose", [y], [f"lstm_{k}.Y_time_batch"], perm=[0, 2, 1, 3])
        else:  # states [B, D, H] -> [D, B, H]
            y_h = node("Transpose", [y_h], [f"lstm_{k}.Y_h_direction_major"], perm=[1, 0, 2])
            y_c = node("Transpose", [y_c], [f"lstm_{k}.Y_c_direction_major"], perm=[1, 0, 2])
        last = k == L - 1 and (layout == 1 or not batch_first)
        seq = node("Reshape", [y, "merge_directions"], ["y" if last else f"lstm_{k}.out"])
        finals["h"].append(y_h)
        finals["c"].append(y_c)
    if seq != "y":
        node("Transpose", [seq], ["y"], perm=[1, 0, 2])
    node("Concat", finals["h"], ["h_n"], axis=0)
    node("Concat", finals["c"], ["c_n"], axis=0)
    outputs = [helper.make_tensor_value_info("y", elem, [*batch_dims, D * H]),
               helper.make_tensor_value_info("h_n", elem, [L * D, "B", H]),
               helper.make_tensor_value_info("c_n", elem, [L * D, "B", H])]
    graph = helper.make_graph(nodes, "lstm", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                             producer_name="lstm-harness", doc_string=f"{L}-layer LSTM, onnx {onnx.__version__}")


# The backends -------------------------------------------------------------------------------------
@dataclass
class Sessions:
    """Exported initializers and one runner per input form, each built on its first use and kept."""

    native: NativeDict
    spec: LSTMSpec  # the adapted spec, for checking inputs
    dtype: np.dtype
    layout_for_batch_first: int
    compile: Callable[[Any], Callable[[dict], list]]  # ModelProto -> run(feeds) -> [y, h_n, c_n]
    runners: dict[tuple[bool, bool, bool], Callable] = field(default_factory=dict)

    def runner(self, batch_first: bool, initial_state: bool, lengths: bool = False) -> Callable[[dict], list]:
        key = (batch_first, initial_state, lengths)
        if key not in self.runners:
            layout = self.layout_for_batch_first if batch_first else 0
            self.runners[key] = self.compile(build_model(self.native, batch_first=batch_first,
                                                         initial_state=initial_state, layout=layout,
                                                         gate_clip=self.spec.gate_clip, lengths=lengths))
        return self.runners[key]


class OnnxBackend(Backend):
    name = "onnx"
    framework = "onnxruntime"
    description = "the ONNX LSTM operator in onnxruntime (CPU, or its CUDA provider)"
    capabilities = Capabilities(double_bias=True, peephole=True, gate_clip=True, dtypes=("float32",),
                                devices=("cpu", "cuda"), lengths="zeros")
    layout_for_batch_first = 0  # onnxruntime refuses layout=1: batch-first x and y are transposed around the nodes
    threads = 1  # per session: small models on a shared machine; benchmarks set it (set_threads)
    # What this runtime lacks of the ONNX LSTM operator, declared here rather than found by a crash.
    lacks: dict[str, str] = {
        "float64": "onnxruntime has no float64 LSTM kernel (the session builds; running it fails with "
                   "'LSTM operator does not support double yet')",
        "layout=1": "onnxruntime refuses batch-major LSTM nodes (layout=1) when the session is created; "
                    "batch-first input is transposed around time-major nodes instead",
    }

    def installed(self) -> str | None:
        for module in ("onnx", self.framework):
            try:
                importlib.import_module(module)
            except Exception as exc:
                return self.not_installed(module, exc)
        return None

    def supports(self, spec, dtype="float32", device="cpu", *, lengths=False):
        gap = self.lacks.get(str(np.dtype(dtype)))
        return f"{self.name}: {gap}" if gap else super().supports(spec, dtype, device, lengths=lengths)

    def check_spec(self, spec: LSTMSpec) -> None:
        if spec.gate_clip is not None and "clip" in self.lacks:
            raise UnsupportedFeature(f"{self.name} cannot run gate_clip={spec.gate_clip:g} (ONNX's clip): "
                                     f"{self.lacks['clip']}")
        if spec.proj_size:
            raise UnsupportedFeature(f"{self.name} cannot express a projection (proj_size={spec.proj_size}): "
                                     "the ONNX LSTM operator has none")
        if spec.cell_clip is not None:
            raise UnsupportedFeature(f"{self.name} cannot express cell_clip={spec.cell_clip:g}: the ONNX LSTM operator "
                                     "has none (its clip attribute bounds the gate pre-activations: that is gate_clip, "
                                     "another operation)")
        super().check_spec(spec)

    # Conversion ---------------------------------------------------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeDict:
        return to_native(model, dtype)

    def import_(self, native, spec: LSTMSpec, select: str | None = None) -> CanonicalLSTM:
        """Read a NativeDict, an onnx.ModelProto, an .onnx path or its bytes (see the module docstring)."""
        self.check_spec(spec)
        if spec.forget_bias:
            raise ValueError("onnx import: the ONNX LSTM has no run-time forget_bias; describe it with forget_bias=0")
        if isinstance(native, Mapping):
            nodes = _nodes_from_mapping(native, spec, select)
        else:
            nodes = _nodes_from_model(_load(native), spec, select)
        weights = {}
        for k, node in enumerate(nodes):
            weights.update(_unit_weights(node, spec, k))
        return CanonicalLSTM(spec, weights, fixed_lengths=_fixed_lengths(nodes))

    def export_model(self, model: CanonicalLSTM, dtype="float32", *, batch_first: bool = False,
                     initial_state: bool = True, lengths: bool = False):
        """The onnx.ModelProto of `model` (folded as export() folds), as this runtime runs it; lengths=True
        gives it the input sequence_lens [B] (int32)."""
        layout = self.layout_for_batch_first if batch_first else 0
        return build_model(self.export(model, dtype), batch_first=batch_first, initial_state=initial_state,
                           layout=layout, gate_clip=model.spec.gate_clip, lengths=lengths)

    # Running ------------------------------------------------------------------------------------
    def _prepare(self, model: CanonicalLSTM, dtype="float32", device="cpu") -> Sessions:
        dtype, adapted = np.dtype(dtype), self.adapt(model)
        return Sessions(self.to_native(adapted, dtype), adapted.spec, dtype, self.layout_for_batch_first,
                        functools.partial(self.compile, device=device))

    def compile(self, proto, device: str = "cpu") -> Callable[[dict], list]:
        import onnxruntime as ort

        from .. import precision

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = self.threads, 1
        options.log_severity_level = 3
        if device == "cpu":
            providers = ["CPUExecutionProvider"]
        else:  # TF32 follows the precision mode (the CUDA provider's use_tf32 option)
            providers = [("CUDAExecutionProvider", {"use_tf32": "1" if precision.tf32_allowed() else "0"})]
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=providers)
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        if session.get_providers()[0] != wanted:  # onnxruntime falls back to the CPU without a word
            raise RuntimeError(f"onnxruntime built the session on {session.get_providers()}, not {wanted}")
        return lambda feeds: session.run(None, feeds)

    def _run(self, prepared: Sessions, x, h0, c0, *, batch_first=False, lengths=None) -> LSTMOutput:
        x = np.asarray(x)
        feeds = {"x": x.astype(prepared.dtype, copy=False)}
        if lengths is not None:
            feeds["sequence_lens"] = np.asarray(lengths, np.int32)  # ONNX's type for it
        with_state = h0 is not None or c0 is not None
        if with_state:
            spec = prepared.spec
            n, B = spec.num_layers * spec.num_directions, x.shape[0 if batch_first else 1]
            for name, value in (("h0", h0), ("c0", c0)):
                feeds[name] = np.zeros((n, B, spec.hidden_size), prepared.dtype) if value is None \
                    else np.asarray(value).astype(prepared.dtype, copy=False)
        y, h_n, c_n = prepared.runner(batch_first, with_state, lengths is not None)(feeds)
        return LSTMOutput.of(y, h_n, c_n)

    def environment(self) -> dict[str, str]:
        import onnx
        import onnxruntime

        return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "onnx_opset": str(OPSET),
                "onnxruntime_threads": str(self.threads)}

    def set_threads(self, threads: int) -> dict[str, str]:
        """onnxruntime takes its threads per session: sessions built from now on get `threads`."""
        self.threads = threads
        return {"onnxruntime.intra_op_num_threads": str(threads), "onnxruntime.inter_op_num_threads": "1"}
