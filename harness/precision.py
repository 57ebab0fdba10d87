"""Precision modes and dtypes, set in one place for every framework that is loaded.

On recent NVIDIA GPUs, float32 matrix products silently run in TF32 (10-bit mantissa) in PyTorch's
cuDNN LSTM, TensorFlow and JAX, which measured as 2e-4 to 2e-3 of error on small LSTMs. So the
precision is controlled, never inherited, and the mode in force is recorded with every result:

  exact  float32 products in full float32 (TF32 off everywhere), fp16/bf16 GEMM reductions in
         float32 (torch). The default, and the only mode the agreement tolerances of float32 assume.
  tf32   labelled fast math: TF32 allowed in every framework that has it; its own tolerance.

float16 and bfloat16 are dtypes (with their own tolerances), run under either mode.

Flags are set per *runtime* (the framework that executes: torch, tensorflow, jax, onnxruntime), so a
backend that runs on another framework's runtime (Keras 3 on its backend) is covered by the same
code. A backend whose runtime takes the setting per object (an ONNX Runtime session's `use_tf32`
provider option, jax.experimental.rnn's `precision=`) reads `tf32_allowed()` when it builds it.

torch 2.13 has two APIs for TF32: the allow_tf32 flags and torch.backends.*.fp32_precision. They are
controlled one way, through allow_tf32, and both views are read back and recorded. Not the newer
one: measured on torch 2.13.0, setting cudnn.{rnn,conv}.fp32_precision = "ieee" leaves the flag behind
allow_tf32 at True, and torch's own code that still reads it (torch.backends.cudnn.flags(), used by
torch.onnx.export) then raises "you have used a mix of the legacy and new APIs". Setting allow_tf32
keeps both views consistent (False shows as fp32_precision "none" for cuDNN, "ieee" for cuBLAS).
Note that torch.backends.cudnn.flags() itself defaults to allow_tf32=True inside its block.
"""

from __future__ import annotations

import sys

import numpy as np

MODES = ("exact", "tf32")
DTYPES = ("float32", "float64", "float16", "bfloat16")

_current = "exact"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"precision mode must be one of {MODES}, got {mode!r}")
    return mode


def tf32_allowed(mode: str | None = None) -> bool:
    """Whether `mode` (default: the mode in force) lets float32 products run in TF32."""
    return check_mode(_current if mode is None else mode) == "tf32"


def current() -> str:
    """The mode the last apply() put in force."""
    return _current


def check_dtype(name: str) -> str:
    """A dtype name from a command line or an option: one of DTYPES (whether this install can represent it is
    dtype_missing's question, answered per cell as 'not installed')."""
    if name not in DTYPES:
        raise ValueError(f"dtype: expected one of {DTYPES}, got {name!r}")
    return name


def dtype_missing(dtype) -> str | None:
    """None if numpy can hold `dtype` here, else why not with what to install (bfloat16 needs ml_dtypes)."""
    if "bfloat16" not in str(dtype if isinstance(dtype, str) else getattr(dtype, "__name__", dtype)):
        return None
    try:
        import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy)
    except ImportError as exc:
        from . import extras

        return "dtype bfloat16 needs the ml_dtypes package (numpy has no bfloat16)" + extras.hint("ml_dtypes") \
            + f" ({type(exc).__name__}: {exc})"
    return None


def dtype_name(dtype) -> str:
    """Canonical dtype name ("float32", ..., "bfloat16"); bfloat16 needs ml_dtypes (numpy has none)."""
    text = dtype if isinstance(dtype, str) else getattr(dtype, "__name__", str(dtype))
    if "bfloat16" in str(text):
        missing = dtype_missing("bfloat16")
        if missing:
            raise ValueError(missing)
        return "bfloat16"
    try:
        name = str(np.dtype(dtype))
    except TypeError as exc:
        raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}") from exc
    if name not in DTYPES:  # a valid numpy dtype the harness has no meaning for (int32, complex64, ...)
        raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
    return name


def numpy_dtype(dtype) -> np.dtype:
    return np.dtype(dtype_name(dtype))


# Per runtime: a setter (mode -> None) and a reader (-> the flags actually in force). -------------
def _torch_set(mode: str) -> None:
    import torch

    tf32 = mode == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32  # cuBLAS float32 products
    torch.backends.cudnn.allow_tf32 = tf32  # cuDNN, the LSTM kernel included
    # cuBLAS may reduce float16/bfloat16 GEMMs in reduced precision (split-K); not in "exact".
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = tf32
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = tf32


def _torch_state() -> dict[str, str]:
    import torch

    b = torch.backends
    return {
        "torch.backends.cudnn.allow_tf32": str(b.cudnn.allow_tf32),
        "torch.backends.cuda.matmul.allow_tf32": str(b.cuda.matmul.allow_tf32),
        # The same settings as torch's newer API shows them ("none" = inherit: no TF32).
        "torch.backends.cudnn.rnn.fp32_precision": b.cudnn.rnn.fp32_precision,
        "torch.backends.cuda.matmul.fp32_precision": b.cuda.matmul.fp32_precision,
        "torch.cuda.matmul.allow_fp16_reduced_precision_reduction":
            str(b.cuda.matmul.allow_fp16_reduced_precision_reduction),
        "torch.cuda.matmul.allow_bf16_reduced_precision_reduction":
            str(b.cuda.matmul.allow_bf16_reduced_precision_reduction),
    }


def _tf_set(mode: str) -> None:
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(mode == "tf32")


def _tf_state() -> dict[str, str]:
    import tensorflow as tf

    return {"tf.tensor_float_32_execution": str(tf.config.experimental.tensor_float_32_execution_enabled())}


def _jax_set(mode: str) -> None:
    import jax

    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if mode == "tf32" else "highest")


def _jax_state() -> dict[str, str]:
    import jax

    return {"jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision)}


RUNTIMES = {"torch": (_torch_set, _torch_state), "tensorflow": (_tf_set, _tf_state), "jax": (_jax_set, _jax_state)}


def apply(mode: str = "exact") -> dict[str, str]:
    """Put `mode` in force in every runtime already imported; return the flags as read back."""
    global _current
    check_mode(mode)
    for name, (setter, _) in RUNTIMES.items():
        if name in sys.modules:
            setter(mode)
    _current = mode
    return state()


def state() -> dict[str, str]:
    """The mode and every loaded runtime's precision flags as they are now (read back, not assumed)."""
    out = {"precision": _current}
    for name, (_, reader) in RUNTIMES.items():
        if name in sys.modules:
            out.update(reader())
    return out
