"""Every catalogue case on every backend, device and dtype, against the float64 oracle.

The outcome of each is one of pass / fail / unsupported / not installed / skipped (no device) /
error; the two kinds of skip carry distinct prefixes so they are never confused.
"""

from __future__ import annotations

import pytest

from harness.results import ERROR, FAIL, NOT_INSTALLED, SKIPPED, UNSUPPORTED
from harness.catalogue import SIZE_SWEEP
from harness.runner import run_case


def test_agreement(case, backend_name, device, dtype, mode, record_result):
    outcome = run_case(case, backend_name, dtype, device, mode)
    record_result(outcome.result)
    r = outcome.result
    if r.status in (UNSUPPORTED, NOT_INSTALLED, SKIPPED):
        pytest.skip(f"{r.status}: {r.reason}")
    if r.status in (FAIL, ERROR):
        pytest.fail(f"{r.status}: {r.reason}", pytrace=False)


@pytest.mark.parametrize("sweep_case", SIZE_SWEEP, ids=[c.name for c in SIZE_SWEEP])
def test_agreement_across_sizes(sweep_case, backend_name, mode, record_result):
    """The float32 bound holds beyond the small catalogue shapes (hidden 128, 300 steps, 3 bidi layers)."""
    test_agreement(sweep_case, backend_name, "cpu", "float32", mode, record_result)
