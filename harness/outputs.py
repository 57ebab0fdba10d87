"""LSTMOutput: what every backend returns, in one layout (PyTorch's), as numpy arrays.

    y    [T, B, D * out]  (or [B, T, D * out] when batch_first); out = proj_size or hidden_size.
         The forward direction fills y[..., :out], the backward direction y[..., out:], both in
         the original time order.
    h_n  [L * D, B, out]  row layer * D + direction, the final h of each (layer, direction);
                          for the backward direction "final" means after processing t = 0.
    c_n  [L * D, B, H]    the same for c.

With per-example lengths (right padding), h_n and c_n are the states at each example's last valid step
(for the backward direction: after t = 0, having started at the last valid step), and y at the padded
steps t >= lengths[b] holds what the framework puts there, one of PADDINGS:
    "zeros"      zeros;
    "carry"      the forward direction's last valid output, repeated (one direction only);
    "undefined"  anything (e.g. the cell run on over the padding): not compared.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

PADDINGS = ("zeros", "carry", "undefined")  # what y holds at padded steps (see the module docstring)


def check_padding(padding: str, spec) -> None:
    """A ValueError naming `padding` unless it is one of PADDINGS that applies to `spec`."""
    if padding not in PADDINGS:
        raise ValueError(f"padding: expected one of {', '.join(PADDINGS)}, got {padding!r}")
    if padding == "carry" and spec.bidirectional:
        raise ValueError("padding: 'carry' is a one-direction convention (the forward output carried past the "
                         "last valid step); a bidirectional spec has none")


class LSTMOutput(NamedTuple):
    y: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray

    @classmethod
    def of(cls, y, h_n, c_n) -> "LSTMOutput":
        """Convert any framework's arrays (anything numpy can read) to numpy."""
        return cls(*(np.asarray(a) for a in (y, h_n, c_n)))
