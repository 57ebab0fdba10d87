"""`keras`: Keras 3 keras.layers.LSTM (+ keras.layers.Bidirectional, stacked layers), on the backend
KERAS_BACKEND selects (TensorFlow by default); the backend in force goes with every result.

Native parameters: a NativeList with one get_weights() list per stacked layer:
  LSTM:          [kernel [in, 4H], recurrent_kernel [H, 4H], bias [4H]]   (bias absent if use_bias=False)
  Bidirectional: [fw kernel, fw recurrent_kernel, fw bias, bw kernel, bw recurrent_kernel, bw bias]
Keras's gate order i, f, c, o is the canonical i, f, g, o; its matrices are the transposes of
the canonical ones; its one bias is b_ih + b_hh. It has no projection, peepholes or clips.
Keras takes batch-major input only: time-major input is transposed around the call.

Devices: everything runs under keras.device("cpu:0" or "gpu:0"), so "cpu" means the CPU even on a
machine with a GPU. On "cpu" the layers get use_cudnn=False; on "cuda" use_cudnn="auto", and Keras
takes its cuDNN path only when its conditions hold (tanh/sigmoid, a bias, no mask, GPU visible to
its backend), falling back to its generic loop silently otherwise: watch_kernel records which ran.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .. import devices, kernels, precision
from ..canonical import CanonicalLSTM, LayerWeights
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Backend, Capabilities, NativeList, TimedForward
from ._names import part, take

_SCOPES = {"cpu": "cpu:0", "cuda": "gpu:0"}  # keras.device names
_HALF = ("float16", "bfloat16")
_FUSED = ("lstm", "bidirectional_lstm")  # keras.src.backend functions that hold the cuDNN paths


class KerasBackend(Backend):
    name = "keras"
    framework = "keras"
    description = "keras.layers.LSTM"
    capabilities = Capabilities(devices=("cpu", "cuda"), dtypes=("float32", "float64", "float16", "bfloat16"))

    def keras_backend(self) -> str:
        import keras

        return keras.backend.backend()

    def runtime(self) -> str:
        return self.keras_backend()

    def supports(self, spec, dtype="float32", device="cpu"):
        reason = super().supports(spec, dtype, device)
        if reason is None and precision.dtype_name(dtype) == "float64" and self.keras_backend() == "jax":
            # Measured (keras 3.15.1, jax 0.10.2, case plain): without jax x64 the float64 layer returns
            # float32 (max err 7.8e-8); with x64 it returns float64 but still errs by 3.4e-8, because
            # keras.ops.tanh computes in float32. Either way it is not a float64 LSTM. (TF and torch
            # backends: measured 5.6e-16 and 8.9e-16.)
            return ("Keras 3 on the JAX backend computes a float64 LSTM partly in float32 "
                    "(measured 3.4e-8 error with x64, float32 output without)")
        return reason

    # Conversion -----------------------------------------------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeList:
        spec = model.spec
        out = NativeList()
        for k in range(spec.num_layers):
            layer = []
            for d in range(spec.num_directions):
                lw = model.weights[(k, d)]
                layer += [lw.W_ih.T.astype(dtype), lw.W_hh.T.astype(dtype)]
                if spec.bias != "none":
                    layer.append((lw.b_ih + lw.b_hh).astype(dtype))
            out.append(layer)
        return out

    def import_(self, native, spec: LSTMSpec, select=None) -> CanonicalLSTM:
        """Read one get_weights() list per stacked layer (numpy arrays or Keras variables), or a mapping
        of Keras variable paths to arrays, e.g. {v.path: v.numpy() for v in model.weights}.

        With a mapping, each LSTM or Bidirectional layer is found under its scope
        ('sequential/lstm/lstm_cell/kernel', 'sequential/bidirectional/forward_lstm_1/lstm_cell/bias'):
        the spec's num_layers of them are taken in order; `select` names them when the mapping holds
        more (a list of layer scopes such as ['sequential/lstm', 'sequential/lstm_2']).
        """
        self.check_spec(spec)
        keys = None  # the user's key of every array, for messages: the variable path, or layer{k}.{i} in a list
        if isinstance(native, Mapping):
            native, keys = self._lists_from_paths(native, spec, select)
        elif select is not None:
            raise ValueError("keras import: select= picks layers from a mapping of variable paths; "
                             "with a list of per-layer weights, pass just the lists you want")
        if spec.forget_bias:
            raise ValueError("keras import: Keras has no run-time forget_bias; describe the Keras LSTM with forget_bias=0")
        if spec.bias == "double":
            raise ValueError("keras import: a Keras LSTM has one bias; describe it with bias='single' (or 'none')")
        if not isinstance(native, (list, tuple)) or len(native) != spec.num_layers:
            got = f"{len(native)} entries" if isinstance(native, (list, tuple)) else type(native).__name__
            raise ValueError(f"keras import: expected a list of {spec.num_layers} per-layer get_weights() lists, got {got}")
        per_dir = 3 if spec.bias != "none" else 2
        H = spec.hidden_size
        weights = {}
        for k, layer in enumerate(native):
            want = per_dir * spec.num_directions
            if len(layer) != want:
                raise ValueError(
                    f"keras import: layer {k}: expected {want} arrays "
                    f"({'[kernel, recurrent_kernel, bias]' if per_dir == 3 else '[kernel, recurrent_kernel]'}"
                    f"{' per direction' if spec.bidirectional else ''}), got {len(layer)}"
                )
            for d in range(spec.num_directions):
                wanted = [((spec.layer_input_size(k), 4 * H), "W_ih transposed (kernel)"),
                          ((H, 4 * H), "W_hh transposed (recurrent_kernel)"), ((4 * H,), "b_ih + b_hh (bias)")]
                arrs = []
                for i, (shape, holds) in enumerate(wanted[:per_dir]):
                    j = d * per_dir + i
                    arrs.append(take(keys[k][j] if keys else f"layer{k}.{j}", layer[j], shape, part(k, d, holds)))
                kernel, rec = arrs[0], arrs[1]
                bias = arrs[2] if per_dir == 3 else np.zeros(4 * H)
                weights[(k, d)] = LayerWeights(W_ih=kernel.T, W_hh=rec.T, b_ih=bias, b_hh=np.zeros(4 * H))
        return CanonicalLSTM(spec, weights)

    @staticmethod
    def _lists_from_paths(native: Mapping, spec: LSTMSpec, select) -> tuple[list[list], list[list[str]]]:
        """The per-layer get_weights() lists of the LSTM layers in `native`, and the variable path of each array."""
        layers = layers_from_paths(native)
        if not layers:
            raise ValueError("keras import: no '<layer>/lstm_cell/kernel' variables found in the mapping")
        if select is not None:
            names = [n.rstrip("/") for n in ([select] if isinstance(select, str) else list(select))]
            missing = [n for n in names if n not in layers]
            if missing:
                raise ValueError(f"keras import: select={missing} matches none of the LSTM layers {list(layers)}")
        else:
            names = list(layers)
        if len(names) != spec.num_layers:
            raise ValueError(f"keras import: the mapping holds LSTM layers {names}, but spec.num_layers="
                             f"{spec.num_layers}; pass select=[...] with {spec.num_layers} layer scope(s)")
        out, keys = [], []
        for name in names:
            layer = layers[name]
            if layer.bidirectional != spec.bidirectional:
                kind = "a Bidirectional" if spec.bidirectional else "an LSTM"
                raise ValueError(f"keras import: layer {name!r} is not {kind} layer (found {sorted(layer.found)})")
            out.append(layer.weights)
            keys.append(layer.paths)
        return out, keys

    # Running --------------------------------------------------------------------------------
    def _prepare(self, model: CanonicalLSTM, dtype="float32", device="cpu"):
        import keras

        spec = model.spec
        dtype = precision.dtype_name(dtype)
        # Half-precision weights travel as float32 (exact: they are rounded to the dtype already) and
        # are cast by the variables; zero initializers: the weights are overwritten, and the default
        # orthogonal one needs a QR that TensorFlow has no bfloat16 kernel for.
        native = self.export(model, dtype="float32" if dtype in _HALF else dtype)
        layers = []
        with keras.device(_SCOPES[device]):
            for k in range(spec.num_layers):
                cell = dict(units=spec.hidden_size, return_sequences=True, return_state=True,
                            use_bias=spec.bias != "none", unit_forget_bias=False, dtype=dtype,
                            kernel_initializer="zeros", recurrent_initializer="zeros",
                            use_cudnn=False if device == "cpu" else "auto")
                if spec.bidirectional:
                    layer = keras.layers.Bidirectional(keras.layers.LSTM(**cell), merge_mode="concat", dtype=dtype)
                else:
                    layer = keras.layers.LSTM(**cell)
                layer.build((None, None, spec.layer_input_size(k)))
                layer.set_weights(native[k])
                layers.append(layer)
        return {"layers": layers, "spec": spec, "dtype": dtype, "device": device}

    def _run(self, prepared, x, h0, c0, *, batch_first=False) -> LSTMOutput:
        forward = self._forward_callable(prepared, x, h0, c0, batch_first=batch_first)
        return forward.fetch(forward.call())

    def _forward_callable(self, prepared, x, h0, c0, *, batch_first=False) -> TimedForward:
        import keras

        spec, dtype, device = prepared["spec"], prepared["dtype"], prepared["device"]
        D, scope, runtime = spec.num_directions, _SCOPES[device], self.runtime()
        host = "float32" if dtype in _HALF else dtype  # exact: the inputs are rounded to dtype already
        tensor = lambda a: keras.ops.convert_to_tensor(np.asarray(a, dtype=host), dtype=dtype)  # noqa: E731
        with keras.device(scope):
            xa = np.asarray(x)
            seq0 = tensor(xa if batch_first else xa.transpose(1, 0, 2))  # Keras is batch-major only
            inits = [None if h0 is None else [tensor(s[k * D + d]) for d in range(D) for s in (h0, c0)]
                     for k in range(spec.num_layers)]

        def call():
            seq, hs, cs = seq0, [], []
            with keras.device(scope):
                for layer, init in zip(prepared["layers"], inits):
                    outs = layer(seq, initial_state=init)
                    seq = outs[0]
                    for d in range(D):  # LSTM -> [y, h, c]; Bidirectional -> [y, fh, fc, bh, bc]
                        hs.append(outs[1 + 2 * d])
                        cs.append(outs[2 + 2 * d])
            devices.synchronize(runtime, device, (seq, hs, cs))
            return seq, hs, cs

        def fetch(out):
            seq, hs, cs = out
            y = keras.ops.convert_to_numpy(seq)
            if not batch_first:
                y = y.transpose(1, 0, 2)
            h_n = np.stack([keras.ops.convert_to_numpy(h) for h in hs])
            c_n = np.stack([keras.ops.convert_to_numpy(c) for c in cs])
            return LSTMOutput(np.ascontiguousarray(y), h_n, c_n)

        return TimedForward(call, fetch, f"Keras layers on {runtime} ({scope}) on device-resident tensors, "
                                         f"then {'a device sync' if device != 'cpu' or runtime == 'jax' else 'no sync needed'}")

    @contextlib.contextmanager
    def _watch_kernel(self, prepared):
        """Which path Keras took: its backend's fused (cuDNN-capable) lstm, or its generic loop.

        Keras tries keras.src.backend.lstm / bidirectional_lstm and falls back on NotImplementedError;
        wrapping them for the block records whether they ran or declined. On the torch backend that
        function itself falls back without a word, so the torch profiler decides there.
        """
        import keras.src.backend as kb

        calls: list[tuple[str, str]] = []
        originals = {name: getattr(kb, name) for name in _FUSED if hasattr(kb, name)}

        def wrap(name, fn):
            def wrapper(*args, **kwargs):
                try:
                    out = fn(*args, **kwargs)
                except NotImplementedError:
                    calls.append((name, "declined"))
                    raise
                calls.append((name, "ran"))
                return out
            return wrapper

        runtime, seen = self.runtime(), {}
        for name, fn in originals.items():
            setattr(kb, name, wrap(name, fn))
        try:
            with (kernels.torch_ops() if runtime == "torch" else contextlib.nullcontext(set())) as ops:
                yield seen
        finally:
            for name, fn in originals.items():
                setattr(kb, name, fn)
        seen["kernel"] = keras_kernel(runtime, calls, ops, prepared["device"])

    def environment(self) -> dict[str, str]:
        import keras

        env = {"keras": keras.__version__, "keras_backend": keras.backend.backend()}
        if env["keras_backend"] in ("tensorflow", "torch", "jax"):
            import importlib

            env[env["keras_backend"]] = importlib.import_module(env["keras_backend"]).__version__
        return env


# Keras variable paths ----------------------------------------------------------------------------
_PLAIN = re.compile(r"^(?P<scope>.*?)/?lstm_cell/(?P<var>kernel|recurrent_kernel|bias)$")
_BIDI_HALF = re.compile(r"^(?:(?P<scope>.*)/)?(?P<dir>forward|backward)_(?P<inner>[^/]+)/lstm_cell/"
                   r"(?P<var>kernel|recurrent_kernel|bias)$")
_VARS = ("kernel", "recurrent_kernel", "bias")


@dataclass
class PathLayer:
    """One LSTM or Bidirectional layer found among Keras variable paths."""

    bidirectional: bool
    found: dict  # (direction or "", variable) -> value
    keys: dict = field(default_factory=dict)  # (direction or "", variable) -> the variable's path, as the user has it

    @property
    def weights(self) -> list:
        """The layer's get_weights() list: kernel, recurrent_kernel, bias, per direction, forward first."""
        return [self.found[u] for u in self._order()]

    @property
    def paths(self) -> list[str]:
        """The variable path of each array of `weights` (what errors about them name)."""
        return [self.keys.get(u, f"{u[0]}/{u[1]}".lstrip("/")) for u in self._order()]

    def _order(self) -> list[tuple[str, str]]:
        dirs = ("forward", "backward") if self.bidirectional else ("",)
        return [(d, v) for d in dirs for v in _VARS if (d, v) in self.found]


