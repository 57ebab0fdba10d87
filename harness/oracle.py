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

Per-example lengths (right padding, harness.inputs): example b has lengths[b] valid steps. Its forward
direction runs t = 0 .. lengths[b]-1 and stops; its backward direction STARTS at t = lengths[b]-1 (from h0,
c0) and runs to 0; h_n and c_n are the states after each direction's last valid step. Padding never enters
a state, so a later layer's valid outputs do not depend on what an earlier layer put at padded steps. What y
holds at padded steps is each framework's convention, `padding`:
    "zeros"      zeros (torch's pad_packed_sequence, ONNX, TF1's dynamic_rnn);
    "carry"      the forward direction's output at the example's last valid step, repeated (a Keras mask on
                 a one-direction LSTM: its masked steps pass the previous output on); one direction only;
    "undefined"  whatever the framework leaves there; the oracle writes zeros and the comparison skips them.
"""

from __future__ import annotations

import numpy as np

from . import inputs
from .canonical import CanonicalLSTM
from .outputs import LSTMOutput, check_padding


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # exact identity, no overflow for large |z|


def check_inputs(spec, x, h0, c0, batch_first: bool):
    """Validate x, h0, c0 against the spec (harness.inputs, the one check every backend runs too); return
    them as float64 arrays, x time-major, zero states where None."""
    return _as_float64(spec, inputs.check_inputs(spec, x, h0, c0, batch_first=batch_first), batch_first)


def _as_float64(spec, checked: inputs.Inputs, batch_first: bool):
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
    lengths=None,
    padding: str = "zeros",
) -> LSTMOutput:
    """The exact forward pass (module docstring); lengths [B] right-padded valid steps, padding y's convention."""
    spec = model.spec
    check_padding(padding, spec)
    checked = inputs.check_inputs(spec, x, h0, c0, batch_first=batch_first, lengths=lengths)
    inputs.check_fixed_lengths(model.fixed_lengths, checked.lengths)
    x, h0, c0 = _as_float64(spec, checked, batch_first)
    lengths = checked.lengths
    T = x.shape[0]
    H, D = spec.hidden_size, spec.num_directions
    # valid[t, b]: step t of example b is real data (all True without lengths)
    valid = np.ones((T, x.shape[1]), bool) if lengths is None else np.arange(T)[:, None] < lengths[None, :]
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
                c_old = c
                c = _sigmoid(zf) * c + _sigmoid(zi) * np.tanh(zg)
                if spec.cell_clip is not None:
                    c = np.clip(c, -spec.cell_clip, spec.cell_clip)
                if spec.peephole:
                    zo = zo + w.w_o * c
                if spec.gate_clip is not None:
                    zo = np.clip(zo, -spec.gate_clip, spec.gate_clip)
                h_new = _sigmoid(zo) * np.tanh(c)
                if spec.proj_size:
                    h_new = h_new @ w.W_hr.T
                    if spec.proj_clip is not None:
                        h_new = np.clip(h_new, -spec.proj_clip, spec.proj_clip)
                m = valid[t][:, None]  # padded steps leave the state as it was
                h, c = np.where(m, h_new, h), np.where(m, c, c_old)
                ys[t] = h if padding == "carry" else np.where(m, h, 0.0)
            h_n[idx], c_n[idx] = h, c
            outs.append(ys)
        layer_in = np.concatenate(outs, axis=-1)
    y = layer_in.transpose(1, 0, 2) if batch_first else layer_in
    return LSTMOutput(np.ascontiguousarray(y), h_n, c_n)
