"""Flax: a (flax.linen module, variables) pair, or a flax.nnx module. The spec and weights come from the parameter
tree (harness.readers.flax_msgpack's spec_fields, the flax / flax-nnx backends' imports; select= is the LSTM's
'/'-path where the tree holds several).

Running: an nn.RNN / nn.Bidirectional / nn.Sequential of them (linen: applied to the variables; nnx: the module
object) runs itself, called with time_major=True and return_carry=True so it returns its carry; the cells'
gate_fn and activation_fn are read and refused by name unless they are sigmoid and tanh. Any other module is
run as `convert --check` runs a Flax file (port_check's runner): Flax's own RNN modules on the LSTM's subtree.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import backends
from ..backends import UnsupportedFeature
from ..outputs import LSTMOutput
from ..readers import Source
from ..spec import LSTMSpec
from . import Side, dtype_name, framework_lengths, loaded, renamed

LENIENT = {"hard_sigmoid": "hard_sigmoid_keras3"}  # jax.nn.hard_sigmoid is relu6(x + 3) / 6: Keras 3's


def recognise(obj) -> bool:
    linen, nnx = loaded("flax.linen"), loaded("flax.nnx")
    if isinstance(obj, tuple) and len(obj) == 2 and linen is not None:
        return isinstance(obj[0], linen.Module)
    return nnx is not None and isinstance(obj, nnx.Module)


def read(obj, select, option: str, lenient: bool) -> Side:
    from ..readers import flax_msgpack
    from ..readers import pick as pick_group

    nnx_model = not isinstance(obj, tuple)
    family = "flax-nnx" if nnx_model else "flax"
    if nnx_model:
        from flax import nnx

        tree, module = flax_msgpack.plain_tree(nnx.state(obj, nnx.Param).to_pure_dict()), obj
    else:
        module, variables = obj
        tree = flax_msgpack.plain_tree(dict(variables))
        if "params" not in tree:
            tree = {"params": tree}
    try:
        fields, _ = flax_msgpack.spec_fields(family, tree, select, "the tree")
        from ..backends import _jax
        from ..backends._names import group_by_prefix

        style = flax_msgpack.style(family)
        prefix, group = pick_group(group_by_prefix(_jax.flatten(tree, "the tree"), style.local_pattern()), select,
                                   "the tree", style.framework)
    except ValueError as exc:
        raise renamed(exc, option) from None
    spec = LSTMSpec(**fields)
    model = backends.get(family).import_(tree, spec, select)
    dtype = dtype_name(np.asarray(next(iter(group.values()))).dtype)
    layers, gate, notes = _own_layers(module, tree, prefix, nnx_model, lenient)
    if layers is None:  # another module: Flax's own RNN modules on the subtree, as convert --check runs a file
        from ..port_check import _flax

        source = Source(tree, f"{family} tree", select=prefix.rstrip("/") or None)
        how = f"{type(module).__name__} is not an RNN, Bidirectional or Sequential of them: Flax's own modules " \
              "on its LSTM's parameters"
        run = lambda x, h0, c0, lengths=None: _flax(source, spec, (x, h0, c0), dtype, family, lengths)[0]  # noqa: E731
    else:
        how = f"the user's {type(module).__name__} itself (time_major=True, return_carry=True)"
        run = functools.partial(_run_own, layers, spec.num_directions, dtype, not nnx_model)
    path = prefix.strip("/").removeprefix("params").strip("/")
    name = f" {path!r}" if path else ""
    label = f"{'flax.nnx' if nnx_model else 'flax.linen'} {type(module).__name__}{name}"
    return framework_lengths(Side(label, family, model, dtype, run, how, gate=gate, notes=notes), family)


def _own_layers(module, tree, prefix: str, nnx_model: bool, lenient: bool):
    """The module's RNN / Bidirectional layers as callables layer(seq, initial_carry=...) -> (carry, seq), with
    the gates' activation; (None, ...) when the module is something else."""
    if nnx_model:
        from flax import nnx as api

        for key in filter(None, prefix.rstrip("/").split("/")):
            module = module[int(key)] if key.isdigit() else getattr(module, key)
    else:
        import flax.linen as api

        if prefix.strip("/") not in ("", "params"):
            return None, "sigmoid", []
    stack = list(module.layers) if isinstance(module, api.Sequential) else [module]
    if not all(isinstance(m, (api.RNN, api.Bidirectional)) for m in stack):
        return None, "sigmoid", []
    gates, notes = set(), []
    for m in stack:
        rnns = [m.forward_rnn, m.backward_rnn] if isinstance(m, api.Bidirectional) else [m]
        for rnn in rnns:
            gates.add(_check_cell(rnn.cell, lenient))
        if isinstance(m, api.RNN) and m.reverse:
            if not lenient:
                raise UnsupportedFeature(f"{type(m).__name__} has reverse=True: it reads the sequence last step first, "
                                         "which the canonical one-direction LSTM does not do")
            notes.append("an RNN has reverse=True: read with its weights, run as it is")
    if len(gates) > 1:
        raise UnsupportedFeature(f"the cells use different gate functions {sorted(gates)}")
    if nnx_model:
        layers = [functools.partial(m, time_major=True, return_carry=True) for m in stack]
    else:
        params = tree["params"]
        per_layer = [params[f"layers_{k}"] for k in range(len(stack))] if isinstance(module, api.Sequential) \
            else [params]
        layers = [functools.partial(m.apply, {"params": p}, time_major=True, return_carry=True)
                  for m, p in zip(stack, per_layer)]
    return layers, gates.pop(), notes


def _check_cell(cell, lenient: bool) -> str:
    gate = getattr(cell.gate_fn, "__name__", repr(cell.gate_fn))
    act = getattr(cell.activation_fn, "__name__", repr(cell.activation_fn))
    where = f"{type(cell).__name__}"
    if act != "tanh":
        raise UnsupportedFeature(f"{where} has activation_fn={act}: the canonical LSTM uses tanh")
    if gate == "sigmoid":
        return "sigmoid"
    if lenient and gate in LENIENT:
        return LENIENT[gate]
    raise UnsupportedFeature(f"{where} has gate_fn={gate}: the canonical LSTM's gates use the logistic sigmoid")


def _run_own(layers, num_directions: int, dtype: str, jit: bool, x, h0, c0, lengths=None) -> LSTMOutput:
    """The user's layers on x, h0, c0 (and per-example lengths: Flax's seq_lengths, int32 [B])."""
    from ..backends import _jax
    from ..backends._flax import run_layers

    import jax

    with _jax.dtype_scope(dtype):
        args = _jax.put((x, h0, c0), dtype, "cpu")
        seq_lengths = None if lengths is None else jax.numpy.asarray(np.asarray(lengths), dtype=jax.numpy.int32)
        forward = lambda x, h0, c0, n: run_layers(layers, num_directions, x, h0, c0, n)  # noqa: E731
        return LSTMOutput.of(*(jax.jit(forward) if jit else forward)(*args, seq_lengths))  # nnx: not in jax.jit
