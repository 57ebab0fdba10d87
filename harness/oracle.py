"""The exact float64 reference forward pass for every spec feature. Imports no framework.

Per (layer, direction), per time step, with gates in canonical order i, f, g, o:

    z  = x_t W_ih^T + b_ih + h W_hh^T + b_hh
    z_i += w_i * c;  z_f += w_f * c            (peepholes read the previous c)
    z_f += forget_bias                          (run-time, as TF1 cells)
    z_i, z_f, z_g = clip(z_i, z_f, z_g, gate_clip)   (ONNX's clip: after the peepholes and forget_bias)
    c' = sigmoid(z_f) * c + sigmoid(z_i) * tanh(z_g);  c' = clip(c', cell_clip)
    z_o += w_o * c';  z_o = clip(z_o, gate_clip)    (the output peephole reads the NEW, clipped c)
    h' = sigmoid(z_o) * tanh(c');  h' = clip(h' W_hr^T, proj_clip)

clip(v, a) bounds v to [-a, a]; a clip that is None is off, and 0 clips to zero (TF1's cell_clip and
proj_clip). c itself is never clipped by gate_clip (onnxruntime takes tanh of the unclipped c).

Layer k+1 reads the concatenated outputs of both directions of layer k; the backward
direction runs from t = T-1 to 0 and its outputs are returned in the original time order.
The layout of the result is documented in harness.outputs.
"""

from __future__ import annotations

import numpy as np

from . import inputs
from .canonical import CanonicalLSTM
from .outputs import LSTMOutput


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # exact identity, no overflow for large |z|


def check_inputs(spec, x, h0, c0, batch_first: bool):
    """Validate x, h0, c0 against the spec (harness.inputs, the one check every backend runs too); return
    them as float64 arrays, x time-major, zero states where None."""
    checked = inputs.check_inputs(spec, x, h0, c0, batch_first=batch_first)
    x = checked.x.astype(np.float64)
    if batch_first:
        x = x.transpose(1, 0, 2)
    n = spec.num_layers * spec.num_directions
    h0 = np.zeros((n, checked.batch, spec.output_size)) if checked.h0 is None else checked.h0.astype(np.float64)
    c0 = np.zeros((n, checked.batch, spec.hidden_size)) if checked.c0 is None else checked.c0.astype(np.float64)
    return x, h0, c0


def forward(
    model: CanonicalLSTM,
    x,
    h0=None,
    c0=None,
    *,
    batch_first: bool = False,
) -> LSTMOutput:
    spec = model.spec
    x, h0, c0 = check_inputs(spec, x, h0, c0, batch_first)
    T = x.shape[0]
    H, D = spec.hidden_size, spec.num_directions
    layer_in = x
    h_n, c_n = np.zeros_like(h0), np.zeros_like(c0)
    for k in range(spec.num_layers):
        outs = []
        for d in range(D):
            w = model.weights[(k, d)]
            idx = k * D + d
            h, c = h0[idx], c0[idx]
            xz = layer_in @ w.W_ih.T + (w.b_ih + w.b_hh)  # [T, B, 4H]: input part for all steps
            ys = np.zeros((T, x.shape[1], spec.output_size))
            for t in range(T - 1, -1, -1) if d == 1 else range(T):
                z = xz[t] + h @ w.W_hh.T
                zi, zf, zg, zo = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
                if spec.peephole:
                    zi = zi + w.w_i * c
                    zf = zf + w.w_f * c
                zf = zf + spec.forget_bias
                if spec.gate_clip is not None:
                    zi, zf, zg = (np.clip(z, -spec.gate_clip, spec.gate_clip) for z in (zi, zf, zg))
                c = _sigmoid(zf) * c + _sigmoid(zi) * np.tanh(zg)
                if spec.cell_clip is not None:
                    c = np.clip(c, -spec.cell_clip, spec.cell_clip)
                if spec.peephole:
                    zo = zo + w.w_o * c
                if spec.gate_clip is not None:
                    zo = np.clip(zo, -spec.gate_clip, spec.gate_clip)
                h = _sigmoid(zo) * np.tanh(c)
                if spec.proj_size:
                    h = h @ w.W_hr.T
                    if spec.proj_clip is not None:
                        h = np.clip(h, -spec.proj_clip, spec.proj_clip)
                ys[t] = h
            h_n[idx], c_n[idx] = h, c
            outs.append(ys)
        layer_in = np.concatenate(outs, axis=-1)
    y = layer_in.transpose(1, 0, 2) if batch_first else layer_in
    return LSTMOutput(np.ascontiguousarray(y), h_n, c_n)
