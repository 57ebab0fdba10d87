"""ONNX's gate clip put in the wrong place: the forward passes a port gets when it clips the gate
pre-activations before or after the wrong terms, for the negative controls and for the test that pins
down onnxruntime's order (test_onnx.py).

Written apart from harness.oracle, which keeps no test hooks: one layer (forward or bidirectional),
peepholes, time-major, float64. `forward(model, x, h0, c0, None)` is the right order and must equal the
oracle (checked by the tests that use it), so a difference from a variant is the misplaced clip alone.
"""

from __future__ import annotations

import numpy as np

from harness.outputs import LSTMOutput

WRONG_PLACES = {
    "before-peepholes": "each gate clipped before its peephole term is added",
    "output-before-peephole": "the output gate clipped before its peephole on the new c is added",
    "forget-bias-outside": "forget_bias added after the clip",
    "c-before-tanh": "c clipped to the gate clip before the tanh of h",
}


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def forward(model, x, h0, c0, where: str | None) -> LSTMOutput:
    """The LSTM of `model` with its gate clip at `where` (a key of WRONG_PLACES; None: the right place)."""
    spec = model.spec
    assert spec.num_layers == 1 and spec.peephole and not spec.proj_size and spec.gate_clip is not None, spec
    assert where is None or where in WRONG_PLACES, where
    bound, fb, T = spec.gate_clip, spec.forget_bias, x.shape[0]
    clip = lambda z: np.clip(z, -bound, bound)  # noqa: E731
    ys, h_n, c_n = [], [], []
    for d in range(spec.num_directions):
        w = model.weights[(0, d)]
        h, c = h0[d], c0[d]
        y = np.zeros((T, x.shape[1], spec.hidden_size))
        for t in range(T - 1, -1, -1) if d else range(T):
            zi, zf, zg, zo = np.split(x[t] @ w.W_ih.T + w.b_ih + w.b_hh + h @ w.W_hh.T, 4, axis=-1)
            if where == "before-peepholes":
                zi, zf = clip(zi) + w.w_i * c, clip(zf) + w.w_f * c + fb
            elif where == "forget-bias-outside":
                zi, zf = clip(zi + w.w_i * c), clip(zf + w.w_f * c) + fb
            else:
                zi, zf = clip(zi + w.w_i * c), clip(zf + w.w_f * c + fb)
            c = _sigmoid(zf) * c + _sigmoid(zi) * np.tanh(clip(zg))
            if where in ("before-peepholes", "output-before-peephole"):
                zo = clip(zo) + w.w_o * c
            else:
                zo = clip(zo + w.w_o * c)
            h = _sigmoid(zo) * np.tanh(clip(c) if where == "c-before-tanh" else c)
            y[t] = h
        ys.append(y)
        h_n.append(h)
        c_n.append(c)
    return LSTMOutput(np.concatenate(ys, axis=-1), np.stack(h_n), np.stack(c_n))
