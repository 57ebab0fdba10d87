"""Matrix-product precision, set in one place for every framework that is loaded.

On recent NVIDIA GPUs, float32 matrix products silently run in TF32 (10-bit mantissa) in PyTorch's
cuDNN LSTM, TensorFlow and JAX, which measured as 2e-4 to 2e-3 of error on small LSTMs. Agreement
runs use "exact" (full float32) unless told otherwise; the mode in force is recorded with results.
"""

from __future__ import annotations

import sys

MODES = ("exact",)


def apply(mode: str = "exact") -> dict[str, str]:
    """Set the precision flags of every framework already imported; return what was set."""
    if mode not in MODES:
        raise ValueError(f"precision mode must be one of {MODES}, got {mode!r}")
    allow_tf32 = mode != "exact"
    state = {"precision": mode}
    if "torch" in sys.modules:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        torch.backends.cudnn.allow_tf32 = allow_tf32
        state["torch.allow_tf32"] = str(allow_tf32)
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(allow_tf32)
        state["tf.tensor_float_32"] = str(allow_tf32)
    if "jax" in sys.modules:
        import jax

        jax.config.update("jax_default_matmul_precision", "highest" if mode == "exact" else "default")
        state["jax_default_matmul_precision"] = "highest" if mode == "exact" else "default"
    return state
