"""The comparison: what a failure says, and that it never broadcasts."""

from __future__ import annotations

import numpy as np

from harness import CanonicalLSTM, LSTMSpec
from harness.compare import TOLERANCES, compare, tolerance_for
from harness.outputs import LSTMOutput


def _pair():
    spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True)
    model = CanonicalLSTM.random(spec, 0)
    out = model.forward(*model.random_inputs(3, 4))
    return spec, out


def test_identical_outputs_pass():
    spec, out = _pair()
    assert compare(spec, out, out, tolerance_for("float32")).ok


def test_failure_names_the_path_counts_and_bounds():
    spec, out = _pair()
    h_n = out.h_n.copy()
    h_n[3, 2, 5] += 1e-3  # layer 1, backward
    result = compare(spec, LSTMOutput(out.y, h_n, out.c_n), out, tolerance_for("float32"))
    assert not result.ok
    msg = result.message(" (demo)")
    assert "1 of 10 outputs are not close to the oracle (demo)." in msg
    assert "h_n[layer=1, direction=backward] (shape (3, 7), index (b, j)):" in msg
    assert "Mismatched elements: 1 / 21 (4.8%)" in msg
    assert "Greatest absolute difference: 0.001 at index (2, 5) (up to 2e-06 allowed)" in msg
    assert "Greatest relative difference:" in msg and "(up to 2e-06 allowed)" in msg
    assert result.worst.path == "h_n[layer=1, direction=backward]" and result.worst.worst_index == (2, 5)


def test_shape_mismatch_is_reported_not_broadcast():
    spec, out = _pair()
    result = compare(spec, LSTMOutput(out.y[:, :1], out.h_n, out.c_n), out, tolerance_for("float32"))
    assert not result.ok
    assert "y: expected shape (4, 3, 14), got (4, 1, 14)" in result.message()


def test_nan_is_a_mismatch():
    spec, out = _pair()
    y = out.y.copy()
    y[0, 0, 0] = np.nan
    result = compare(spec, LSTMOutput(y, out.h_n, out.c_n), out, tolerance_for("float64"))
    assert not result.ok and "1 non-finite values" in result.message()


def test_every_bound_carries_its_evidence():
    for key, tol in TOLERANCES.items():
        assert tol.rtol > 0 and tol.atol > 0 and "measured" in tol.evidence, key
    assert tolerance_for("float64").atol <= 1e-12
