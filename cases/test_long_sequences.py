"""Long sequences with a large cell state (catalogue.LONG_SEQUENCES: large-cell-state's spec, |c| ~ 10, up to
T = 5000): correct backends pass under the bound that follows the work (harness.compare.growth and the oracle's
sensitivity), and the negative controls' porting mistakes still fail at every length.

The default run checks torch at T = 2000 and the mistakes on the oracle itself; `pytest -m slow` runs every
backend at every length and every mistake on every backend.
"""

from __future__ import annotations

import dataclasses

import pytest

from harness import conditioning
from harness.catalogue import LONG_SEQUENCES, get_case
from harness.compare import compare, growth, tolerance_for
from harness.results import FAIL, NOT_INSTALLED, PASS, SKIPPED, UNSUPPORTED
from harness.runner import oracle_for, run_case
from test_negative_controls import MISTAKES

LENGTHS = [c for c in LONG_SEQUENCES if c.name.startswith("large-cell-state-")]
UNIDIRECTIONAL_MISTAKES = [m for m in MISTAKES if not get_case(m.case).spec.bidirectional]


def long(case, steps: int, spec=None):
    """`case` (its spec, unless given) over `steps` steps, batch 2."""
    return dataclasses.replace(case, name=f"{case.name}-{steps}", steps=steps, batch=2, spec=spec or case.spec)


def _ran(r):
    if r.status in (UNSUPPORTED, NOT_INSTALLED, SKIPPED):
        pytest.skip(f"{r.status}: {r.reason}")
    return r


def test_torch_agrees_over_2000_steps_with_c_near_10():
    r = _ran(run_case(get_case("large-cell-state-2000"), "torch", "float32").result)
    assert r.status == PASS, r.reason


def test_the_long_cases_are_long_with_a_large_cell_state():
    model, inputs, expected = oracle_for(get_case("large-cell-state-2000"), "float32")
    assert expected.y.shape[0] == 2000 and 5 < abs(expected.c_n).max() < 20
    assert growth(2000, abs(expected.c_n).max())[0] > 10  # the bound does widen here


@pytest.fixture(scope="module")
def oracle_2000():
    """large-cell-state-2000's oracle run, its sensitivity and the float32 bound, once for the mistakes below."""
    case = get_case("large-cell-state-2000")
    model, inputs, expected = oracle_for(case, "float32")
    return case, model, inputs, expected, conditioning.sensitivity(model, inputs, expected, "float32")


def test_the_oracle_passes_its_own_long_run_exactly(oracle_2000):
    case, model, inputs, expected, sensitivity = oracle_2000
    result = compare(case.spec, model.forward(*inputs), expected, tolerance_for("float32"), sensitivity=sensitivity)
    assert result.ok and result.worst.max_abs == 0.0


@pytest.mark.parametrize("mistake", UNIDIRECTIONAL_MISTAKES, ids=[m.mistake for m in UNIDIRECTIONAL_MISTAKES])
def test_the_porting_mistakes_fail_over_2000_steps(mistake, oracle_2000):
    """Each mistake, made by the oracle itself on the long case (its spec has both biases and forget_bias 3), fails
    under the widened bound, at the output the mistake touches."""
    case, model, inputs, expected, sensitivity = oracle_2000
    hooks = mistake.hooks
    subject = hooks["model_hook"](model.copy()) if hooks["model_hook"] else model
    actual = subject.forward(*inputs)
    if hooks["output_hook"]:
        actual = hooks["output_hook"](actual)
    result = compare(case.spec, actual, expected, tolerance_for("float32"), sensitivity=sensitivity)
    assert not result.ok
    assert any(p.path.startswith(mistake.caught_at) for p in result.paths if p.mismatched or p.error)


# Slow: every backend, every length; every mistake on every backend at the longest ----------------------------
@pytest.mark.slow
@pytest.mark.parametrize("long_case", LENGTHS + [get_case("larger-cell-state-300")], ids=lambda c: c.name)
def test_every_backend_agrees_over_long_sequences(long_case, backend_name, dtype):
    r = _ran(run_case(long_case, backend_name, dtype).result)
    assert r.status == PASS, r.reason


@pytest.mark.slow
@pytest.mark.parametrize("steps", [1000, 5000])
@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.mistake for m in MISTAKES])
def test_every_mistake_fails_on_every_backend_at_every_length(mistake, steps, backend_name):
    """Unidirectional mistakes on large-cell-state's spec; the bidirectional ones on their own case's spec."""
    base = get_case(mistake.case)
    spec = base.spec if base.spec.bidirectional or mistake.case == "bidirectional-2layer" else None
    case = long(get_case("large-cell-state") if spec is None else base, steps, spec)
    outcome = run_case(case, backend_name, "float32", **mistake.hooks)
    r = _ran(outcome.result)
    assert r.status == FAIL, f"{mistake.mistake} at T = {steps} on {backend_name} was not caught: {r.reason}"
    assert any(p.path.startswith(mistake.caught_at) for p in outcome.comparison.paths if p.mismatched or p.error)
