"""TensorFlow's one LSTM kernel [in + H_rec, 4H], applied to concat([x, h_prev]) (TF1 cells, the fused
BlockLSTM ops), in a framework's gate order; to and from the canonical W_ih [4H, in], W_hh [4H, H_rec].

Gate orders are strings over the canonical letters i, f, g, o: TF1's i, j, f, o and BlockLSTM's i, c, f, o
are both "igfo" (j and c are the canonical g); BlockLSTMV2's i, f, c, o is the canonical "ifgo".
"""

from __future__ import annotations

import numpy as np

from ..canonical import GATES


def _rows(order: str, H: int) -> np.ndarray:
    """Canonical row indices, in the framework's order: framework_rows = canonical_rows[_rows(order, H)]."""
    if sorted(order) != sorted(GATES):
        raise ValueError(f"gate order must be a permutation of {''.join(GATES)}, got {order!r}")
    return np.concatenate([np.arange(H) + GATES.index(g) * H for g in order])


def to_kernel(W_ih: np.ndarray, W_hh: np.ndarray, order: str) -> np.ndarray:
    """[in + H_rec, 4H]: the input rows first, then the recurrent rows, gate blocks in `order`."""
    rows = _rows(order, W_ih.shape[0] // 4)
    return np.concatenate([W_ih[rows].T, W_hh[rows].T], axis=0)


def from_kernel(kernel: np.ndarray, input_size: int, order: str) -> tuple[np.ndarray, np.ndarray]:
    """(W_ih, W_hh) in canonical layout from a kernel whose first `input_size` rows read x."""
    rows = np.argsort(_rows(order, kernel.shape[1] // 4))  # the inverse permutation
    return kernel[:input_size].T[rows], kernel[input_size:].T[rows]


def to_bias(b: np.ndarray, order: str) -> np.ndarray:
    return b[_rows(order, b.shape[0] // 4)]


def from_bias(b: np.ndarray, order: str) -> np.ndarray:
    return b[np.argsort(_rows(order, b.shape[0] // 4))]
