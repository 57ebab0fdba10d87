"""`keras`: Keras 3 keras.layers.LSTM (+ keras.layers.Bidirectional, stacked layers), on the backend
KERAS_BACKEND selects (TensorFlow by default); the backend in force goes with every result.

Native parameters: a NativeList with one get_weights() list per stacked layer:
  LSTM:          [kernel [in, 4H], recurrent_kernel [H, 4H], bias [4H]]   (bias absent if use_bias=False)
  Bidirectional: [fw kernel, fw recurrent_kernel, fw bias, bw kernel, bw recurrent_kernel, bw bias]
Keras's gate order i, f, c, o is the canonical i, f, g, o; its matrices are the transposes of
the canonical ones; its one bias is b_ih + b_hh. It has no projection, peepholes or clips.
Keras takes batch-major input only: time-major input is transposed around the call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from ..canonical import CanonicalLSTM, LayerWeights
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Backend, Capabilities, NativeList
from ._names import to_numpy


class KerasBackend(Backend):
    name = "keras"
    framework = "keras"
    description = "keras.layers.LSTM"
    capabilities = Capabilities()

    def keras_backend(self) -> str:
        import keras

        return keras.backend.backend()

    def supports(self, spec, dtype="float32", device="cpu"):
        reason = super().supports(spec, dtype, device)
        if reason is None and str(np.dtype(dtype)) == "float64" and self.keras_backend() == "jax":
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
        if isinstance(native, Mapping):
            native = self._lists_from_paths(native, spec, select)
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
                arrs = [to_numpy(f"layer {k}[{d * per_dir + i}]", a) for i, a in enumerate(layer[d * per_dir:(d + 1) * per_dir])]
                kernel, rec = arrs[0], arrs[1]
                for name, arr, shape in (("kernel", kernel, (spec.layer_input_size(k), 4 * H)),
                                         ("recurrent_kernel", rec, (H, 4 * H))):
                    if arr.shape != shape:
                        raise ValueError(f"keras import: layer {k} {name}: expected shape {shape}, got {arr.shape}")
                bias = arrs[2] if per_dir == 3 else np.zeros(4 * H)
                weights[(k, d)] = LayerWeights(W_ih=kernel.T, W_hh=rec.T, b_ih=bias, b_hh=np.zeros(4 * H))
        return CanonicalLSTM(spec, weights)

    @staticmethod
    def _lists_from_paths(native: Mapping, spec: LSTMSpec, select) -> list[list]:
        rx = re.compile(r"^(?P<layer>.*?)/(?:(?P<dir>forward|backward)_[^/]+/)?lstm_cell/"
                        r"(?P<var>kernel|recurrent_kernel|bias)$")
        layers: dict[str, dict[tuple[str, str], object]] = {}
        for key, value in native.items():
            m = rx.match(str(key))
            if m:
                layers.setdefault(m["layer"], {})[(m["dir"] or "", m["var"])] = value
        if not layers:
            raise ValueError("keras import: no '<layer>/lstm_cell/kernel' variables found in the mapping")
        if select is not None:
            names = [select] if isinstance(select, str) else list(select)
            missing = [n for n in names if n.rstrip("/") not in layers]
            if missing:
                raise ValueError(f"keras import: select={missing} matches none of the LSTM layers {list(layers)}")
            names = [n.rstrip("/") for n in names]
        else:
            names = list(layers)
        if len(names) != spec.num_layers:
            raise ValueError(f"keras import: the mapping holds LSTM layers {names}, but spec.num_layers="
                             f"{spec.num_layers}; pass select=[...] with {spec.num_layers} layer scope(s)")
        dirs = ("forward", "backward") if spec.bidirectional else ("",)
        out = []
        for name in names:
            found = layers[name]
            if {d for d, _ in found} != set(dirs):
                kind = "a Bidirectional" if spec.bidirectional else "an LSTM"
                raise ValueError(f"keras import: layer {name!r} is not {kind} layer (found {sorted(found)})")
            out.append([found[(d, v)] for d in dirs for v in ("kernel", "recurrent_kernel", "bias") if (d, v) in found])
        return out

    # Running --------------------------------------------------------------------------------
    def prepare(self, model: CanonicalLSTM, dtype="float32", device="cpu"):
        import keras

        spec = model.spec
        dtype = str(np.dtype(dtype))
        native = self.export(model, dtype=dtype)
        layers = []
        for k in range(spec.num_layers):
            cell = dict(units=spec.hidden_size, return_sequences=True, return_state=True,
                        use_bias=spec.bias != "none", unit_forget_bias=False, dtype=dtype)
            if spec.bidirectional:
                layer = keras.layers.Bidirectional(keras.layers.LSTM(**cell), merge_mode="concat", dtype=dtype)
            else:
                layer = keras.layers.LSTM(**cell)
            layer.build((None, None, spec.layer_input_size(k)))
            layer.set_weights(native[k])
            layers.append(layer)
        return {"layers": layers, "spec": spec, "dtype": dtype}

    def run(self, prepared, x, h0, c0, *, batch_first=False) -> LSTMOutput:
        import keras

        spec, dtype = prepared["spec"], prepared["dtype"]
        D = spec.num_directions
        xa = np.asarray(x, dtype=dtype)
        seq = keras.ops.convert_to_tensor(xa if batch_first else xa.transpose(1, 0, 2))  # Keras is batch-major only
        hs, cs = [], []
        for k, layer in enumerate(prepared["layers"]):
            init = None
            if h0 is not None:
                init = []
                for d in range(D):
                    init += [keras.ops.convert_to_tensor(np.asarray(h0[k * D + d], dtype=dtype)),
                             keras.ops.convert_to_tensor(np.asarray(c0[k * D + d], dtype=dtype))]
            outs = layer(seq, initial_state=init)
            seq = outs[0]
            for d in range(D):  # LSTM -> [y, h, c]; Bidirectional -> [y, fh, fc, bh, bc]
                hs.append(outs[1 + 2 * d])
                cs.append(outs[2 + 2 * d])
        y = keras.ops.convert_to_numpy(seq)
        if not batch_first:
            y = y.transpose(1, 0, 2)
        h_n = np.stack([keras.ops.convert_to_numpy(h) for h in hs])
        c_n = np.stack([keras.ops.convert_to_numpy(c) for c in cs])
        return LSTMOutput(np.ascontiguousarray(y), h_n, c_n)

    def environment(self) -> dict[str, str]:
        import keras

        env = {"keras": keras.__version__, "keras_backend": keras.backend.backend()}
        if env["keras_backend"] == "tensorflow":
            import tensorflow as tf

            env["tensorflow"] = tf.__version__
        return env
