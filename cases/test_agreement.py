"""Every catalogue case on every backend, device and dtype, against the float64 oracle.

The outcome of each is one of pass / fail / unsupported / not installed / skipped (no device) /
error; the two kinds of skip carry distinct prefixes so they are never confused.
"""

from __future__ import annotations

import pytest

from harness.results import ERROR, FAIL, NOT_INSTALLED, SKIPPED, UNSUPPORTED
from harness.runner import run_case


def test_agreement(case, backend_name, device, dtype, mode, record_result):
    outcome = run_case(case, backend_name, dtype, device, mode)
    record_result(outcome.result)
    r = outcome.result
    if r.status in (UNSUPPORTED, NOT_INSTALLED, SKIPPED):
        pytest.skip(f"{r.status}: {r.reason}")
    if r.status in (FAIL, ERROR):
        pytest.fail(f"{r.status}: {r.reason}", pytrace=False)
