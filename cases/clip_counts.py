"""The oracle's np.clip, counted: for the guards that a clip case's clips really bind on its data."""

from __future__ import annotations

import numpy as np


def record_clips(monkeypatch) -> list[tuple[float, int, int]]:
    """From now on (for the test), every np.clip the oracle calls appends (upper bound, values it moved, values)
    to the returned list, in call order."""
    from harness import oracle

    calls: list[tuple[float, int, int]] = []

    class CountingNumpy:  # numpy for the oracle, with a counting clip
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def clip(a, lo, hi):
            a = np.asarray(a)
            calls.append((hi, int(np.count_nonzero((a < lo) | (a > hi))), a.size))
            return np.clip(a, lo, hi)

    monkeypatch.setattr(oracle, "np", CountingNumpy())
    return calls
