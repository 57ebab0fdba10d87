"""diagnose's verdict (harness.diagnosis.search, framework-free): whether two sides agree (the command's exit
status), which mistake explains a disagreement and on which side, the closest ones when none does, what could not
show and what was not searched, with and without per-example lengths and each side's padding convention."""

from __future__ import annotations

import numpy as np
import pytest

from harness import mistakes
from harness.canonical import CanonicalLSTM
from harness.compare import tolerance_for
from harness.diagnosis import CLOSEST, Party, _computed, _ratio, search
from harness.outputs import LSTMOutput
from harness.spec import LSTMSpec

SPEC = LSTMSpec(input_size=3, hidden_size=3)  # two biases: b_ih and b_hh in each other's slot changes nothing
BI = LSTMSpec(input_size=3, hidden_size=3, num_layers=2, bidirectional=True)
# The bound diagnose itself uses for float32 sides (the table's), not a test tolerance: every side here is the float64
# oracle's own outputs (error 0 against the predictions made from them) or moved off them on purpose.
TOL = tolerance_for("float32")
LENGTHS = np.array([4, 2, 3, 1])  # x [4, 4, 3]: every example but the first padded
PADDED = np.arange(4)[:, None] >= LENGTHS[None, :]  # [T, B]


def setup(spec=SPEC):
    model = CanonicalLSTM.random(spec, seed=3).rounded("float32")
    xs = tuple(a.astype(np.float32).astype(np.float64) for a in model.random_inputs(4, 4, seed=4))
    return model, xs


def side(name, model, outputs, padding="zeros", gate="sigmoid"):
    return Party(name, f"side {name}", model, gate, outputs, padding)


def oracle(model, xs, **kw):
    return mistakes.forward(model, *xs, **kw)


def junk_at_padding(out: LSTMOutput, value=7.0) -> LSTMOutput:
    return LSTMOutput(np.where(PADDED[..., None], value, out.y), out.h_n, out.c_n)


def named(result):
    return [(c.side, c.mistake.name) for c in result.explained]


# Agreement: the exit status ----------------------------------------------------------------------------------
def test_two_faithful_sides_agree_and_list_what_could_not_show():
    model, xs = setup()
    out = oracle(model, xs)
    result = search(side("a", model, out), side("b", model, out), xs, TOL)
    assert result.agree and result.before.ok and set(result.faithful) == {"a", "b"}
    assert result.explained == [] and result.closest == []
    assert result.invisible == ["bias-slots-swapped"]  # the only harmless mistake this spec can carry
    assert result.not_searched["gates-sigmoid"] == "a's gates already use sigmoid"
    assert result.not_searched["peephole-order-ifo"] == "the LSTM has no peepholes"
    assert result.not_searched["padding-processed-as-data"] == "the run has no per-example lengths"
    assert "gate-order-igfo" not in result.not_searched and "bias-slots-swapped" not in result.not_searched
    # searched here: x [4, 4, 3] can be read batch-major, and the gates can be taken for hard_sigmoid
    assert {"batch-major-as-time-major", "gates-hard_sigmoid_keras3"}.isdisjoint(result.not_searched)
    assert (result.a, result.b, result.inputs, result.tolerance) == ("side a", "side b", "", TOL)


def test_a_side_that_disagrees_with_its_own_weights_is_no_agreement():
    """b is the oracle on a's weights, so `before` holds; a's own outputs are off: not agree."""
    model, xs = setup()
    out = oracle(model, xs)
    off = LSTMOutput(out.y + 1e-3, out.h_n, out.c_n)
    result = search(side("a", model, off), side("b", model, out), xs, TOL)
    assert result.before.ok and not result.faithful["a"].ok and result.faithful["b"].ok
    assert not result.agree


def test_b_off_from_a_is_no_agreement():
    model, xs = setup()
    out = oracle(model, xs)
    off = LSTMOutput(out.y, out.h_n, out.c_n + 1e-3)
    result = search(side("a", model, out), side("b", model, off), xs, TOL)
    assert not result.before.ok and not result.agree


