"""Negative controls: each backend, fed a classic porting mistake, must FAIL agreement.

These mistakes keep every shape right, so only the numbers can catch them. Each control injects
the bug between the oracle and the real framework (in the weights the backend receives, or in
the outputs it returns) and asserts that the comparison fails, at the output the bug touches.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
import pytest
from misplaced_gate_clip import WRONG_PLACES
from misplaced_gate_clip import forward as misplaced_forward

from harness import mistakes
from harness.backends import get
from harness.canonical import CanonicalLSTM
from harness.catalogue import get_case
from harness.compare import compare, padded_steps, tolerance_for
from harness.outputs import LSTMOutput
from harness.results import NOT_INSTALLED, SKIPPED, UNSUPPORTED
from harness.runner import oracle_for, run_case
from harness.spec import LSTMSpec


@dataclass(frozen=True)
class Control:
    """A catalogue mistake planted on a case, and the output it must be caught at."""

    mistake: str  # a harness.mistakes name
    case: str
    caught_at: str  # a prefix of the output path that must be reported as mismatched

    @property
    def hooks(self) -> dict:
        m = mistakes.get(self.mistake)
        spec = get_case(self.case).spec
        return {"model_hook": m.plant if m.weights else None,
                "output_hook": (lambda out: m.plant_outputs(out, spec)) if m.outputs else None}


# One per family of the catalogue that a framework's run can carry (weights or outputs), on every backend;
# the rest of the catalogue is caught and named framework-free below.
MISTAKES = (
    Control("gate-order-igfo", "plain", "y"),
    Control("bias-b_hh-dropped", "cudnn-double-bias", "y"),
    Control("forget-bias-twice", "forget-bias", "y"),
    Control("kernel-recurrent-blocks-transposed", "plain", "y"),
    Control("directions-swapped", "bidirectional", "y[direction=forward]"),
    Control("states-swapped-out", "plain", "h_n"),
    Control("y-halves-swapped", "bidirectional", "y[direction=forward]"),
    Control("h_n-direction-major", "bidirectional-2layer", "h_n[layer=0, direction=backward]"),
    Control("backward-in-processing-order", "bidirectional", "y[direction=backward]"),
)


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.mistake for m in MISTAKES])
def test_mistake_is_caught(mistake, backend_name):
    case = get_case(mistake.case)
    outcome = run_case(case, backend_name, "float32", **mistake.hooks)
    r = outcome.result
    if r.status in (UNSUPPORTED, NOT_INSTALLED, SKIPPED):
        pytest.skip(f"{r.status}: {r.reason}")
    assert r.status == "fail", f"{mistake.mistake} on {backend_name} was not caught: {r.status} {r.reason}"
    bad = [p.path for p in outcome.comparison.paths if p.mismatched or p.error]
    assert any(p.startswith(mistake.caught_at) for p in bad), (mistake.caught_at, bad)
    # The same run without the mistake passes: the failure is the mistake's, not the case's.
    assert run_case(case, backend_name, "float32").result.status == "pass"


def _passing_run(case_name, backend_name):
    """The case and its float32 run on the backend, which must pass (skipped where it cannot run)."""
    case = get_case(case_name)
    outcome = run_case(case, backend_name, "float32")
    r = outcome.result
    if r.status in (UNSUPPORTED, NOT_INSTALLED, SKIPPED):
        pytest.skip(f"{r.status}: {r.reason}")
    assert r.status == "pass", r.reason
    return case, outcome


def test_output_peephole_reading_old_c_is_caught(backend_name):
    """An output gate that peeks at c_{t-1} instead of c_t (the catalogue's forward variant): compare each
    peephole-capable backend with it; the difference must exceed the float32 tolerance."""
    case, outcome = _passing_run("peephole", backend_name)
    model, (x, h0, c0), _ = oracle_for(case, "float32")
    buggy = mistakes.get("peephole-output-reads-old-c").predict(model, x, h0, c0)
    result = compare(case.spec, outcome.actual, buggy, tolerance_for("float32"))
    assert not result.ok
    assert any(p.mismatched for p in result.paths if p.path.startswith("y"))


def test_misplaced_gate_clip_is_caught(backend_name):
    """ONNX's clip bounds each gate pre-activation after its peephole term and forget_bias, and never c. Each
    backend that runs the gate-clip case must disagree with every misplaced clip, and with the clip taken for
    TF1's cell_clip (the mix-up the two names invite)."""
    case, outcome = _passing_run("gate-clip", backend_name)
    model, (x, h0, c0), expected = oracle_for(case, "float32")
    in_place = misplaced_forward(model, x, h0, c0, None)  # the variants' own loop, clip in its place: the oracle
    # float64 re-association only: measured 8.3e-17 (the case's fixed weights)
    assert all(np.allclose(a, b, rtol=0, atol=1e-15) for a, b in zip(in_place, expected))
    wrong = {where: misplaced_forward(model, x, h0, c0, where) for where in WRONG_PLACES}
    wrong["as-cell-clip"] = CanonicalLSTM(case.spec.replace(gate_clip=None, cell_clip=case.spec.gate_clip),
                                          model.weights).forward(x, h0, c0)
    for where, bad in wrong.items():
        result = compare(case.spec, outcome.actual, bad, tolerance_for("float32"))
        assert not result.ok, f"{backend_name} agrees with the gate clip misplaced: {where}"


# Every mistake of the catalogue, caught and named, framework-free ----------------------------------------
SQUARE = 4  # x [4, 4, 3]: T = B, so that reading x batch-major keeps its shape
SPECS = (  # in = H, so that the [x, h] swap and the input kernel's block transposes keep their shapes
    LSTMSpec(input_size=3, hidden_size=3, bias="double", forget_bias=0.5, peephole=True),
    LSTMSpec(input_size=3, hidden_size=3, num_layers=2, bidirectional=True),
)


LENGTHS = np.array([4, 2, 3, 1])  # a right-padded batch of SQUARE examples: every example but one padded


def _spec_for(mistake, lengths=None):
    return next((s for s in SPECS if mistake.expressible(s, SQUARE, SQUARE, lengths) is None), None)


def _planted(mistake, lengths=None):
    """The first of SPECS that can express the mistake: a's model, inputs, base gate; a's and b's outputs (y at
    padded steps zero, when the run has lengths)."""
    model = CanonicalLSTM.random(_spec_for(mistake, lengths), seed=3).rounded("float32")
    xs = tuple(a.astype(np.float32).astype(np.float64) for a in model.random_inputs(SQUARE, SQUARE, seed=4))
    gate = "hard_sigmoid_keras3" if mistake.gate == "sigmoid" else "sigmoid"  # a port from hard_sigmoid gates
    return (model, xs, gate, mistakes.forward(model, *xs, gate=gate, lengths=lengths),
            mistake.predict(model, *xs, gate=gate, lengths=lengths))


# The gate orders: two here; every one of the 23 is planted by torch and by a TF1 port in test_diagnose.py.
FRAMEWORK_FREE = [m for m in mistakes.CATALOGUE
                  if m.family != "gate order" or m.name in ("gate-order-igfo", "gate-order-iofg")]
# Each once on full sequences and once on a padded batch, where the catalogue predicts it there (the lengths
# family only there).
PLANTED = [pytest.param(m, lengths, id=f"{m.name}-{'padded' if lengths is not None else 'full'}")
           for m in FRAMEWORK_FREE for lengths in (None, LENGTHS) if _spec_for(m, lengths) is not None]


@pytest.mark.parametrize(("mistake", "lengths"), PLANTED)
def test_every_mistake_is_caught_and_named(mistake, lengths):
    """Caught: a port with the mistake is outside the float32 bound of the oracle (on a padded batch, at valid
    steps). Named: diagnose's search, given a's weights and outputs and the port's (its weights as a framework
    would hold them), names it on b."""
    from harness.diagnosis import Party, search

    model, xs, gate, good, bad = _planted(mistake, lengths)
    tol = tolerance_for("float32")
    a = Party("a", "a", model, gate, good)
    padding = "zeros"
    if lengths is not None:  # b as a Flax port: what it leaves at padded steps is its own (junk here)
        bad = LSTMOutput(np.where(padded_steps(lengths, SQUARE)[..., None], 7.0, bad.y), bad.h_n, bad.c_n)
        padding = "undefined"
    b = Party("b", "b", mistake.plant(model), "sigmoid" if mistake.gate else gate, bad, padding)
    named = search(a, b, xs, tol, lengths=lengths)
    valid_steps = {} if lengths is None else {"lengths": lengths, "padding": "undefined"}
    caught = compare(model.spec, bad, good, tol, **valid_steps)
    if mistake.harmless:  # nothing can catch it; diagnose says these inputs could not show it
        assert caught.ok and named.agree and mistake.name in named.invisible
        return
    assert not caught.ok, f"{mistake.name} is not caught on {model.spec.features()}"
    assert ("b", mistake.name) in [(c.side, c.mistake.name) for c in named.explained], str(named)
    assert all(c.after.ok for c in named.explained)


@pytest.mark.parametrize("name", [m.name for m in mistakes.CATALOGUE if m.family == "lengths"])
def test_a_lengths_mistake_is_named_whatever_the_port_left_at_padded_steps(name):
    """A port that misuses the lengths yet writes zeros at padded steps, as its framework's convention says (torch's
    pad_packed_sequence of a wrong run): what a misuse leaves there is the port's own, and is not compared."""
    from harness.diagnosis import Party, search

    mistake = mistakes.get(name)
    model, xs, gate, good, bad = _planted(mistake, LENGTHS)
    zeroed = LSTMOutput(np.where(padded_steps(LENGTHS, SQUARE)[..., None], 0.0, bad.y), bad.h_n, bad.c_n)
    result = search(Party("a", "a", model, gate, good), Party("b", "b", model, gate, zeroed, "zeros"), xs,
                    tolerance_for("float32"), lengths=LENGTHS)
    assert ("b", name) in [(c.side, c.mistake.name) for c in result.explained], str(result)


def test_the_lengths_family_is_searched_only_on_a_padded_batch():
    from harness.diagnosis import Party, search

    model, xs, gate, good, _ = _planted(mistakes.get("gate-order-igfo"))
    party = Party("a", "a", model, gate, good)
    for lengths, why in ((None, "the run has no per-example lengths"),
                         (np.full(SQUARE, SQUARE), "every example runs all T steps: nothing is padded")):
        result = search(party, Party("b", "b", model, gate, good), xs, tolerance_for("float32"), lengths=lengths)
        assert result.agree
        for m in mistakes.CATALOGUE:
            assert (result.not_searched.get(m.name) == why) == (m.family == "lengths"), (m.name, lengths)


def test_the_forward_variants_loop_is_the_oracle():
    """harness.mistakes' forward pass with the sigmoid and the new c is the oracle on every catalogue case, so a
    variant differs from the oracle by its knob alone."""
    from harness.catalogue import CASES

    for case in CASES:
        if case.batch_first or not case.initial_state:  # the loop is time-major, with states given
            continue
        model, (x, h0, c0), expected = oracle_for(case, "float64")
        same = mistakes.variant_forward(model, x, h0, c0, lambda z: 0.5 * (1 + np.tanh(0.5 * z)), old_c=False,
                                        lengths=case.length_array)
        # float64 re-association only: measured 8.9e-16 at worst over these cases
        assert all(np.allclose(a, e, rtol=0, atol=5e-15) for a, e in zip(same, expected)), case.name


def test_a_mistake_on_each_side_is_no_single_mistake():
    """b is a's weights with its gates permuted, faithfully run; a's own run reads x last step first. One mistake
    explains b against a's weights, but a disagrees with them itself: two mistakes, so none is named."""
    from harness.diagnosis import Party, search

    spec = SPECS[0]
    model = CanonicalLSTM.random(spec, seed=3).rounded("float32")
    xs = model.random_inputs(SQUARE, SQUARE, seed=4)
    permuted = mistakes.get("gate-order-fogi").plant(model)
    a = Party("a", "a", model, "sigmoid", mistakes.get("go-backwards").predict(model, *xs))
    b = Party("b", "b", permuted, "sigmoid", mistakes.forward(permuted, *xs))
    result = search(a, b, xs, tolerance_for("float32"))
    assert not result.agree and not result.explained and len(result.closest) == 3, str(result)
    assert "a disagrees with the oracle on its own weights too" in str(result)


def test_a_gate_order_mistake_is_a_kernel_written_in_that_order_and_read_as_canonical():
    """What the catalogue plants for gate order X is what a port gets when it writes the gate blocks in order X
    (TF's concatenated kernel writer, harness.backends._concat_kernel) and a framework reads them as i, f, g, o."""
    from harness.backends._concat_kernel import (
        from_bias,
        from_kernel,
        to_bias,
        to_kernel,
    )

    model = CanonicalLSTM.random(SPECS[0], seed=3)
    lw = model.weights[(0, 0)]
    for m in (m for m in mistakes.CATALOGUE if m.family == "gate order"):
        order = m.name.removeprefix("gate-order-")
        W_ih, W_hh = from_kernel(to_kernel(lw.W_ih, lw.W_hh, order), model.spec.input_size, "ifgo")
        planted = m.plant(model).weights[(0, 0)]
        assert np.array_equal(planted.W_ih, W_ih) and np.array_equal(planted.W_hh, W_hh), m.name
        assert np.array_equal(planted.b_ih, from_bias(to_bias(lw.b_ih, order), "ifgo")), m.name


# Per-example lengths ---------------------------------------------------------------------------------
# Each mistake is made of the backend's own runs on the ragged-bidirectional case (batch-first, lengths 3, 6, 1):
# with its lengths (right), and on the same padded input without them (every sequence run to T). Nothing in
# the backend or the oracle is patched: the mistakes are the outputs a port that drops or misuses the lengths
# would return.
@functools.lru_cache(maxsize=None)  # the three mistakes share the two runs
def _ragged_runs(backend_name):
    """The passing run with lengths, and the backend's outputs on the same padded input without them."""
    case, outcome = _passing_run("ragged-bidirectional", backend_name)
    unpadded = run_case(dataclasses.replace(case, lengths=None), backend_name, "float32")
    assert unpadded.result.status == "pass", unpadded.result.reason  # right, as an LSTM over every step
    return case, outcome, unpadded.actual


# The catalogue's lengths mistakes (harness.mistakes, family "lengths"), made of the backend's own two runs, and
# the output each one touches first.
LENGTH_MISTAKES = {"padding-processed-as-data": "h_n[layer=0, direction=forward]",
                   "backward-starts-at-T-1": "y[direction=backward]",
                   "final-state-at-T-1": "h_n[layer=0, direction=forward]"}


def test_the_length_mistakes_here_are_the_catalogues():
    assert set(LENGTH_MISTAKES) == {m.name for m in mistakes.CATALOGUE if m.family == "lengths"}


@pytest.mark.parametrize("mistake", LENGTH_MISTAKES)
def test_length_mistakes_are_caught(mistake, backend_name):
    """Every backend that runs lengths must disagree with each misuse of them, at the output it touches, and at
    valid steps (the undefined padding of flax is not compared, and must not be needed to catch it)."""
    caught_at = LENGTH_MISTAKES[mistake]
    case, outcome, full = _ragged_runs(backend_name)
    padding = get(backend_name).padding(case.spec)
    made = mistakes.get(mistake).lengths_use(outcome.actual, full, case.spec)  # batch-first: y's last axis alike
    result = compare(case.spec, made, outcome.expected, tolerance_for("float32"),
                     batch_first=True, lengths=case.length_array, padding=padding)
    assert not result.ok, f"{mistake} on {backend_name} was not caught"
    bad = [p for p in result.paths if p.mismatched or p.error]
    assert any(p.path.startswith(caught_at) and p.mismatched > p.padded_mismatched for p in bad), \
        (caught_at, [(p.path, p.mismatched, p.padded_mismatched) for p in bad])
