"""One LSTM to compare, from what a user holds: a live framework object (or a file), read into the canonical
model through the backend imports, and a way to run it in its own framework. assert_equivalent and diagnose
take two of them.

    what the user passes                          module      runs as
    torch.nn.LSTM, or a torch.nn.Module holding    torch       the user's nn.LSTM itself (eval mode for the call)
    one (select=: its module name)
    a Keras LSTM / Bidirectional layer, or a       keras       the user's layers, where they return sequences and
    model holding them (also load_model's)                     states; else the layer rebuilt by Keras from its
                                                               config with both on, its weights copied
    (flax.linen module, variables)                 flax        the user's nn.RNN / nn.Bidirectional / nn.Sequential
                                                               applied to the variables; another module: Flax's
                                                               RNN modules on the LSTM's subtree (select=)
    a flax.nnx module                              flax        the user's nnx.RNN / Bidirectional / Sequential
    a list of equinox.nn.LSTMCell (layer * D +     equinox     the user's cells, scanned and vmapped
    direction; or (cells, LSTMSpec))
    an onnx.ModelProto, or a path to a .onnx       onnx        onnxruntime on the user's graph, from the first
                                                               LSTM node on
    a TF1 cell with its variables                  tf1         the user's built cell(s) through dynamic_rnn; with
                                                               checkpoint variables, TF1 cells of the same
                                                               arguments holding them
    a CanonicalLSTM                                canonical   the float64 oracle
    a plain Python function fn(x, h0, c0) ->       function    the function (it holds no weights: it is compared,
    (y, h_n, c_n), in the caller's layout                      never the source of the oracle's weights)

TF1's form: a built cell (LSTMCell, BasicLSTMCell or a MultiRNNCell of them, after dynamic_rnn built its
variables; or a (fw, bw) pair after bidirectional_dynamic_rnn), or `(cell, variables)` where variables maps
checkpoint names to arrays (tf.train.load_checkpoint's tensors): the cell gives what a checkpoint does not hold
(forget_bias, cell_clip, proj_clip), the variables the weights and layout.

Each object is recognised by its type, and only through a framework that is already imported (a torch module
cannot exist unless torch is): recognising imports nothing. What a reader cannot express in the canonical
model is refused by name (UnsupportedFeature), as the file readers refuse it.

Per-example lengths (right padding): each side runs them its framework's own way, as its backend does (torch
packs the batch, Keras masks it, Flax and nnx pass seq_lengths, ONNX feeds sequence_lens, TF1 dynamic_rnn's
sequence_length, equinox masks the backend's scan, a function is called fn(x, h0, c0, lengths)), and `padding`
says what its y holds at padded steps: "zeros", "carry" (the last valid output) or "undefined" (not compared).
A side that cannot run them says why in `no_lengths`.
"""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..canonical import CanonicalLSTM
from ..outputs import LSTMOutput
from ..spec import LSTMSpec

Run = Callable[..., LSTMOutput]  # run(x, h0, c0, lengths=None)


@dataclass
class Side:
    """One LSTM as read: its weights (None for a function), its spec, and `run`, which runs it in its own
    framework on time-major float64 x [T, B, in], h0, c0 (holding values of `dtype`), and per-example lengths
    (int64 [B], or None), and returns time-major outputs."""

    label: str  # what it is, for messages: "torch.nn.LSTM 'encoder.lstm'"
    framework: str  # "torch", "keras", "flax", "flax-nnx", "equinox", "onnx", "tf1", "numpy", "function"
    model: CanonicalLSTM | None
    dtype: str | None  # what it computes in (None: a function, known once it has run)
    run: Run = field(repr=False)
    how: str = ""  # how it runs: its own object, or a twin built by its framework, and why
    gate: str = "sigmoid"  # its gates' activation (harness.mistakes.GATE_FUNCTIONS; diagnose reads others)
    notes: list[str] = field(default_factory=list)
    padding: str = "zeros"  # y at padded steps when run with lengths: "zeros", "carry" or "undefined"
    no_lengths: str = ""  # why it cannot run per-example lengths ("": it can)

    @property
    def spec(self) -> LSTMSpec | None:
        return None if self.model is None else self.model.spec


def loaded(module: str):
    """The module if something already imported it, else None: recognising an object never imports a framework."""
    return sys.modules.get(module)


def choose(found: dict[str, Any], select, option: str, what: str) -> tuple[str, Any]:
    """The one of `found` (name -> object) that `select` names, or the only one; errors name the option."""
    if not found:
        raise ValueError(f"holds no {what}")
    if select is None:
        if len(found) > 1:
            raise ValueError(f"holds {len(found)} {what}s, {sorted(found)}: name one with {option}=")
        return next(iter(found.items()))
    key = select.strip("./") if isinstance(select, str) else select
    for name, obj in found.items():
        if key in (name, name.strip("./")):
            return name, obj
    raise ValueError(f"{option}={select!r} names none of its {what}s, {sorted(found)}")