def test_messages_index_the_callers_layout():
    """y off at time step 1, example 2: said as (1, 2, ...) time-major, as (2, 1, ...) for a batch-first caller."""
    model, xs = setup()
    out = oracle(model, xs)
    y = out.y.copy()
    y[1, 2, 0] += 1e-3
    off = LSTMOutput(y, out.h_n, out.c_n)
    for batch_first, index in ((None, (1, 2, 0)), (False, (1, 2, 0)), (True, (2, 1, 0))):
        layout = {} if batch_first is None else {"batch_first": batch_first}  # None: the default, time-major
        result = search(side("a", model, out), side("b", model, off), xs, TOL, **layout)
        [bad] = [p for p in result.before.paths if p.mismatched]
        assert bad.worst_index == index, (batch_first, bad)


# Naming -------------------------------------------------------------------------------------------------------
def test_a_mistake_is_named_on_the_side_that_made_it_with_its_inverse_on_the_other():
    """b's gate blocks in order i, g, f, o; a port of b's weights back to canonical order makes the same swap on a."""
    model, xs = setup()
    planted = mistakes.get("gate-order-igfo").plant(model)
    result = search(side("a", model, oracle(model, xs)), side("b", planted, oracle(planted, xs)), xs, TOL)
    assert not result.agree
    assert named(result) == [("b", "gate-order-igfo"), ("a", "gate-order-igfo")]  # the faithful-source order
    assert all(c.after.ok for c in result.explained) and result.closest == []


def test_only_a_faithful_source_explains():
    """a reads x last step first (unfaithful to its own weights); b is a's weights with a gate order mistake, run
    faithfully. The gate order explains b against a's weights, but a is off itself: two mistakes, none named."""
    model, xs = setup()
    permuted = mistakes.get("gate-order-fogi").plant(model)
    a = side("a", model, mistakes.get("go-backwards").predict(model, *xs))
    result = search(a, side("b", permuted, oracle(permuted, xs)), xs, TOL)
    assert not result.agree and result.explained == []
    assert len(result.closest) == CLOSEST


def test_a_side_with_hard_sigmoid_gates_is_its_own_base():
    """a computes with Keras 3's hard_sigmoid (its weights, its gates); b is the same weights with sigmoid gates.
    Each side is faithful to its own gates, and the gates are named on each side."""
    model, xs = setup()
    hard = "hard_sigmoid_keras3"
    a = side("a", model, oracle(model, xs, gate=hard), gate=hard)
    result = search(a, side("b", model, oracle(model, xs)), xs, TOL)
    assert result.faithful["a"].ok and result.faithful["b"].ok and not result.agree
    assert named(result) == [("b", "gates-sigmoid"), ("a", "gates-hard_sigmoid_keras3")]
    assert "gates-sigmoid" not in result.not_searched  # searched from a's weights, though not from b's


def test_a_weight_mistake_is_predicted_with_the_sources_gates():
    model, xs = setup()
    hard = "hard_sigmoid_keras3"
    planted = mistakes.get("gate-order-igfo").plant(model)
    a = side("a", model, oracle(model, xs, gate=hard), gate=hard)
    result = search(a, side("b", planted, oracle(planted, xs, gate=hard), gate=hard), xs, TOL)
    assert ("b", "gate-order-igfo") in named(result), str(result)


def test_the_reasons_not_searched_are_said_for_the_faithful_side():
    """b is unfaithful to its own weights (it reads x last step first): the search starts from a's weights."""
    model, xs = setup()
    b = side("b", model, mistakes.get("go-backwards").predict(model, *xs))
    result = search(side("a", model, oracle(model, xs)), b, xs, TOL)
    assert not result.faithful["b"].ok and named(result) == [("b", "go-backwards")]
    assert result.not_searched["gates-sigmoid"] == "a's gates already use sigmoid"


def test_a_prediction_just_outside_the_bound_is_no_explanation():
    """b is a's weights with a gate order mistake, and one element off by 1.5 x the bound besides: not explained,
    but the closest, at that ratio."""
    model, xs = setup()
    planted = mistakes.get("gate-order-igfo").plant(model)
    out = oracle(planted, xs)
    c_n = out.c_n.copy()
    c_n[0, 1, 2] += 1.5 * (TOL.atol + TOL.rtol * abs(c_n[0, 1, 2]))
    result = search(side("a", model, oracle(model, xs)), side("b", planted, LSTMOutput(out.y, out.h_n, c_n)),
                    xs, TOL)
    assert result.explained == [] and not result.faithful["b"].ok
    [on_b] = [c for c in result.closest if (c.side, c.mistake.name) == ("b", "gate-order-igfo")]
    assert on_b.ratio == pytest.approx(1.5, rel=1e-3) and not on_b.after.ok


