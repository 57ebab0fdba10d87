"""`jax-cudnn`: jax.experimental.rnn.lstm, JAX's cuDNN LSTM (GPU only; both biases; float32).

Native parameters: the one flat weight vector jax.experimental.rnn takes (a NativeVector, a 1-D numpy
array). With pseudo-layers p = layer * D + direction it holds every pseudo-layer's matrices first and
all the biases after, not PyTorch's per-layer order:
    W_ih^0, W_hh^0, W_ih^1, W_hh^1, ..., b_ih^0, b_hh^0, b_ih^1, b_hh^1, ...
each matrix row-major in the canonical layout ([4H, in], [4H, H]), gate order i, f, g, o
(jax.experimental.rnn.unpack_lstm_weights reads it back; `swap_lstm_gates` there is for ROCm's order).

Support is decided from the devices present, before anything runs: the op has only cuDNN (and MIOpen)
lowerings, and on a CPU-only jaxlib it fails deep inside jaxlib (AttributeError: module
'jaxlib.gpu_rnn' has no attribute 'compute_rnn_workspace_reserve_space_sizes'). So device 'cpu' is
*unsupported* (the framework has no CPU path at all), and device 'cuda' where JAX sees no GPU is
*skipped* (it could run on a machine with one). float64 is unsupported: the module supports float32
only (its own TODO: "Add support for input and weight dtypes other than float32").
cuDNN's TF32 switch follows jax_default_matmul_precision ("highest" -> allow_tf32 off).
Per-example lengths are the op's own seq_lengths (int32, right padding). Padded steps of y: zeros, as
jax.experimental.rnn.lstm_ref (the reference JAX tests the cuDNN op against) writes them; NOT measured on
a GPU here.
"""

from __future__ import annotations

import numpy as np

from ..canonical import CanonicalLSTM, LayerWeights
from ..spec import LSTMSpec
from . import Capabilities, _jax
from ._names import take


class NativeVector(np.ndarray):
    """The flat cuDNN weight vector, plus what the export folded (see harness.backends.NativeDict)."""

    folded: tuple[str, ...] = ()


def layout(spec: LSTMSpec) -> list[tuple[str, int, tuple[int, ...]]]:
    """(canonical name, pseudo-layer, shape) of every piece of the flat vector, in order."""
    H = spec.hidden_size
    units = spec.units()
    mats = [(n, p, (4 * H, spec.layer_input_size(k) if n == "W_ih" else H))
            for p, (k, _) in enumerate(units) for n in ("W_ih", "W_hh")]
    return mats + [(n, p, (4 * H,)) for p in range(len(units)) for n in ("b_ih", "b_hh")]


class JaxCudnnBackend(_jax.JaxBackend):
    name = "jax-cudnn"
    framework = "jax.experimental.rnn"
    description = "jax.experimental.rnn.lstm (cuDNN)"
    capabilities = Capabilities(double_bias=True, dtypes=("float32",), devices=("cuda",), lengths="zeros")

    def supports(self, spec, dtype="float32", device="cpu", *, lengths=False):
        if device != "cuda":
            return ("jax.experimental.rnn.lstm runs only through cuDNN: it has no CPU lowering (on CPU it fails "
                    "inside jaxlib, AttributeError in jaxlib.gpu_rnn)")
        return super().supports(spec, dtype, device, lengths=lengths)

    # Conversion -----------------------------------------------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeVector:
        parts = [getattr(model.weights[model.spec.units()[p]], n).astype(dtype).ravel()
                 for n, p, _ in layout(model.spec)]
        return np.concatenate(parts).view(NativeVector)

    def import_(self, native, spec: LSTMSpec, select=None) -> CanonicalLSTM:
        """Read the flat weight vector (numpy or jax, 1-D)."""
        self.check_spec(spec)
        if select is not None:
            raise ValueError("jax-cudnn import: select= is not used; pass the LSTM's flat weight vector")
        pieces = layout(spec)
        size = sum(int(np.prod(shape)) for _, _, shape in pieces)
        flat = take("weights", native, (size,), "every W_ih and W_hh, then every b_ih and b_hh, flattened",
                    why=f"a 1-D vector of {size} values for spec {spec.features()}, input_size={spec.input_size}, "
                        f"hidden_size={spec.hidden_size}")
        fields: dict[int, dict[str, np.ndarray]] = {}
        at = 0
        for name, p, shape in pieces:
            n = int(np.prod(shape))
            fields.setdefault(p, {})[name] = flat[at:at + n].reshape(shape)
            at += n
        weights = {unit: LayerWeights(**fields[p]) for p, unit in enumerate(spec.units())}
        return CanonicalLSTM(spec, weights)

    # Running --------------------------------------------------------------------------------
    def _prepare(self, model: CanonicalLSTM, dtype="float32", device="cuda"):  # its only device
        return super()._prepare(model, dtype, device)

    def build_forward(self, structure: LSTMSpec, batch_first: bool, dtype: str):
        import jax.numpy as jnp
        from jax.experimental import rnn

        def forward(weights, x, h0, c0, lengths):
            xb = x if batch_first else jnp.swapaxes(x, 0, 1)  # the op is batch-first
            y, h_n, c_n = rnn.lstm(xb, h0, c0, weights, lengths, input_size=structure.input_size,
                                   hidden_size=structure.hidden_size, num_layers=structure.num_layers, dropout=0.0,
                                   bidirectional=structure.bidirectional)
            return (y if batch_first else jnp.swapaxes(y, 0, 1)), h_n, c_n

        return forward
