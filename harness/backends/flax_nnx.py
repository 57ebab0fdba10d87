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
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Backend, Capabilities, NativeDict, _flax_trees, _jax
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


def build_forward(spec: LSTMSpec, cell: str, batch_first: bool, dtype):
    """forward(params, x, h0, c0): a fresh model (traced once) updated with `params`, run layer by layer."""
    import jax.numpy as jnp
    from flax import nnx

    D = spec.num_directions

    def forward(params, x, h0, c0):
        model = build_model(spec, cell, batch_first, dtype)  # inside the trace: its own init is dead code
        nnx.update(model, params)
        layers = model.layers if spec.num_layers > 1 else [model]
        seq, h_n, c_n = x, [], []
        for k, layer in enumerate(layers):
            carries = [(c0[k * D + d], h0[k * D + d]) for d in range(D)]  # Flax carries (c, h)
            carry, seq = layer(seq, initial_carry=tuple(carries) if D == 2 else carries[0])
            for c, h in (carry if D == 2 else (carry,)):
                h_n.append(h)
                c_n.append(c)
        return seq, jnp.stack(h_n), jnp.stack(c_n)

    return forward


class FlaxNnxBackend(Backend):
    name = "flax-nnx"
    framework = "flax.nnx"
    description = "flax.nnx LSTMCell in nnx.RNN / nnx.Bidirectional"
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
    def prepare(self, model: CanonicalLSTM, dtype="float32", device="cpu"):
        dtype = _jax.float_dtype(dtype)
        native = self.export(model, dtype=dtype)
        with _jax.dtype_scope(dtype):
            params = _jax.put(dict(native), dtype, device)
        return {"spec": model.spec, "params": params, "dtype": dtype, "device": device}

    def run(self, prepared, x, h0, c0, *, batch_first=False) -> LSTMOutput:
        spec, dtype = prepared["spec"], prepared["dtype"]
        structure = _jax.folded_structure(spec)
        fn = _jax.compiled((self.name, self.cell, structure, batch_first, dtype),
                           lambda: build_forward(structure, self.cell, batch_first, dtype))
        with _jax.dtype_scope(dtype):
            xj, h0j, c0j = _jax.inputs(spec, x, h0, c0, batch_first, dtype, prepared["device"])
            return _jax.outputs(*fn(prepared["params"], xj, h0j, c0j), dtype, self.name)

    def environment(self) -> dict[str, str]:
        import flax

        return {**_jax.environment(), "flax": flax.__version__, "cell": f"flax.nnx.{self.cell}"}
