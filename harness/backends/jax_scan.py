"""`jax`: the harness's own LSTM in JAX, one jitted jax.lax.scan per (layer, direction), every spec feature.

It is written from the LSTM equations, not from harness.oracle, so it is a second, independent check
on the oracle (and a fair JAX baseline for benchmarks): per layer, the input part of every gate for the
whole sequence and both directions is ONE matrix product outside the scan,
    xz = x @ [W_ih_fw; W_ih_bw]^T + (b_ih + b_hh)          [T, B, D * 4H]
and the scan step adds only h @ W_hh^T, then peepholes (i, f read the old c; o the new, clipped c),
forget_bias, gate_clip (ONNX's clip of every gate pre-activation), cell_clip, the projection and proj_clip.
The backward direction is lax.scan(reverse=True), whose outputs come back in the original time
order. Per-example lengths (data: int32 [B], T each without padding) mask each step: a padded step keeps
h and c as they were and outputs zeros, so the forward direction stops at the last valid step and the
backward one, meeting the padding first, starts there from h0, c0.

Native parameters: a NativeDict of arrays named as the canonical tensors,
'l{k}.{forward|backward}.{W_ih, W_hh, b_ih, b_hh, w_i, w_f, w_o, W_hr}' (CanonicalLSTM.tensors(), any
key prefix), in canonical layout and gate order i, f, g, o, in the run's dtype: exactly the pytree the
jitted `forward((params, numbers), x, h0, c0)` takes; `numbers` holds forget_bias and the clips that are
set, as data: specs that differ only in those values share one compiled program.
"""

from __future__ import annotations

import json

import numpy as np

from ..canonical import FORMAT_NAME, GATES, SCHEMA_VERSION, CanonicalLSTM, tensor_names
from ..spec import DIRECTIONS, LSTMSpec
from . import Capabilities, NativeDict, _jax
from ._names import group_by_prefix, part, pick, take

_LOCAL = r"l\d+\.(forward|backward)\.(W_ih|W_hh|b_ih|b_hh|w_i|w_f|w_o|W_hr)"
_CLIPS = ("cell_clip", "proj_clip", "gate_clip")  # whether one is set is program structure; its value is data


def scan_forward(spec: LSTMSpec, batch_first: bool):
    """forward(weights, x, h0, c0, lengths) -> (y, h_n, c_n) for JaxScanBackend.program_structure(spec).

    weights: (the native dict, {"forget_bias": ..., and each clip set in spec: its value}); both biases are always
    added (zeros for bias='single' or 'none')."""
    import jax.numpy as jnp
    from jax import lax
    from jax.nn import sigmoid

    H, D = spec.hidden_size, spec.num_directions

    def direction(p, xz, valid, h, c, reverse, n):
        W_hh_T = p["W_hh"].T
        W_hr_T = p["W_hr"].T if spec.proj_size else None

        def step(carry, inputs):
            xz_t, valid_t = inputs  # valid_t [B, 1]: this step is data, not padding
            h_prev, c_prev = h, c = carry
            z = xz_t + h @ W_hh_T
            zi, zf, zg, zo = (z[:, j * H:(j + 1) * H] for j in range(4))
            if spec.peephole:
                zi = zi + p["w_i"] * c
                zf = zf + p["w_f"] * c
            zf = zf + n["forget_bias"]
            if spec.gate_clip is not None:  # ONNX's clip, after the peepholes and forget_bias
                zi, zf, zg = (jnp.clip(z, -n["gate_clip"], n["gate_clip"]) for z in (zi, zf, zg))
            c = sigmoid(zf) * c + sigmoid(zi) * jnp.tanh(zg)
            if spec.cell_clip is not None:
                c = jnp.clip(c, -n["cell_clip"], n["cell_clip"])
            if spec.peephole:
                zo = zo + p["w_o"] * c
            if spec.gate_clip is not None:
                zo = jnp.clip(zo, -n["gate_clip"], n["gate_clip"])
            h = sigmoid(zo) * jnp.tanh(c)
            if spec.proj_size:
                h = h @ W_hr_T
                if spec.proj_clip is not None:
                    h = jnp.clip(h, -n["proj_clip"], n["proj_clip"])
            h, c = jnp.where(valid_t, h, h_prev), jnp.where(valid_t, c, c_prev)
            return (h, c), jnp.where(valid_t, h, 0)

        (h, c), ys = lax.scan(step, (h, c), (xz, valid), reverse=reverse)
        return ys, h, c

    def forward(weights, x, h0, c0, lengths):
        params, numbers = weights
        seq = jnp.swapaxes(x, 0, 1) if batch_first else x  # time-major inside
        valid = (jnp.arange(seq.shape[0])[:, None] < lengths[None, :])[..., None]  # [T, B, 1]
        h_n, c_n = [], []
        for k in range(spec.num_layers):
            units = [{n.rsplit(".", 1)[1]: v for n, v in params.items() if n.startswith(f"l{k}.{DIRECTIONS[d]}.")}
                     for d in range(D)]
            W_ih = jnp.concatenate([u["W_ih"] for u in units], axis=0)  # [D * 4H, in]
            # the input projection of every step and direction: one matrix product
            xz = seq @ W_ih.T + jnp.concatenate([u["b_ih"] + u["b_hh"] for u in units])
            outs = []
            for d in range(D):
                ys, h, c = direction(units[d], xz[..., d * 4 * H:(d + 1) * 4 * H], valid, h0[k * D + d],
                                     c0[k * D + d], d == 1, numbers)
                outs.append(ys)
                h_n.append(h)
                c_n.append(c)
            seq = jnp.concatenate(outs, axis=-1) if D == 2 else outs[0]
        y = jnp.swapaxes(seq, 0, 1) if batch_first else seq
        return y, jnp.stack(h_n), jnp.stack(c_n)

    return forward


