"""The one check of an LSTM's run-time inputs (x, h0, c0, lengths) against its spec.

Both the oracle and every backend (Backend.run, before the backend's own `_run`) call `check_inputs`, so a
bad shape, a non-float dtype, a missing time step, a non-finite value or a bad length gets the same named
error everywhere, and nothing is broadcast: a batch-1 state is not spread over a batch of 3, extra layer
entries in h0 are not ignored.

lengths (optional): one integer per batch element, the number of valid steps at the START of its
sequence (right padding: example b is x[:lengths[b], b], the steps after it are padding), each in 1..T.
An empty sequence (0) is refused by name, as is a float array: a length is a count, and 3.0 or 2.5 from a
mask summed in floating point is a bug upstream, not a length.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .spec import LSTMSpec


class Inputs(NamedTuple):
    """Checked inputs, in the caller's dtype and layout (x [T, B, in], or [B, T, in] when batch_first)."""

    x: np.ndarray
    h0: np.ndarray | None  # None only when both states were None (each framework's zero state)
    c0: np.ndarray | None
    steps: int
    batch: int
    lengths: np.ndarray | None = None  # int64 [B], each in 1..steps; None: every sequence runs all steps


def is_float(dtype: np.dtype) -> bool:
    """A real floating dtype: numpy's (float16/32/64) or ml_dtypes' bfloat16 (which numpy files as kind 'V')."""
    return np.issubdtype(dtype, np.floating) or dtype.name == "bfloat16"


def first_nonfinite(arr: np.ndarray) -> tuple[tuple[int, ...], float, int] | None:
    """(index, value, count) of the first NaN or infinity in `arr` (C order), or None when all are finite."""
    bad = ~np.isfinite(arr.astype(np.float64))
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), arr.shape))
    return index, float(arr[index]), int(bad.sum())


def _first_nonfinite(name: str, arr: np.ndarray) -> None:
    found = first_nonfinite(arr)
    if found:
        index, value, count = found
        raise ValueError(f"{name}: expected finite values, got {count} non-finite "
                         f"(the first, {value!r}, at index {index})")


def check_lengths(lengths, steps: int, batch: int) -> np.ndarray | None:
    """lengths as an int64 array [batch] of values in 1..steps (see the module docstring), or None."""
    if lengths is None:
        return None
    if hasattr(lengths, "detach"):  # a torch tensor, without importing torch
        lengths = lengths.detach().cpu().numpy()
    arr = np.asarray(lengths)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"lengths: expected integers (one step count per batch element), got dtype {arr.dtype}"
                        + (f" {arr.tolist()}" if arr.size <= 16 else ""))
    if arr.shape != (batch,):
        raise ValueError(f"lengths: expected shape ({batch},), one length per batch element of x, got {arr.shape}")
    for bad, what in ((arr == 0, "0 (an empty sequence: drop it from the batch)"),
                      (arr < 0, "a negative length"), (arr > steps, f"more than the {steps} steps of x")):
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"lengths: expected each length in 1..{steps} (right padding: the valid steps come "
                             f"first), got {int(arr[i])} at index {i}: {what}")
    return arr.astype(np.int64)


def check_fixed_lengths(fixed, lengths: np.ndarray | None) -> None:
    """A model whose source fixed its sequence lengths (an ONNX constant sequence_lens) runs only with those."""
    if fixed is None:
        return
    fixed = np.asarray(fixed, dtype=np.int64)
    if lengths is None or not np.array_equal(fixed, lengths):
        got = "none" if lengths is None else lengths.tolist()
        raise ValueError(f"lengths: expected {fixed.tolist()}, the lengths the model fixes (a constant "
                         f"sequence_lens in the model it was imported from), got {got}")


def check_inputs(spec: LSTMSpec, x, h0=None, c0=None, *, batch_first: bool = False, lengths=None) -> Inputs:
    """Validate x, h0, c0 (and lengths) against `spec`; raise ValueError/TypeError naming the input, expected
    and actual.

    x: [T, B, input_size] ([B, T, input_size] when batch_first), T >= 1 and B >= 1.
    h0: [num_layers * num_directions, B, proj_size or hidden_size]; c0: [num_layers * num_directions, B,
    hidden_size]. None is the zero state; where only one of them is given, the other is zeros of its dtype.
    lengths: None, or [B] integers in 1..T (see the module docstring); returned as int64.
    """
    layout = "[B, T, input_size]" if batch_first else "[T, B, input_size]"
    if x is None:
        raise TypeError(f"x: expected a 3-D array {layout}, got None")
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x: expected a 3-D array {layout}, got shape {x.shape}")
    if x.shape[-1] != spec.input_size:
        raise ValueError(f"x: expected last dimension input_size={spec.input_size}, got shape {x.shape}")
    if not is_float(x.dtype):
        raise TypeError(f"x: expected a floating-point array, got dtype {x.dtype}")
    T, B = (x.shape[1], x.shape[0]) if batch_first else x.shape[:2]
    if T < 1 or B < 1:
        raise ValueError(f"x: expected at least one time step and one batch element {layout}, got shape {x.shape}")
    _first_nonfinite("x", x)
    n = spec.num_layers * spec.num_directions
    states = []
    for name, value, width in (("h0", h0, spec.output_size), ("c0", c0, spec.hidden_size)):
        if value is None:
            states.append(None)
            continue
        arr = np.asarray(value)
        shape = (n, B, width)
        if arr.shape != shape:
            raise ValueError(f"{name}: expected shape {shape} [num_layers * num_directions, batch, {width}], "
                             f"got {arr.shape}")
        if not is_float(arr.dtype):
            raise TypeError(f"{name}: expected a floating-point array, got dtype {arr.dtype}")
        _first_nonfinite(name, arr)
        states.append(arr)
    h0, c0 = states
    if (h0 is None) != (c0 is None):  # one given: the other is the zero state, in the given one's dtype
        dtype = (h0 if h0 is not None else c0).dtype
        h0 = np.zeros((n, B, spec.output_size), dtype) if h0 is None else h0
        c0 = np.zeros((n, B, spec.hidden_size), dtype) if c0 is None else c0
    return Inputs(x, h0, c0, T, B, check_lengths(lengths, T, B))