def test_no_single_mistake_shows_the_closest_in_order():
    model, xs = setup()
    both = mistakes.get("gate-order-igfo").plant(mistakes.get("bias-doubled").plant(model))
    result = search(side("a", model, oracle(model, xs)), side("b", both, oracle(both, xs)), xs, TOL)
    assert result.explained == [] and len(result.closest) == 3 == CLOSEST
    ratios = [c.ratio for c in result.closest]
    assert ratios == sorted(ratios) and ratios[0] > 1 and not any(c.after.ok for c in result.closest)


def test_a_function_side_is_compared_never_a_source():
    """b holds no weights (a function): the search predicts from a's weights only, and names the mistake on b."""
    model, xs = setup()
    planted = mistakes.get("bias-doubled").plant(model)
    result = search(side("a", model, oracle(model, xs)), side("b", None, oracle(planted, xs), "undefined"), xs, TOL)
    assert set(result.faithful) == {"a"} and not result.agree
    assert named(result) == [("b", "bias-doubled")]


def test_a_function_as_a_and_weights_as_b():
    model, xs = setup()
    planted = mistakes.get("bias-doubled").plant(model)
    result = search(side("a", None, oracle(planted, xs), "undefined"), side("b", model, oracle(model, xs)), xs, TOL)
    assert result.before_what == "a against the oracle on b's weights"
    assert named(result) == [("a", "bias-doubled")]


# Per-example lengths and each side's padding convention -----------------------------------------------------
def test_undefined_padding_is_not_compared_and_zeros_are():
    model, xs = setup()
    out = oracle(model, xs, lengths=LENGTHS)
    junk = junk_at_padding(out)
    a = side("a", model, out)
    assert search(a, side("b", model, junk, "undefined"), xs, TOL, lengths=LENGTHS).agree
    zeros = search(a, side("b", model, junk, "zeros"), xs, TOL, lengths=LENGTHS)
    assert not zeros.agree and not zeros.faithful["b"].ok
    assert search(a, side("b", model, out, "zeros"), xs, TOL, lengths=LENGTHS).agree


def test_each_side_is_held_to_its_own_convention():
    """A one-direction Keras layer carries its last output on at padded steps, torch writes zeros: they agree,
    and b held to a's convention (or to none) would not."""
    model, xs = setup()
    zeros, carry = oracle(model, xs, lengths=LENGTHS), oracle(model, xs, lengths=LENGTHS, padding="carry")
    assert not np.array_equal(zeros.y, carry.y)
    result = search(side("a", model, zeros), side("b", model, carry, "carry"), xs, TOL, lengths=LENGTHS)
    assert result.agree, str(result)
    assert not search(side("a", model, zeros), side("b", model, carry, "zeros"), xs, TOL, lengths=LENGTHS).agree
    assert not search(side("a", model, carry, "zeros"), side("b", model, carry, "carry"), xs, TOL,
                      lengths=LENGTHS).agree


def test_a_weight_mistake_on_a_carrying_side_is_predicted_and_held_by_its_convention():
    model, xs = setup()
    planted = mistakes.get("gate-order-igfo").plant(model)
    b = side("b", planted, oracle(planted, xs, lengths=LENGTHS, padding="carry"), "carry")
    result = search(side("a", model, oracle(model, xs, lengths=LENGTHS)), b, xs, TOL, lengths=LENGTHS)
    [candidate] = [c for c in result.explained if c.side == "b"]
    assert candidate.mistake.name == "gate-order-igfo" and candidate.after.ok
    assert candidate.after.padding == "carry"  # its padded steps compared, by its convention


def test_junk_at_a_zeros_sides_padded_steps_is_a_second_problem():
    """b declares zeros at padded steps but leaves junk there, besides a gate order mistake: no single mistake."""
    model, xs = setup()
    planted = mistakes.get("gate-order-igfo").plant(model)
    b = side("b", planted, junk_at_padding(oracle(planted, xs, lengths=LENGTHS)), "zeros")
    result = search(side("a", model, oracle(model, xs, lengths=LENGTHS)), b, xs, TOL, lengths=LENGTHS)
    assert result.explained == [] and not result.faithful["b"].ok


