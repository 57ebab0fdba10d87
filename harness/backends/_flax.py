"""What the flax.linen and flax.nnx backends share besides their parameter trees (harness.backends._flax_trees):
the choice of cell, and running the stacked nn.RNN / nn.Bidirectional layers from the harness's h0, c0."""

from __future__ import annotations

from typing import Callable

from . import Capabilities, _jax
from ._flax_trees import FUSED, PER_GATE


class FlaxBackend(_jax.JaxBackend):
    """A Flax API's LSTMCell (default) or OptimizedLSTMCell: `cell` selects the compiled program too."""

    capabilities = Capabilities(devices=("cpu", "cuda"), lengths="undefined")  # see run_layers

    def __init__(self, cell: str = PER_GATE):
        if cell not in (PER_GATE, FUSED):
            raise ValueError(f"cell: expected {PER_GATE!r} or {FUSED!r}, got {cell!r}")
        self.cell = cell

    def program_key(self) -> tuple:
        return (self.name, self.cell)

    def environment(self) -> dict[str, str]:
        import flax

        return {**super().environment(), "flax": flax.__version__, "cell": f"{self.framework}.{self.cell}"}


def run_layers(layers: list[Callable], num_directions: int, x, h0, c0, lengths=None):
    """(y, h_n, c_n) of Flax RNN (or Bidirectional) layers run one after another, each called as
    layer(seq, initial_carry=..., seq_lengths=lengths) -> (carry, seq). Layer k starts from h0/c0[k * D + d];
    Flax carries (c, h), and a Bidirectional layer a (forward, backward) pair of them. With seq_lengths Flax
    keeps each carry at its last valid step and runs the backward direction from there, but leaves y at
    padded steps as the cell computed it over the padding (measured): "undefined"."""
    import jax.numpy as jnp

    D = num_directions
    seq, h_n, c_n = x, [], []
    for k, layer in enumerate(layers):
        carries = [(c0[k * D + d], h0[k * D + d]) for d in range(D)]
        carry, seq = layer(seq, initial_carry=tuple(carries) if D == 2 else carries[0], seq_lengths=lengths)
        for c, h in (carry if D == 2 else (carry,)):
            h_n.append(h)
            c_n.append(c)
    return seq, jnp.stack(h_n), jnp.stack(c_n)