class JaxScanBackend(_jax.JaxBackend):
    name = "jax"
    framework = "jax"
    description = "the harness's own jitted jax.lax.scan LSTM"
    capabilities = Capabilities(double_bias=True, forget_bias=True, projection=True, peephole=True,
                                cell_clip=True, proj_clip=True, gate_clip=True, devices=("cpu", "cuda"),
                                lengths="zeros")

    # Conversion -----------------------------------------------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeDict:
        _jax.register_native_pytrees()
        return NativeDict({k: v.astype(dtype) for k, v in model.tensors().items()})

    def import_(self, native, spec: LSTMSpec, select: str | None = None) -> CanonicalLSTM:
        """Read the canonical tensor names (numpy or jax arrays), under any key prefix such as 'encoder.'."""
        self.check_spec(spec)
        params = pick(group_by_prefix(native, _LOCAL), select, "jax")
        meta = {"format": FORMAT_NAME, "schema_version": str(SCHEMA_VERSION), "gate_order": "".join(GATES),
                "spec": json.dumps(spec.to_dict())}
        names = tensor_names(spec)  # the canonical layout and names, under the user's prefix
        arrays = {}
        for key, value in params.items():
            k, d, name, shape = names.get(key, (None, None, None, None))
            arrays[key] = take(params.key(key), value, shape, name and part(k, d, name))
        return CanonicalLSTM.from_tensors(arrays, meta, source="jax import")

    # Running --------------------------------------------------------------------------------
    def program_structure(self, spec: LSTMSpec) -> LSTMSpec:
        """The bias kind, forget_bias and the clips' values are data (both biases always added; the numbers are
        arguments): only whether a clip is set shapes the program."""
        return spec.replace(bias="double", forget_bias=0.0, **{n: 1.0 for n in _CLIPS if getattr(spec, n) is not None})

    def weights(self, native, spec: LSTMSpec):
        numbers = {"forget_bias": spec.forget_bias}
        numbers.update({n: getattr(spec, n) for n in _CLIPS if getattr(spec, n) is not None})
        return dict(native), numbers

    def build_forward(self, structure: LSTMSpec, batch_first: bool, dtype: str):
        return scan_forward(structure, batch_first)
