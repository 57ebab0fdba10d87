"""LSTMOutput: what every backend returns, in one layout (PyTorch's), as numpy arrays.

    y    [T, B, D * out]  (or [B, T, D * out] when batch_first); out = proj_size or hidden_size.
         The forward direction fills y[..., :out], the backward direction y[..., out:], both in
         the original time order.
    h_n  [L * D, B, out]  row layer * D + direction, the final h of each (layer, direction);
                          for the backward direction "final" means after processing t = 0.
    c_n  [L * D, B, H]    the same for c.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LSTMOutput(NamedTuple):
    y: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray

    @classmethod
    def of(cls, y, h_n, c_n) -> "LSTMOutput":
        """Convert any framework's arrays (anything numpy can read) to numpy."""
        return cls(*(np.asarray(a) for a in (y, h_n, c_n)))
