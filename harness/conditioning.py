"""How sensitive the oracle's outputs are to rounding errors of the run's dtype: the error any correct
implementation may show on this very problem. Imports no framework.

Over a long sequence an LSTM can be ill-conditioned: with some weights a change the size of one float32
rounding step grows along the recurrence until y moves by 1e-4..1e-3 (measured: 3 of 100 weight draws of
large-cell-state's spec at T = 1000-2000; harness.compare.GROWTH_EVIDENCE). No fixed bound covers those and still
catches a subtle bug elsewhere; this measures it per run instead: the float64 oracle run again with every weight
moved by one unit roundoff of the dtype (random signs, a fixed seed), and the largest change in y and h_n kept.
harness.compare widens a bound's atol to SENSITIVITY_MARGIN times this, beyond the work the tables were measured on.
"""

from __future__ import annotations

import numpy as np

from .canonical import CanonicalLSTM
from .compare import growth
from .outputs import LSTMOutput
from .precision import dtype_name

# Unit roundoff (half the distance from 1 to the next number) per dtype.
UNIT_ROUNDOFF = {"float64": 2.0 ** -53, "float32": 2.0 ** -24, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}
DRAWS = 2  # perturbed oracle runs per estimate: each costs one oracle run


def perturbed(model: CanonicalLSTM, dtype, rng: np.random.Generator) -> CanonicalLSTM:
    """`model` with every weight moved by one unit roundoff of `dtype`, up or down at random."""
    u = UNIT_ROUNDOFF[dtype_name(dtype)]
    out = model.copy()
    for lw in out.weights.values():
        for name, value in lw.items():
            setattr(lw, name, value * (1.0 + u * rng.choice((-1.0, 1.0), value.shape)))
    return out


def sensitivity(model: CanonicalLSTM, inputs, expected: LSTMOutput, dtype, *, batch_first: bool = False,
                lengths=None, padding: str = "zeros") -> float:
    """The largest |change| of y and h_n over DRAWS perturbed oracle runs (with the run's lengths and padding),
    where the work (steps, the oracle's |c|) goes beyond what the tolerance tables were measured on
    (harness.compare.growth); else 0.0."""
    steps = np.shape(expected.y)[1 if batch_first else 0]
    if growth(steps, float(np.max(np.abs(expected.c_n), initial=0.0))) == (1.0, 1.0):
        return 0.0
    rng = np.random.default_rng(0)  # the same bound for the same run, every time
    worst = 0.0
    for _ in range(DRAWS):
        out = perturbed(model, dtype, rng).forward(*inputs, batch_first=batch_first, lengths=lengths, padding=padding)
        worst = max(worst, float(np.max(np.abs(out.y - expected.y))), float(np.max(np.abs(out.h_n - expected.h_n))))
    return worst
