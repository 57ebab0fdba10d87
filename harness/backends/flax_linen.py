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

import numpy as np

from ..canonical import CanonicalLSTM
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Backend, Capabilities, NativeDict, _flax_trees, _jax
from ._flax_trees import FUSED, LINEN, PER_GATE


def build_forward(spec: LSTMSpec, cell: str, batch_first: bool):
    """forward(variables, x, h0, c0) running the linen modules, one layer after another."""
    import flax.linen as nn
    import jax.numpy as jnp

    D = spec.num_directions
    cell_cls = {PER_GATE: nn.LSTMCell, FUSED: nn.OptimizedLSTMCell}[cell]

    def rnn():
        return nn.RNN(cell_cls(spec.hidden_size), time_major=not batch_first, return_carry=True)

    layer = nn.Bidirectional(rnn(), rnn(), time_major=not batch_first, return_carry=True) if D == 2 else rnn()

    def forward(variables, x, h0, c0):
        params = variables["params"]
        seq, h_n, c_n = x, [], []
        for k in range(spec.num_layers):
            sub = params[f"layers_{k}"] if spec.num_layers > 1 else params
            carries = [(c0[k * D + d], h0[k * D + d]) for d in range(D)]  # Flax carries (c, h)
            carry, seq = layer.apply({"params": sub}, seq, initial_carry=tuple(carries) if D == 2 else carries[0])
            for c, h in (carry if D == 2 else (carry,)):
                h_n.append(h)
                c_n.append(c)
        return seq, jnp.stack(h_n), jnp.stack(c_n)

    return forward


class FlaxLinenBackend(Backend):
    name = "flax"
    framework = "flax.linen"
    description = "flax.linen LSTMCell in nn.RNN / nn.Bidirectional"
    capabilities = Capabilities(devices=("cpu", "cuda"))

    def __init__(self, cell: str = PER_GATE):
        if cell not in (PER_GATE, FUSED):
            raise ValueError(f"cell: expected {PER_GATE!r} or {FUSED!r}, got {cell!r}")
        self.cell = cell

    def runtime(self) -> str:
        return "jax"  # precision flags, synchronization and threads are JAX's

    def device_missing(self, device: str) -> str | None:
        return _jax.device_missing(device)

    # Conversion -----------------------------------------------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeDict:
        _jax.register_native_pytrees()
        return NativeDict(_flax_trees.to_tree(LINEN, model, dtype, PER_GATE))  # both cells' tree

    def import_(self, native, spec: LSTMSpec, select: str | None = None) -> CanonicalLSTM:
        """Read linen variables (or any tree holding them: select= picks by '/'-path if there are several)."""
        self.check_spec(spec)
        return _flax_trees.from_tree(LINEN, native, spec, select)[0]

    # Running --------------------------------------------------------------------------------
    def prepare(self, model: CanonicalLSTM, dtype="float32", device="cpu"):
        dtype = _jax.float_dtype(dtype)
        native = self.export(model, dtype=dtype)
        with _jax.dtype_scope(dtype):
            variables = _jax.put(dict(native), dtype, device)
        return {"spec": model.spec, "variables": variables, "dtype": dtype, "device": device}

    def run(self, prepared, x, h0, c0, *, batch_first=False) -> LSTMOutput:
        spec, dtype = prepared["spec"], prepared["dtype"]
        structure = _jax.folded_structure(spec)
        fn = _jax.compiled((self.name, self.cell, structure, batch_first),
                           lambda: build_forward(structure, self.cell, batch_first))
        with _jax.dtype_scope(dtype):
            xj, h0j, c0j = _jax.inputs(spec, x, h0, c0, batch_first, dtype, prepared["device"])
            return _jax.outputs(*fn(prepared["variables"], xj, h0j, c0j), dtype, self.name)

    def environment(self) -> dict[str, str]:
        import flax

        return {**_jax.environment(), "flax": flax.__version__, "cell": f"flax.linen.{self.cell}"}
