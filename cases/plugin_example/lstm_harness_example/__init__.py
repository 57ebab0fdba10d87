"""lstm-harness-example: a complete third-party backend in one module (see pyproject.toml for its entry point).

It runs an LSTM written directly in numpy on the layout many hand-written LSTMs use: per layer and direction
one kernel applied to the concatenation [x, h],

    z = [x_t, h] @ kernel + bias      kernel [in + H, 4H], bias [4H], gates i, f, g, o

so it holds one bias (the harness folds b_ih + b_hh for it) and no projection, peepholes or clips (the harness
reports those cases as unsupported). Its native parameters are named "l{layer}.{fw|bw}.kernel" / ".bias".
"""

from __future__ import annotations

import numpy as np

from harness.backends import Backend, Capabilities, NativeDict
from harness.canonical import CanonicalLSTM, LayerWeights
from harness.outputs import LSTMOutput
from harness.spec import LSTMSpec

DIRECTION = ("fw", "bw")


class ConcatBackend(Backend):
    name = "numpy-concat"  # must equal the entry point's name
    framework = "numpy"  # the module whose import decides "installed"
    description = "an LSTM in plain numpy on one [x, h] kernel (lstm-harness-example)"
    capabilities = Capabilities(dtypes=("float32", "float64"))  # one bias; folded or refused: everything else
    install_hint = "pip install lstm-harness-example"

    # Conversion: canonical <-> this layout (exact inverses) ------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeDict:
        native = NativeDict()
        for (k, d), lw in model.weights.items():
            native[f"l{k}.{DIRECTION[d]}.kernel"] = np.concatenate([lw.W_ih, lw.W_hh], axis=1).T.astype(dtype)
            native[f"l{k}.{DIRECTION[d]}.bias"] = (lw.b_ih + lw.b_hh).astype(dtype)
        return native

    def import_(self, native, spec: LSTMSpec, select=None) -> CanonicalLSTM:
        self.check_spec(spec)
        weights = {}
        for k, d in spec.units():
            prefix = f"{select}/" if select else ""
            kernel = np.asarray(native[f"{prefix}l{k}.{DIRECTION[d]}.kernel"], dtype=np.float64)
            bias = np.asarray(native[f"{prefix}l{k}.{DIRECTION[d]}.bias"], dtype=np.float64)
            width = spec.layer_input_size(k)
            weights[(k, d)] = LayerWeights(W_ih=kernel[:width].T, W_hh=kernel[width:].T, b_ih=bias,
                                           b_hh=np.zeros_like(bias))
        return CanonicalLSTM(spec.replace(bias="single") if spec.bias == "double" else spec, weights)

    # Running ------------------------------------------------------------------------------------
    def _prepare(self, model: CanonicalLSTM, dtype: str, device: str):
        return model.spec, self.export(model, np.dtype(dtype))

    def _run(self, live, x, h0, c0, *, batch_first=False) -> LSTMOutput:
        spec, native = live
        dtype = native["l0.fw.kernel"].dtype
        seq = np.swapaxes(x, 0, 1) if batch_first else np.asarray(x)
        seq = seq.astype(dtype)
        n, batch, H = len(spec.units()), seq.shape[1], spec.hidden_size
        h0 = np.zeros((n, batch, H), dtype) if h0 is None else h0.astype(dtype)
        c0 = np.zeros((n, batch, H), dtype) if c0 is None else c0.astype(dtype)
        sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
        h_n, c_n = [], []
        for k in range(spec.num_layers):
            outs = []
            for d in range(spec.num_directions):
                i = k * spec.num_directions + d
                kernel, bias = native[f"l{k}.{DIRECTION[d]}.kernel"], native[f"l{k}.{DIRECTION[d]}.bias"]
                h, c, ys = h0[i], c0[i], [None] * len(seq)
                for t in (reversed(range(len(seq))) if d else range(len(seq))):
                    zi, zf, zg, zo = np.split(np.concatenate([seq[t], h], axis=1) @ kernel + bias, 4, axis=1)
                    c = sigmoid(zf) * c + sigmoid(zi) * np.tanh(zg)
                    h = sigmoid(zo) * np.tanh(c)
                    ys[t] = h
                outs.append(np.stack(ys))
                h_n.append(h)
                c_n.append(c)
            seq = np.concatenate(outs, axis=-1)
        y = np.swapaxes(seq, 0, 1) if batch_first else seq
        return LSTMOutput(y, np.stack(h_n), np.stack(c_n))
