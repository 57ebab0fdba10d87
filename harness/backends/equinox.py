"""`equinox`: equinox.nn.LSTMCell (one example, one step), vmapped over the batch and scanned over time.

Native parameters: the cells themselves, a NativeList of equinox.nn.LSTMCell modules, one per
(layer, direction) in PyTorch's order layer * D + direction (a one-layer, one-direction LSTM may also be
imported from a bare cell). Each holds weight_ih [4H, in], weight_hh [4H, H] and one bias [4H]
(bias=None with use_bias=False): the canonical layout and gate order i, f, g, o, with b_ih + b_hh summed.
Equinox has no RNN, bidirectional or stacking wrapper; the harness scans the cell (backward direction
with lax.scan(reverse=True)) and feeds layer k+1 both directions of layer k, concatenated. The state is
(h, c), h first, unlike Flax. Per-example lengths mask the scan (the cell has none): a padded step keeps h
and c and outputs zeros, so the backward direction starts at each example's last valid step.
"""

from __future__ import annotations

import numpy as np

from ..canonical import CanonicalLSTM, LayerWeights, expected_shapes
from ..spec import LSTMSpec
from . import NativeList, _jax
from ._names import part, take


class EquinoxBackend(_jax.JaxBackend):
    name = "equinox"
    framework = "equinox"
    description = "equinox.nn.LSTMCell"

    # Conversion -----------------------------------------------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeList:
        import equinox as eqx
        import jax

        _jax.register_native_pytrees()
        spec = model.spec
        use_bias = spec.bias != "none"
        cells = NativeList()
        for k, d in spec.units():
            lw = model.weights[(k, d)]
            # The cell's structure without running its random init; then the weights, as numpy arrays.
            shape = eqx.filter_eval_shape(eqx.nn.LSTMCell, spec.layer_input_size(k), spec.hidden_size,
                                          use_bias=use_bias, key=jax.random.key(0))
            leaves = [lw.W_ih.astype(dtype), lw.W_hh.astype(dtype)]
            if use_bias:
                leaves.append((lw.b_ih + lw.b_hh).astype(dtype))
            cells.append(eqx.tree_at(lambda m: (m.weight_ih, m.weight_hh, m.bias)[:len(leaves)], shape, leaves))
        return cells

    def import_(self, native, spec: LSTMSpec, select=None) -> CanonicalLSTM:
        """Read a list of equinox.nn.LSTMCell (layer * D + direction order), or one cell for a one-unit LSTM."""
        self.check_spec(spec)
        if select is not None:
            raise ValueError("equinox import: select= is not used; pass the cells of the one LSTM")
        if spec.bias == "double":
            raise ValueError("equinox import: equinox.nn.LSTMCell has one bias; describe it with bias='single' (or 'none')")
        if spec.forget_bias:
            raise ValueError("equinox import: equinox has no run-time forget_bias; describe it with forget_bias=0")
        cells = [native] if hasattr(native, "weight_ih") else native
        n = len(spec.units())
        if not isinstance(cells, (list, tuple)) or len(cells) != n:
            got = f"{len(cells)} entries" if isinstance(cells, (list, tuple)) else type(native).__name__
            raise ValueError(f"equinox import: expected {n} equinox.nn.LSTMCell (one per layer and direction, "
                             f"in layer * {spec.num_directions} + direction order), got {got}")
        H = spec.hidden_size
        weights = {}
        for i, (k, d) in enumerate(spec.units()):
            cell = cells[i]
            if not all(hasattr(cell, a) for a in ("weight_ih", "weight_hh", "bias")):
                raise TypeError(f"equinox import: entry {i} is a {type(cell).__name__}, not an equinox.nn.LSTMCell")
            if (cell.bias is None) != (spec.bias == "none"):
                raise ValueError(f"equinox import: entry {i} has {'no' if cell.bias is None else 'a'} bias, "
                                 f"but spec.bias={spec.bias!r}")
            shapes = expected_shapes(spec, k)  # equinox's layout is the canonical one
            bias = (np.zeros(4 * H) if cell.bias is None
                    else take(f"cells[{i}].bias", cell.bias, shapes["b_ih"], part(k, d, "b_ih + b_hh")))
            weights[(k, d)] = LayerWeights(
                W_ih=take(f"cells[{i}].weight_ih", cell.weight_ih, shapes["W_ih"], part(k, d, "W_ih")),
                W_hh=take(f"cells[{i}].weight_hh", cell.weight_hh, shapes["W_hh"], part(k, d, "W_hh")),
                b_ih=bias, b_hh=np.zeros(4 * H))
        return CanonicalLSTM(spec, weights)

    # Running --------------------------------------------------------------------------------
    def build_forward(self, structure: LSTMSpec, batch_first: bool, dtype: str):
        """forward(cells, x, h0, c0, lengths) for the list of cells in layer * D + direction order."""
        import jax
        import jax.numpy as jnp

        D = structure.num_directions

        def direction(cell, seq, valid, h, c, reverse):
            batched = jax.vmap(lambda x_b, h_b, c_b: cell(x_b, (h_b, c_b)))  # equinox: (h, c)

            def step(carry, inputs):
                x_t, valid_t = inputs  # valid_t [B, 1]: this step is data, not padding
                h, c = batched(x_t, *carry)
                h, c = jnp.where(valid_t, h, carry[0]), jnp.where(valid_t, c, carry[1])
                return (h, c), jnp.where(valid_t, h, 0)

            (h, c), ys = jax.lax.scan(step, (h, c), (seq, valid), reverse=reverse)
            return ys, h, c

        def forward(cells, x, h0, c0, lengths):
            seq = jnp.swapaxes(x, 0, 1) if batch_first else x
            valid = (jnp.arange(seq.shape[0])[:, None] < lengths[None, :])[..., None]  # [T, B, 1]
            h_n, c_n = [], []
            for k in range(structure.num_layers):
                outs = []
                for d in range(D):
                    i = k * D + d
                    ys, h, c = direction(cells[i], seq, valid, h0[i], c0[i], d == 1)
                    outs.append(ys)
                    h_n.append(h)
                    c_n.append(c)
                seq = jnp.concatenate(outs, axis=-1) if D == 2 else outs[0]
            return (jnp.swapaxes(seq, 0, 1) if batch_first else seq), jnp.stack(h_n), jnp.stack(c_n)

        return forward

    def environment(self) -> dict[str, str]:
        import equinox

        return {**super().environment(), "equinox": equinox.__version__}