def renamed(exc: Exception, option: str) -> Exception:
    """A reader's error (written for convert's --select) with the option said as this call's parameter."""
    return type(exc)(str(exc).replace("--select ", f"{option}=").replace("--select", option))


def kind_of(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


FORMS = ("a torch.nn.LSTM (or a module holding one), a Keras LSTM or Bidirectional layer (or a model holding "
         "one), a (flax.linen module, variables) pair, a flax.nnx module, a list of equinox.nn.LSTMCell, an "
         "onnx.ModelProto or a path to a .onnx file, a TF1 cell with its variables, a CanonicalLSTM, or a "
         "function fn(x, h0, c0) -> (y, h_n, c_n)")


def read(obj: Any, select=None, *, name: str = "a", lenient: bool = False) -> Side:
    """The Side for `obj`. select: which LSTM where it holds several (named `select_<name>` in errors).
    lenient (diagnose): what the catalogue of mistakes names (Keras's hard_sigmoid gates, go_backwards) is read
    with the weights instead of refused, so that the search can name it."""
    from . import canonical, equinox, flax, keras, onnx, tf1, torch

    option = f"select_{name}"
    if isinstance(obj, Side):  # already read (python -m harness diagnose reads files into sides)
        return obj
    if inspect.isfunction(obj) or isinstance(obj, functools.partial):
        if select is not None:
            raise ValueError(f"{option}: a function holds one LSTM; got {option}={select!r}")
        return function_side(obj, name)
    for reader in (canonical, torch, keras, flax, equinox, onnx, tf1):
        if reader.recognise(obj):
            try:
                return reader.read(obj, select, option, lenient)
            except (ValueError, TypeError) as exc:
                if type(exc) in (ValueError, TypeError):  # add which side; keep UnsupportedFeature's type
                    raise type(exc)(f"{name} ({kind_of(obj)}): {exc}") from exc
                raise
    raise TypeError(f"{name}: expected {FORMS}; got {kind_of(obj)}")


def function_side(fn: Callable, name: str) -> Side:
    """A user's forward function, fn(x, h0, c0) -> (y, h_n, c_n) or (y, (h_n, c_n)), called in the caller's
    layout (batch_first is applied around it by the caller of `run`); with per-example lengths it is called
    fn(x, h0, c0, lengths), and its y at padded steps is not compared (its convention is its own)."""

    def run(x, h0, c0, lengths=None):
        out = fn(x, h0, c0) if lengths is None else fn(x, h0, c0, lengths)
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], tuple):  # torch's (y, (h, c))
            out = (out[0], *out[1])
        if not isinstance(out, tuple) or len(out) != 3:
            raise TypeError(f"{name}: the function must return (y, h_n, c_n), got {type(out).__name__}")
        return LSTMOutput.of(*(np.asarray(a) for a in out))

    label = getattr(fn, "__qualname__", None) or getattr(getattr(fn, "func", None), "__qualname__", "function")
    return Side(f"function {label}", "function", None, None, run, "the function itself", padding="undefined")


def same_shape(a: Side, b: Side) -> None:
    """Two LSTMs compared must agree in every size; bias kinds and forget_bias may differ (that is porting)."""
    if a.spec is None or b.spec is None:
        return
    sizes = ("input_size", "hidden_size", "num_layers", "bidirectional", "proj_size", "peephole")
    diff = [f"{f}: a {getattr(a.spec, f)!r}, b {getattr(b.spec, f)!r}" for f in sizes
            if getattr(a.spec, f) != getattr(b.spec, f)]
    if diff:
        raise ValueError(f"a and b are not the same shape of LSTM ({'; '.join(diff)}): a ({a.label}), "
                         f"b ({b.label})")


_PRECISION = ("bfloat16", "float16", "float32", "float64")  # coarsest first


def coarsest(*dtypes: str | None) -> str:
    """The pair's dtype: the coarsest either side computes in (float64 only when both do)."""
    known = [d for d in dtypes if d is not None] or ["float64"]
    return min(known, key=lambda d: _PRECISION.index(d) if d in _PRECISION else 2)


def dtype_name(dtype: Any) -> str:
    """A framework dtype (torch.float32, 'float32', np.float32, a Keras policy name) as a numpy name."""
    text = str(getattr(dtype, "name", dtype)).removeprefix("torch.")
    return text if text in _PRECISION else str(np.dtype(text))


def framework_lengths(side: Side, backend: str) -> Side:
    """`side`, run with per-example lengths as `backend` runs them (the same framework, the same way): that
    backend's padding convention for the side's spec, or why it cannot run them (its supports(), for the
    side's spec and dtype, on the CPU)."""
    from .. import backends

    b = backends.get(backend)
    side.no_lengths = b.supports(side.model.spec, side.dtype or "float32", "cpu", lengths=True) or ""
    if not side.no_lengths:
        side.padding = b.padding(side.model.spec)
    return side
