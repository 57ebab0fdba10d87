"""TensorFlow's one LSTM kernel [in + H_rec, 4H], applied to concat([x, h_prev]) (TF1 cells, the fused
BlockLSTM ops), in a framework's gate order; to and from the canonical W_ih [4H, in], W_hh [4H, H_rec],
and with its one bias (and peephole diagonals) read back as one canonical (layer, direction).

Gate orders are strings over the canonical letters i, f, g, o: TF1's i, j, f, o and BlockLSTM's i, c, f, o
are both "igfo" (j and c are the canonical g); BlockLSTMV2's i, f, c, o is the canonical "ifgo".
"""

from __future__ import annotations

import numpy as np

from ..canonical import GATES, LayerWeights
from ..spec import LSTMSpec


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


def layer_weights(kernel: np.ndarray, bias: np.ndarray, spec: LSTMSpec, layer: int, order: str, bias_name: str,
                  peepholes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> LayerWeights:
    """One (layer, direction) from a kernel and its one bias (canonical b_ih; b_hh zero), plus the peephole
    diagonals (w_i, w_f, w_o) where given. A nonzero bias under spec.bias='none' is refused, as `bias_name`."""
    W_ih, W_hh = from_kernel(kernel, spec.layer_input_size(layer), order)
    b = from_bias(bias, order)
    if spec.bias == "none" and np.any(b):
        raise ValueError(f"{bias_name} is nonzero, but spec.bias='none'")
    lw = LayerWeights(W_ih=W_ih, W_hh=W_hh, b_ih=b, b_hh=np.zeros(b.shape[0]))
    if peepholes is not None:
        lw.w_i, lw.w_f, lw.w_o = peepholes
    return lw