def layers_from_paths(native: Mapping) -> dict[str, PathLayer]:
    """The LSTM layers among Keras variable paths ({v.path: v.numpy() for v in model.weights}), in order.

    'sequential/lstm/lstm_cell/kernel' is layer 'sequential/lstm'; a Bidirectional's halves are
    'sequential/bidirectional/forward_lstm_1/lstm_cell/...' and 'backward_lstm_1' (layer 'sequential/bidirectional').
    A model reloaded with keras.saving.load_model names them without the Bidirectional's scope
    ('forward_lstm_1/lstm_cell/kernel'): the pair is then layer 'lstm_1', its wrapped LSTM's name. A lone
    'forward_x' with no 'backward_x' beside it is an LSTM that happens to be named so.
    """
    halves: dict[tuple[str, str], dict] = {}
    plain: dict[str, dict] = {}
    keys: dict[tuple, dict] = {}  # unit -> its (direction, variable) -> the user's own key
    order: list[tuple[str, tuple]] = []
    for original, value in native.items():
        key = str(original).removesuffix(":0")
        m = _BIDI_HALF.match(key)
        if m:
            unit = (m["scope"] or "", m["inner"])
            halves.setdefault(unit, {})[(m["dir"], m["var"])] = value
            keys.setdefault(("half", unit), {})[(m["dir"], m["var"])] = str(original)
            order.append(("half", unit))
            continue
        m = _PLAIN.match(key)
        if m and m["scope"]:
            plain.setdefault(m["scope"], {})[("", m["var"])] = value
            keys.setdefault(("plain", m["scope"]), {})[("", m["var"])] = str(original)
            order.append(("plain", m["scope"]))
    per_scope: dict[str, int] = {}
    for scope, _ in halves:
        per_scope[scope] = per_scope.get(scope, 0) + 1
    layers: dict[str, PathLayer] = {}
    for kind, unit in order:
        named = keys[(kind, unit)]
        if kind == "plain":
            layers.setdefault(unit, PathLayer(False, plain[unit], named))
            continue
        found = halves[unit]
        scope, inner = unit
        if {d for d, _ in found} == {"forward", "backward"}:
            name = scope if scope and per_scope[scope] == 1 else "/".join(filter(None, unit))
            layers.setdefault(name, PathLayer(True, found, named))
        else:  # one half only: an LSTM whose own name starts with forward_ or backward_
            d = next(iter(found))[0]
            name = "/".join(filter(None, (scope, f"{d}_{inner}")))
            layers.setdefault(name, PathLayer(False, {("", v): a for (_, v), a in found.items()},
                                              {("", v): k for (_, v), k in named.items()}))
    return layers


