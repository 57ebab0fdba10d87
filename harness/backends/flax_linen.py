"""`flax`: flax.linen LSTMCell or OptimizedLSTMCell in nn.RNN, nn.Bidirectional, stacked as nn.Sequential.

Native parameters: the variables `Module.init` returns (a NativeDict {'params': ...} of numpy arrays),
laid out as harness.backends._flax_trees describes: {'params': {'cell': ...}} for one nn.RNN,
{'params': {'forward_rnn': {'cell': ...}, 'backward_rnn': {'cell': ...}}} for nn.Bidirectional, and
{'params': {'layers_0': ..., 'layers_1': ...}} for an nn.Sequential of those. linen's LSTMCell and
OptimizedLSTMCell hold the same tree (the optimized cell concatenates the per-gate kernels at run time),
so a tree imports whatever cell made it; which cell runs is the backend's `cell` (LSTMCell by default).
Flax's one bias is on the hidden side (a double bias is summed into it); the carry is (c, h).
"""

from __future__ import annotations

import functools

import numpy as np

from ..canonical import CanonicalLSTM
from ..spec import LSTMSpec
from . import NativeDict, _flax_trees, _jax
from ._flax import FlaxBackend, run_layers
from ._flax_trees import FUSED, LINEN, PER_GATE


class FlaxLinenBackend(FlaxBackend):
    name = "flax"
    framework = "flax.linen"
    description = "flax.linen LSTMCell in nn.RNN / nn.Bidirectional"

    # Conversion -----------------------------------------------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeDict:
        _jax.register_native_pytrees()
        return NativeDict(_flax_trees.to_tree(LINEN, model, dtype, PER_GATE))  # both cells' tree

    def import_(self, native, spec: LSTMSpec, select: str | None = None) -> CanonicalLSTM:
        """Read linen variables (or any tree holding them: select= picks by '/'-path if there are several)."""
        self.check_spec(spec)
        return _flax_trees.from_tree(LINEN, native, spec, select)[0]

    # Running --------------------------------------------------------------------------------
    def build_forward(self, structure: LSTMSpec, batch_first: bool, dtype: str):
        """forward(variables, x, h0, c0) applying the linen layer module to each layer's variables."""
        import flax.linen as nn

        cell_cls = {PER_GATE: nn.LSTMCell, FUSED: nn.OptimizedLSTMCell}[self.cell]

        def rnn():
            return nn.RNN(cell_cls(structure.hidden_size), time_major=not batch_first, return_carry=True)

        layer = (nn.Bidirectional(rnn(), rnn(), time_major=not batch_first, return_carry=True)
                 if structure.bidirectional else rnn())

        def forward(variables, x, h0, c0, lengths):
            params = variables["params"]
            per_layer = ([params[f"layers_{k}"] for k in range(structure.num_layers)]
                         if structure.num_layers > 1 else [params])
            layers = [functools.partial(layer.apply, {"params": p}) for p in per_layer]
            return run_layers(layers, structure.num_directions, x, h0, c0, lengths)

        return forward