def test_a_one_direction_lengths_mistake_is_a_class_of_two():
    """One direction: the padding run as data and the final states after T-1 differ only at padded steps of y,
    which a misuse leaves as its own: one class."""
    model, xs = setup()
    port = mistakes.get("final-state-at-T-1").predict(model, *xs, lengths=LENGTHS)
    result = search(side("a", model, oracle(model, xs, lengths=LENGTHS)), side("b", model, port), xs, TOL,
                    lengths=LENGTHS)
    assert {n for s_, n in named(result)} == {"final-state-at-T-1", "padding-processed-as-data"}, str(result)


def test_a_weight_mistake_is_named_on_a_padded_batch_whatever_the_padding():
    model, xs = setup(BI)
    planted = mistakes.get("directions-swapped").plant(model)
    b = junk_at_padding(oracle(planted, xs, lengths=LENGTHS))
    result = search(side("a", model, oracle(model, xs, lengths=LENGTHS)), side("b", planted, b, "undefined"),
                    xs, TOL, lengths=LENGTHS)
    assert ("b", "directions-swapped") in named(result), str(result)
    assert all(c.after.ok for c in result.explained)


@pytest.mark.parametrize("name", [m.name for m in mistakes.CATALOGUE if m.family == "lengths"])
def test_a_lengths_mistake_is_named_with_zeros_at_padded_steps(name):
    """The port writes zeros at padded steps (its convention) after misusing the lengths: what a misuse leaves
    there is not compared, so the misuse is named."""
    model, xs = setup(BI)
    port = mistakes.get(name).predict(model, *xs, lengths=LENGTHS)
    zeroed = LSTMOutput(np.where(PADDED[..., None], 0.0, port.y), port.h_n, port.c_n)
    result = search(side("a", model, oracle(model, xs, lengths=LENGTHS)), side("b", model, zeroed), xs, TOL,
                    lengths=LENGTHS)
    assert ("b", name) in named(result), str(result)
    assert [n for s, n in named(result) if mistakes.get(n).family == "lengths"] == [name]  # told apart
    assert "go-backwards" in result.not_searched and "padding-processed-as-data" not in result.not_searched


def test_lengths_that_pad_nothing_search_no_lengths_mistake():
    model, xs = setup()
    full = np.full(4, 4)
    out = oracle(model, xs, lengths=full)
    result = search(side("a", model, out), side("b", model, out), xs, TOL, lengths=full)
    assert result.agree
    assert result.not_searched["final-state-at-T-1"] == "every example runs all T steps: nothing is padded"


# The fast ratio --------------------------------------------------------------------------------------------
def test_the_ratio_is_the_worst_error_over_the_bound_and_inf_for_a_wrong_shape_or_a_non_finite():
    model, xs = setup()
    exp = oracle(model, xs)
    act = LSTMOutput(exp.y, exp.h_n, exp.c_n.copy())
    act.c_n[0, 1, 2] += 3e-4
    allowed = TOL.atol + TOL.rtol * abs(exp.c_n[0, 1, 2])
    assert _ratio(act, exp, TOL) == pytest.approx(3e-4 / allowed, rel=1e-6)
    assert _ratio(act, exp, None) == pytest.approx(3e-4, rel=1e-6)
    assert _ratio(exp, exp, TOL) == 0.0
    assert _ratio(LSTMOutput(exp.y[:2], exp.h_n, exp.c_n), exp, TOL) == np.inf
    nan = LSTMOutput(exp.y, exp.h_n.copy(), exp.c_n)
    nan.h_n[0, 0, 0] = np.nan
    assert _ratio(nan, exp, TOL) == np.inf


def test_the_ratio_skips_only_ys_padded_steps():
    model, xs = setup()
    exp = oracle(model, xs, lengths=LENGTHS)
    assert _ratio(junk_at_padding(exp), exp, TOL, PADDED) == 0.0
    assert _ratio(junk_at_padding(exp), exp, TOL) > 1
    states = LSTMOutput(exp.y, exp.h_n + 1.0, exp.c_n)
    assert _ratio(states, exp, TOL, PADDED) > 1  # h_n is never skipped
    valid = LSTMOutput(np.where(PADDED[..., None], exp.y, exp.y + 1.0), exp.h_n, exp.c_n)
    assert _ratio(valid, exp, TOL, PADDED) > 1  # nor y's valid steps


def test_undefined_padding_is_computed_as_zeros():
    assert [_computed(p) for p in ("undefined", "zeros", "carry")] == ["zeros", "zeros", "carry"]
