"""`tf1` and `tf1-basic`: TensorFlow 1.x's tf.nn.rnn_cell.LSTMCell and BasicLSTMCell, run eagerly in
TensorFlow 2 through tf.compat.v1.nn.dynamic_rnn (a MultiRNNCell when stacked) and
tf.compat.v1.nn.bidirectional_dynamic_rnn (one per layer when stacked, in the scopes of contrib's
stack_bidirectional_dynamic_rnn, so layer k+1 reads both directions of layer k, as the canonical model).

Where the cells come from. With Keras 3 the default (TF >= 2.16) every tf.compat.v1.nn.rnn_cell
attribute raises "not available with Keras 3". The classes behind them still ship inside the tensorflow
wheel, in tensorflow.python.keras.layers.legacy_rnn.rnn_cell_impl (TF's private copy of the TF1 cells,
running on TF's private legacy Keras, not on Keras 3). That is what this backend uses: no package beyond
tensorflow(-cpu), no TF_USE_LEGACY_KERAS, and `import keras` stays Keras 3 in the same process. The
alternative, tf-keras, requires the full `tensorflow` wheel (it pulls it in beside tensorflow-cpu), which
pyproject cannot avoid without --no-deps. A private module can move: if it does, this backend reports
"not installed" with the ImportError, and the agreement cases say so.

Native parameters: a NativeDict named exactly as in a TF1 checkpoint (H_rec = num_proj or num_units):
    <scope>/lstm_cell/kernel            [in + H_rec, 4H], applied to concat([x, m_prev]); gates i, j, f, o
    <scope>/lstm_cell/bias              [4H] (one bias; LSTMCell always has it: zeros for bias="none")
    <scope>/lstm_cell/w_i_diag, w_f_diag, w_o_diag   [H]  peepholes (use_peepholes=True)
    <scope>/lstm_cell/projection/kernel [H, P]            num_proj (= canonical W_hr.T)
with <scope>, as TF1 code names it by default:
    rnn/                                               dynamic_rnn, one layer
    rnn/multi_rnn_cell/cell_{k}/                       dynamic_rnn over a MultiRNNCell
    bidirectional_rnn/{fw,bw}/                         bidirectional_dynamic_rnn
    stack_bidirectional_rnn/cell_{k}/bidirectional_rnn/{fw,bw}/   stacked bidirectional
and basic_lstm_cell instead of lstm_cell for BasicLSTMCell. save_checkpoint() writes such a set as a
checkpoint that TF1 code restores with tf.compat.v1.train.Saver; tf.train.load_checkpoint reads one back.
Import accepts these under any leading scope (select= names one when there are several), the same
layouts with either cell name, and ignores optimizer slots (kernel/Adam, ...).

What a checkpoint does not hold: forget_bias, cell_clip and proj_clip are constructor arguments. The
spec says them: spec.forget_bias IS the cell's forget_bias (0.0 stays 0.0; TF1's default is 1.0), so
import a checkpoint with the forget_bias its code ran with; spec_from_checkpoint() requires all three.
A MultiRNNCell inside bidirectional_dynamic_rnn (one independent stack per direction) is a different
function from the canonical stacked bidirectional LSTM, and its import is refused, saying why.

Per-example lengths are dynamic_rnn's and bidirectional_dynamic_rnn's own `sequence_length` (every layer of a
stack gets it): zeros in y past each length, the state copied through, and the backward direction run on
tf.reverse_sequence of the input, so it starts at each example's last valid step.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .. import atomic
from ..canonical import CanonicalLSTM
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Backend, Capabilities, NativeDict, UnsupportedFeature
from ._concat_kernel import layer_weights, to_bias, to_kernel
from ._names import group_by_prefix, part, pick, take, to_numpy

LEGACY_CELLS = "tensorflow.python.keras.layers.legacy_rnn.rnn_cell_impl"
GATE_ORDER = "igfo"  # TF1's i, j, f, o: j is the canonical g

_DIRS = ("fw", "bw")
_VARS = r"kernel|bias|w_i_diag|w_f_diag|w_o_diag|projection/kernel"
# One cell's variables, below the LSTM's own scope: the structure part says the layout and the unit.
_LOCAL = (
    r"(?:(?P<stack>cell_(?P<sk>\d+)/bidirectional_rnn/(?P<sd>fw|bw))/"
    r"|(?P<bimulti>(?P<bd>fw|bw)/multi_rnn_cell/cell_(?P<bk>\d+))/"
    r"|(?P<multi>multi_rnn_cell/cell_(?P<mk>\d+))/"
    r"|(?P<bi>fw|bw)/)?"
    rf"(?P<cell>(?:basic_)?lstm_cell)/(?P<var>{_VARS})"
)
_LOCAL_RX = re.compile(_LOCAL)
_LAYOUTS = {
    "single": "dynamic_rnn over one cell",
    "multi": "dynamic_rnn over a MultiRNNCell",
    "bi": "bidirectional_dynamic_rnn",
    "stack": "stacked bidirectional_dynamic_rnn (stack_bidirectional_dynamic_rnn)",
}


def scope(spec: LSTMSpec, layer: int, direction: int, cell: str = "lstm_cell") -> str:
    """The variable scope TF1 code gives the cell of one (layer, direction), ending in '/'."""
    if not spec.bidirectional:
        return f"rnn/{cell}/" if spec.num_layers == 1 else f"rnn/multi_rnn_cell/cell_{layer}/{cell}/"
    if spec.num_layers == 1:
        return f"bidirectional_rnn/{_DIRS[direction]}/{cell}/"
    return f"stack_bidirectional_rnn/cell_{layer}/bidirectional_rnn/{_DIRS[direction]}/{cell}/"


def cell_arguments(spec: LSTMSpec, basic: bool = False) -> dict:
    """The TF1 cell's constructor arguments for `spec`; forget_bias always explicit (TF1's default is 1.0)."""
    args = {"num_units": spec.hidden_size, "forget_bias": spec.forget_bias}
    if not basic:
        args.update(use_peepholes=spec.peephole, cell_clip=spec.cell_clip, num_proj=spec.proj_size or None,
                    proj_clip=spec.proj_clip)
    return args


def _variable_shapes(spec: LSTMSpec, layer: int) -> dict[str, tuple[int, ...]]:
    H, P = spec.hidden_size, spec.proj_size
    shapes = {"kernel": (spec.layer_input_size(layer) + spec.output_size, 4 * H), "bias": (4 * H,)}
    if spec.peephole:
        shapes.update(w_i_diag=(H,), w_f_diag=(H,), w_o_diag=(H,))
    if P:
        shapes["projection/kernel"] = (H, P)
    return shapes


# What each variable holds, canonically (messages name the variable, with this beside it).
_HOLDS = {"kernel": "[W_ih, W_hh] transposed, gates i j f o", "bias": "b_ih + b_hh, gates i j f o",
          "w_i_diag": "w_i", "w_f_diag": "w_f", "w_o_diag": "w_o", "projection/kernel": "W_hr transposed"}


def _parse(native, select: str | None):
    """Find one TF1 LSTM among checkpoint variables: (layout, prefix, {(layer, direction): {var: value}})."""
    if not isinstance(native, Mapping):
        raise TypeError(f"tf1 import: expected a mapping of checkpoint variable names to arrays, got {type(native).__name__}")
    items = {str(k).removesuffix(":0"): v for k, v in native.items()}  # tf.Variable.name ends in ':0'
    outer = ""
    if select is not None:
        outer = select.strip("/") + "/"
        items = {k[len(outer):]: v for k, v in items.items() if k.startswith(outer)}
        if not items:
            raise ValueError(f"tf1 import: select={select!r}: no variable name starts with {outer!r}")
    groups = group_by_prefix(items, _LOCAL)
    group = pick(groups, None, "TF1 LSTMCell/BasicLSTMCell")
    prefix = outer + next(p for p, g in groups.items() if g is group)
    layouts: dict[str, set] = {}
    units: dict[tuple[int, int], dict] = {}
    for local, value in group.items():
        m = _LOCAL_RX.fullmatch(local)
        if m["bimulti"]:
            layout, unit = "bimulti", (int(m["bk"]), _DIRS.index(m["bd"]))
        elif m["stack"]:
            layout, unit = "stack", (int(m["sk"]), _DIRS.index(m["sd"]))
        elif m["multi"]:
            layout, unit = "multi", (int(m["mk"]), 0)
        elif m["bi"]:
            layout, unit = "bi", (0, _DIRS.index(m["bi"]))
        else:
            layout, unit = "single", (0, 0)
        layouts.setdefault(layout, set()).add(prefix + local)
        cell_vars = units.setdefault(unit, {})
        if m["var"] in cell_vars:
            raise ValueError(f"tf1 import: two cells hold {m['var']!r} for the same layer and direction under "
                             f"{prefix!r} (lstm_cell and basic_lstm_cell?); select= one LSTM")
        cell_vars[m["var"]] = (prefix + local, value)
    if "bimulti" in layouts:
        raise UnsupportedFeature(
            f"tf1 import: {sorted(layouts['bimulti'])[0]!r} is a MultiRNNCell inside bidirectional_dynamic_rnn: "
            "two independent stacks, one per direction, where layer k+1 of each direction reads only its own "
            "direction's outputs. The canonical stacked bidirectional LSTM (like stack_bidirectional_dynamic_rnn, "
            "torch.nn.LSTM and Keras) feeds both directions' outputs, concatenated, to every next layer: a different "
            "function, so it cannot be converted. The forward stack alone is a unidirectional LSTM "
            f"(select='{prefix}fw'); the backward stack is one run on the time-reversed input."
        )
    if len(layouts) > 1:
        raise ValueError(f"tf1 import: variables under {prefix!r} mix layouts "
                         f"{ {k: sorted(v)[0] for k, v in layouts.items()} }; select= one LSTM")
    return next(iter(layouts)), prefix, units


def _check_layout(layout: str, prefix: str, units: dict, spec: LSTMSpec) -> None:
    bidirectional = layout in ("bi", "stack")
    if bidirectional != spec.bidirectional:
        raise ValueError(f"tf1 import: the variables under {prefix!r} are a {_LAYOUTS[layout]}, "
                         f"but spec.bidirectional={spec.bidirectional}")
    if set(units) != set(spec.units()):
        found = sorted({k for k, _ in units})
        raise ValueError(f"tf1 import: the variables under {prefix!r} hold layers {found} "
                         f"({_LAYOUTS[layout]}), but spec.num_layers={spec.num_layers}")


def spec_from_checkpoint(variables, *, forget_bias: float, cell_clip: float | None, proj_clip: float | None,
                         select: str | None = None) -> LSTMSpec:
    """The LSTMSpec of the TF1 LSTM among `variables` (e.g. every tensor of tf.train.load_checkpoint).

    Sizes, layers, direction, peepholes and projection come from the variables. forget_bias, cell_clip
    and proj_clip are constructor arguments a checkpoint does not hold, so they have no default here:
    say what the TF1 code used (its defaults were forget_bias=1.0, cell_clip=None, proj_clip=None).
    """
    layout, prefix, units = _parse(variables, select)
    first = {var: to_numpy(name, value) for var, (name, value) in units[(0, 0)].items()}
    for var in ("kernel", "bias"):
        if var not in first:
            raise ValueError(f"tf1 import: no {var!r} under {prefix!r} for layer 0")
    H = first["bias"].shape[0] // 4
    P = first["projection/kernel"].shape[1] if "projection/kernel" in first else 0
    return LSTMSpec(
        input_size=first["kernel"].shape[0] - (P or H), hidden_size=H, num_layers=1 + max(k for k, _ in units),
        bidirectional=layout in ("bi", "stack"), proj_size=P, peephole="w_f_diag" in first, bias="single",
        forget_bias=forget_bias, cell_clip=cell_clip, proj_clip=proj_clip,
    )


def save_checkpoint(native: Mapping, prefix: str | Path) -> str:
    """Write name -> array as a TensorFlow checkpoint (prefix.index, prefix.data-00000-of-00001).

    TF1 code restores it with tf.compat.v1.train.Saver().restore(sess, prefix) into variables of the same
    names; tf.train.load_checkpoint(prefix) reads it. The arrays are written in their own dtype.
    """
    import tensorflow as tf

    if not isinstance(native, Mapping) or not native:
        raise ValueError(f"save_checkpoint: expected a non-empty mapping of names to arrays, got {type(native).__name__}")
    names = sorted(native)
    prefix = Path(prefix)
    # Both files appear together or not at all; the index goes last (a reader that finds it finds the data).
    with atomic.staging([f"{prefix}.data-00000-of-00001", f"{prefix}.index"]) as folder:
        tf.raw_ops.SaveV2(prefix=str(folder / prefix.name), tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=[tf.convert_to_tensor(to_numpy(n, native[n])) for n in names])
    return str(prefix)


@contextlib.contextmanager
def _quiet():
    """The TF1 API is deprecated, and says so on every cell and call: keep that out of the results."""
    import tensorflow as tf
    from tensorflow.python.util import deprecation

    logger = tf.get_logger()  # MultiRNNCell logs its deprecation instead of warning
    level = logger.level
    logger.setLevel("ERROR")
    try:
        with warnings.catch_warnings(), deprecation.silence():
            warnings.filterwarnings("ignore", message=r".*(is deprecated|add_variable)", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)


class TF1Backend(Backend):
    name = "tf1"
    framework = LEGACY_CELLS
    description = "tf.nn.rnn_cell.LSTMCell (TF1, via dynamic_rnn)"
    capabilities = Capabilities(forget_bias=True, projection=True, peephole=True, cell_clip=True, proj_clip=True,
                                lengths="zeros")
    cell_class = "LSTMCell"
    cell_scope = "lstm_cell"

    # Conversion -----------------------------------------------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeDict:
        spec = model.spec
        out = NativeDict()
        for (k, d), lw in model.weights.items():
            s = scope(spec, k, d, self.cell_scope)
            out[s + "kernel"] = to_kernel(lw.W_ih, lw.W_hh, GATE_ORDER).astype(dtype)
            out[s + "bias"] = to_bias(lw.b_ih + lw.b_hh, GATE_ORDER).astype(dtype)  # b_hh is zero once adapted
            if spec.peephole:
                out[s + "w_i_diag"], out[s + "w_f_diag"], out[s + "w_o_diag"] = (
                    w.astype(dtype) for w in (lw.w_i, lw.w_f, lw.w_o))
            if spec.proj_size:
                out[s + "projection/kernel"] = lw.W_hr.T.astype(dtype)
        return out

    def import_(self, native, spec: LSTMSpec, select: str | None = None) -> CanonicalLSTM:
        """Read checkpoint variables (arrays or tf.Variables) of one TF1 LSTM, under any leading scope.

        `spec` describes the LSTM the TF1 code ran, including its forget_bias, cell_clip and proj_clip
        (see spec_from_checkpoint). `select` is a leading scope that leaves one LSTM (e.g. 'encoder').
        """
        self.check_spec(spec)
        if spec.bias == "double":
            raise ValueError("tf1 import: a TF1 cell has one bias; describe it with bias='single' "
                             "(or bias='none' if it is all zero)")
        layout, prefix, units = _parse(native, select)
        _check_layout(layout, prefix, units, spec)
        weights = {}
        for k, d in spec.units():
            shapes = _variable_shapes(spec, k)
            found = units[(k, d)]
            missing = sorted(set(shapes) - set(found))
            extra = sorted(name for var, (name, _) in found.items() if var not in shapes)
            if missing:
                raise ValueError(f"tf1 import: layer {k} {_DIRS[d]}: no {missing} under {prefix!r}, "
                                 f"needed by spec {spec.features()}")
            if extra:
                raise ValueError(f"tf1 import: {extra} are not part of spec {spec.features()} "
                                 "(peephole=False or proj_size=0 while the checkpoint has them?)")
            arrays = {}
            for var, shape in shapes.items():
                name, value = found[var]
                hint = "; a Keras LSTM's kernel is [in, 4H] beside a recurrent_kernel: use the keras backend"
                arrays[var] = take(name, value, shape, part(k, d, _HOLDS[var]),
                                   why=f"spec {spec.features()}{hint if var == 'kernel' else ''}")
            peepholes = (arrays["w_i_diag"], arrays["w_f_diag"], arrays["w_o_diag"]) if spec.peephole else None
            lw = layer_weights(arrays["kernel"], arrays["bias"], spec, k, GATE_ORDER,
                               f"tf1 import: {found['bias'][0]}", peepholes)
            if spec.proj_size:
                lw.W_hr = arrays["projection/kernel"].T
            weights[(k, d)] = lw
        return CanonicalLSTM(spec, weights)

    # Running --------------------------------------------------------------------------------
    def _cell(self, rc, spec: LSTMSpec, dtype):
        return getattr(rc, self.cell_class)(**cell_arguments(spec, basic=self.cell_class != "LSTMCell"), dtype=dtype)

    def _prepare(self, model: CanonicalLSTM, dtype="float32", device="cpu"):
        import importlib

        import tensorflow as tf

        rc = importlib.import_module(LEGACY_CELLS)
        spec = model.spec
        native = self.export(model, dtype=dtype)
        tdtype = tf.as_dtype(str(np.dtype(dtype)))
        with _quiet():
            cells = {u: self._cell(rc, spec, tdtype) for u in spec.units()}
            multi = None
            if not spec.bidirectional and spec.num_layers > 1:
                multi = rc.MultiRNNCell([cells[(k, 0)] for k in range(spec.num_layers)])
        prepared = {"spec": spec, "dtype": str(np.dtype(dtype)), "cells": cells, "multi": multi, "rc": rc}
        # One step builds the variables, named by TF1's own scoping; the export must have used the same names.
        self._run(prepared, np.zeros((1, 1, spec.input_size)), None, None)
        variables = {v.name.removesuffix(":0"): v for cell in cells.values() for v in cell.variables}
        if set(variables) != set(native):
            raise RuntimeError(f"tf1: TF1 named the variables {sorted(variables)}, the export {sorted(native)}")
        for name, var in variables.items():
            var.assign(native[name])
        return prepared

    def _run(self, prepared, x, h0, c0, *, batch_first=False, lengths=None) -> LSTMOutput:
        import tensorflow as tf

        spec, dtype, cells, rc = prepared["spec"], prepared["dtype"], prepared["cells"], prepared["rc"]
        D, L = spec.num_directions, spec.num_layers
        nn = tf.compat.v1.nn

        def state(k, d):  # LSTMStateTuple(c, m): c first
            if h0 is None:
                return None
            return rc.LSTMStateTuple(tf.constant(np.asarray(c0[k * D + d], dtype)),
                                     tf.constant(np.asarray(h0[k * D + d], dtype)))

        common = dict(dtype=tf.as_dtype(dtype), time_major=not batch_first,  # TF1's own time-major path
                      sequence_length=None if lengths is None else tf.constant(lengths, tf.int64))
        with _quiet(), tf.device("/CPU:0"):
            seq = tf.constant(np.asarray(x, dtype))
            if not spec.bidirectional:
                cell = prepared["multi"] or cells[(0, 0)]
                init = state(0, 0) if L == 1 else (None if h0 is None else tuple(state(k, 0) for k in range(L)))
                y, final = nn.dynamic_rnn(cell, seq, initial_state=init, scope="rnn", **common)
                finals = [final] if L == 1 else list(final)
            else:
                def layer(inputs, k):
                    (y_fw, y_bw), (s_fw, s_bw) = nn.bidirectional_dynamic_rnn(
                        cells[(k, 0)], cells[(k, 1)], inputs, initial_state_fw=state(k, 0),
                        initial_state_bw=state(k, 1), scope="bidirectional_rnn", **common)
                    return tf.concat([y_fw, y_bw], axis=-1), [s_fw, s_bw]  # y_bw is in the original time order

                if L == 1:
                    y, finals = layer(seq, 0)
                else:
                    finals, y = [], seq
                    with tf.compat.v1.variable_scope("stack_bidirectional_rnn"):
                        for k in range(L):
                            with tf.compat.v1.variable_scope(f"cell_{k}"):
                                y, final = layer(y, k)
                            finals += final
        return LSTMOutput(y.numpy(), np.stack([s.h.numpy() for s in finals]), np.stack([s.c.numpy() for s in finals]))

    def environment(self) -> dict[str, str]:
        import tensorflow as tf

        return {"tensorflow": tf.__version__, "tf1_cells": f"{LEGACY_CELLS}.{self.cell_class}"}


class TF1BasicBackend(TF1Backend):
    name = "tf1-basic"
    description = "tf.nn.rnn_cell.BasicLSTMCell (TF1, via dynamic_rnn)"
    capabilities = Capabilities(forget_bias=True, lengths="zeros")
    cell_class = "BasicLSTMCell"
    cell_scope = "basic_lstm_cell"
