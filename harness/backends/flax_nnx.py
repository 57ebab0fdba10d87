"""`flax-nnx`: flax.nnx LSTMCell or OptimizedLSTMCell in nnx.RNN, nnx.Bidirectional, stacked as nnx.Sequential.

Native parameters: the module's parameter state as a pure dict, `nnx.state(model, nnx.Param).to_pure_dict()`
(numpy arrays in a NativeDict; load it into a model with `nnx.update(model, params)`), laid out as
harness.backends._flax_trees describes: {'cell': ...} for one nnx.RNN, {'forward_rnn': {'cell': ...},
'backward_rnn': {'cell': ...}} for nnx.Bidirectional, {'layers': {0: ..., 1: ...}} for an nnx.Sequential.
The two cells hold different trees: LSTMCell per gate (ii, if_, ig, io; hi, hf, hg, ho with the bias),
OptimizedLSTMCell fused (dense_i [in, 4H]; dense_h [H, 4H] with the bias [4H]). Import reads either (also
from an nnx.State or the module itself) and infers the cell from the tree; export writes the backend's
`cell` (LSTMCell by default) or `export(model, cell="OptimizedLSTMCell")`.
Flax's one bias is on the hidden side (a double bias is summed into it); the carry is (c, h).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..canonical import CanonicalLSTM
from ..spec import LSTMSpec
from . import NativeDict, _flax_trees, _jax
from ._flax import FlaxBackend, run_layers
from ._flax_trees import FUSED, NNX, PER_GATE


def build_model(spec: LSTMSpec, cell: str, batch_first: bool, dtype):
    """The nnx model whose parameter tree is the native layout (random weights, replaced before use)."""
    from flax import nnx

    cell_cls = {PER_GATE: nnx.LSTMCell, FUSED: nnx.OptimizedLSTMCell}[cell]
    rngs = nnx.Rngs(0)

    def rnn(k):
        return nnx.RNN(cell_cls(spec.layer_input_size(k), spec.hidden_size, param_dtype=dtype, rngs=rngs),
                       time_major=not batch_first, return_carry=True)

    layers = [nnx.Bidirectional(rnn(k), rnn(k), time_major=not batch_first, return_carry=True)
              if spec.bidirectional else rnn(k) for k in range(spec.num_layers)]
    return nnx.Sequential(*layers) if spec.num_layers > 1 else layers[0]


class FlaxNnxBackend(FlaxBackend):
    name = "flax-nnx"
    framework = "flax.nnx"
    description = "flax.nnx LSTMCell in nnx.RNN / nnx.Bidirectional"

    # Conversion -----------------------------------------------------------------------------
    def export(self, model: CanonicalLSTM, dtype=np.float32, *, cell: str | None = None) -> NativeDict:
        """The nnx parameter tree of `cell` (default: this backend's cell)."""
        if cell is not None and cell != self.cell:
            return type(self)(cell).export(model, dtype)
        return super().export(model, dtype)

    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeDict:
        _jax.register_native_pytrees()
        return NativeDict(_flax_trees.to_tree(NNX, model, dtype, self.cell))

    def import_(self, native, spec: LSTMSpec, select: str | None = None) -> CanonicalLSTM:
        """Read an nnx parameter tree: a pure dict, an nnx.State or an nnx.Module (select= picks by '/'-path)."""
        self.check_spec(spec)
        if not isinstance(native, Mapping) and not hasattr(native, "to_pure_dict"):
            from flax import nnx

            if isinstance(native, nnx.Module):
                native = nnx.state(native, nnx.Param)
        return _flax_trees.from_tree(NNX, native, spec, select)[0]

    # Running --------------------------------------------------------------------------------
    def build_forward(self, structure: LSTMSpec, batch_first: bool, dtype: str):
        """forward(params, x, h0, c0): a fresh model (traced once) updated with `params`, run layer by layer."""
        from flax import nnx

        def forward(params, x, h0, c0, lengths):
            model = build_model(structure, self.cell, batch_first, dtype)  # inside the trace: its init is dead code
            nnx.update(model, params)
            layers = list(model.layers) if structure.num_layers > 1 else [model]
            return run_layers(layers, structure.num_directions, x, h0, c0, lengths)

        return forward