def keras_kernel(runtime: str, calls: list[tuple[str, str]], torch_ops: set[str], device: str) -> str:
    """Name the path a Keras forward took from what watch_kernel saw.

    A Bidirectional layer first offers the fused backend.bidirectional_lstm and, if that declines,
    runs backend.lstm per direction; so what ran is what returned, and only if nothing returned did
    the generic loop run.
    """
    if not calls:
        why = "use_cudnn=False on cpu" if device == "cpu" else "its fused lstm was not called"
        return f"keras generic RNN loop ({why})"
    ran = list(dict.fromkeys(name for name, outcome in calls if outcome == "ran"))
    if not ran:
        declined = ", ".join(dict.fromkeys(name for name, _ in calls))
        return f"keras generic RNN loop (backend.{declined} declined: its cuDNN conditions do not hold)"
    paths = []
    for name in ran:
        if runtime == "torch":
            paths.append(f"{kernels.torch_rnn_kernel(torch_ops)} via keras torch backend.{name}"
                         if "aten::_cudnn_rnn" in torch_ops else
                         f"keras torch backend.{name} fallback loop (no CUDA input, or it caught a cuDNN failure)")
        elif runtime == "tensorflow":
            paths.append(f"cuDNN (keras tensorflow backend.{name}: tf CudnnRNN)")
        elif runtime == "jax":
            paths.append(f"cuDNN (keras jax backend.{name}: jax.experimental.rnn)")
        else:
            paths.append(f"keras {runtime} backend.{name}")
    return "; ".join(paths)
