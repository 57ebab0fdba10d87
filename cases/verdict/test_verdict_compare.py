"""The comparison that turns numbers into a verdict (harness.compare.compare, Comparison.ok, output_paths), on
hand-made outputs: each test fails when the verdict is wrong, not when a message changes.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import CanonicalLSTM, LSTMSpec
from harness.compare import Tolerance, compare, growth, tolerance_for
from harness.outputs import LSTMOutput

SPEC = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True, proj_size=4)
PATHS = ["y[direction=forward]", "y[direction=backward]"] + [
    f"{name}[layer={k}, direction={d}]" for name in ("h_n", "c_n") for k in (0, 1) for d in ("forward", "backward")]
TOL = Tolerance(rtol=1e-6, atol=1e-6, evidence="for the tests", measured_worst=1e-7)


@pytest.fixture(scope="module")
def oracle() -> LSTMOutput:
    model = CanonicalLSTM.random(SPEC, 3)
    return model.forward(*model.random_inputs(3, 4, 4))


def with_part(out: LSTMOutput, part: str, arr) -> LSTMOutput:
    return out._replace(**{part: arr})


def test_the_oracle_against_itself_passes_on_every_path(oracle):
    result = compare(SPEC, oracle, oracle, TOL)
    assert result.ok
    assert [p.path for p in result.paths] == PATHS  # c_n and h_n of every layer and direction are compared
    assert all(p.mismatched == 0 and p.max_abs == 0 and p.worst_ratio == 0 for p in result.paths)


@pytest.mark.parametrize("part", ["y", "h_n", "c_n"])
@pytest.mark.parametrize("sign", [-1, 1])
def test_a_part_uniformly_off_the_oracle_fails(oracle, part, sign):
    """Every element below (or above) the oracle by 3x the bound: without |.|, the ones below would pass."""
    arr = getattr(oracle, part)
    off = arr + sign * 3 * TOL.allowed(arr)
    result = compare(SPEC, with_part(oracle, part, off), oracle, TOL)
    assert not result.ok
    bad = {p.path: p.mismatched for p in result.paths if p.mismatched}
    assert bad and all(path.startswith(part) for path in bad)
    assert sum(bad.values()) == arr.size  # every element of that part, none of the others


@pytest.mark.parametrize("path", PATHS)
def test_each_path_alone_decides(oracle, path):
    """One element off in one output part (one layer, one direction) fails the whole comparison, at that path."""
    part = path.split("[")[0]
    arr = getattr(oracle, part).copy()
    D, P = 2, SPEC.output_size
    if part == "y":
        d = PATHS.index(path)
        arr[3, 1, d * P + 2] += 1e-3
    else:
        k, d = int(path.split("layer=")[1][0]), int("backward" in path)
        arr[k * D + d, 1, 2] += 1e-3
    result = compare(SPEC, with_part(oracle, part, arr), oracle, TOL)
    assert not result.ok
    assert [p.path for p in result.paths if p.mismatched] == [path]
    assert [p.mismatched for p in result.paths if p.mismatched] == [1]


def test_a_wrong_c_n_alone_fails(oracle):
    c_n = oracle.c_n.copy()
    c_n[2, 0, 5] -= 1e-3  # layer 1, forward
    result = compare(SPEC, oracle._replace(c_n=c_n), oracle, TOL)
    assert not result.ok
    assert result.worst.path == "c_n[layer=1, direction=forward]"


def _flat(value: float, shape=(2, 1, 1)) -> LSTMOutput:
    return LSTMOutput(np.full(shape, value), np.full((1, 1, 1), value), np.full((1, 1, 1), value))


@pytest.mark.parametrize("expected", [0.5, -0.5])
def test_the_bound_is_inclusive_and_scales_with_the_oracle(expected):
    """|a - e| <= atol + rtol |e|, exactly: at the bound passes, one step over fails (in exact binary values)."""
    spec = LSTMSpec(input_size=1, hidden_size=1)
    tol = Tolerance(rtol=2.0 ** -20, atol=2.0 ** -21, evidence="exact binary values")
    bound = 2.0 ** -21 + 2.0 ** -20 * abs(expected)  # 2^-20: exact
    exp = _flat(expected)
    at = LSTMOutput(*(a - np.sign(expected) * bound for a in exp))  # toward 0: the side where rtol * e would shrink
    assert compare(spec, at, exp, tol).ok
    over = LSTMOutput(*(a - np.sign(expected) * 2 * bound for a in exp))
    result = compare(spec, over, exp, tol)
    assert not result.ok and [p.worst_ratio for p in result.paths] == [2.0, 2.0, 2.0]


def test_allowed_is_atol_plus_rtol_times_the_magnitude():
    tol = Tolerance(rtol=0.5, atol=0.25, evidence="")
    np.testing.assert_array_equal(tol.allowed(np.array([-2.0, 0.0, 2.0])), [1.25, 0.25, 1.25])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("part", ["y", "h_n", "c_n"])
def test_a_non_finite_value_fails(oracle, bad, part):
    arr = getattr(oracle, part).copy()
    arr[0, 1, 2] = bad
    result = compare(SPEC, with_part(oracle, part, arr), oracle, Tolerance(rtol=0, atol=np.inf, evidence="any"))
    assert not result.ok  # even with an infinite bound
    (failed,) = [p for p in result.paths if p.error]
    assert failed.path.startswith(part) and failed.mismatched == 1
    assert "1 non-finite values, first at index (" in failed.error


@pytest.mark.parametrize("part", ["y", "h_n", "c_n"])
def test_a_shape_that_would_broadcast_fails(part):
    """The same numbers in every batch row, and a subject returning one row: it would pass if broadcast."""
    spec = LSTMSpec(input_size=2, hidden_size=3)
    model = CanonicalLSTM.random(spec, 0)
    x = np.repeat(np.linspace(-1, 1, 8).reshape(4, 1, 2), 3, axis=1)  # 3 identical batch rows
    exp = model.forward(x)
    one_row = with_part(exp, part, getattr(exp, part)[:, :1])
    result = compare(spec, one_row, exp, tolerance_for("float64"))
    assert not result.ok
    assert [p.path for p in result.paths] == [part]  # the shape problem alone, nothing compared
    assert result.paths[0].error == f"expected shape {getattr(exp, part).shape}, got {getattr(one_row, part).shape}"


def test_the_reported_differences_are_the_greatest_and_where_they_are():
    spec = LSTMSpec(input_size=1, hidden_size=2)
    exp = LSTMOutput(np.array([[[0.0, 4.0]], [[2.0, 0.5]]]), np.zeros((1, 1, 2)), np.zeros((1, 1, 2)))
    act = exp._replace(y=exp.y + np.array([[[0.0, 0.5]], [[0.25, 0.25]]]))  # diffs 0.5 at (0,0,1), 0.25 elsewhere
    tol = Tolerance(rtol=0.0625, atol=0.0625, evidence="")
    y = compare(spec, act, exp, tol).paths[0]
    assert (y.path, y.shape, y.mismatched) == ("y", (2, 1, 2), 3)
    assert (y.max_abs, y.max_abs_index) == (0.5, (0, 0, 1))
    assert (y.max_rel, y.max_rel_index) == (0.5, (1, 0, 1))  # 0.25 / 0.5
    assert (y.worst_ratio, y.worst_index) == (0.25 / (0.0625 + 0.0625 * 0.5), (1, 0, 1))
    assert y.error is None


def test_a_difference_where_the_oracle_is_zero_is_infinitely_relative():
    spec = LSTMSpec(input_size=1, hidden_size=1)
    exp = LSTMOutput(np.zeros((2, 1, 1)), np.zeros((1, 1, 1)), np.zeros((1, 1, 1)))
    y = compare(spec, exp._replace(y=np.array([[[0.0]], [[1e-9]]])), exp, TOL).paths[0]
    assert (y.max_rel, y.max_rel_index, y.mismatched) == (np.inf, (1, 0, 0), 0)
    assert compare(spec, exp, exp, TOL).paths[0].max_rel == 0.0  # 0 / 0 is no difference


# The bound follows the work: sequence length and the oracle's cell state ----------------------------------
def _zeros(steps: int, batch: int, batch_first: bool, cell: float = 0.0) -> tuple[LSTMSpec, LSTMOutput]:
    spec = LSTMSpec(input_size=1, hidden_size=2)
    y = np.zeros((batch, steps, 2) if batch_first else (steps, batch, 2))
    return spec, LSTMOutput(y, np.zeros((1, batch, 2)), np.full((1, batch, 2), cell))


@pytest.mark.parametrize("batch_first", [False, True])
def test_a_long_sequence_widens_the_bound_by_its_length(batch_first):
    spec, exp = _zeros(steps=1500, batch=2, batch_first=batch_first)
    result = compare(spec, exp, exp, TOL, batch_first=batch_first)
    assert growth(1500, 0.0) == (10.0, 10.0)
    assert (result.tolerance.rtol, result.tolerance.atol) == (TOL.rtol * 10, TOL.atol * 10)
    # an error 5x the table's bound passes at this length, 20x does not
    for times, ok in ((5, True), (20, False)):
        act = exp._replace(y=exp.y + times * TOL.atol)
        assert compare(spec, act, exp, TOL, batch_first=batch_first).ok is ok


def test_the_widening_comes_from_the_oracle_never_from_the_subject():
    spec, exp = _zeros(steps=3, batch=2, batch_first=False, cell=1.0)
    subject = exp._replace(c_n=exp.c_n * 1000, y=exp.y + 5 * TOL.atol)  # a huge |c| of its own, and a wrong y
    result = compare(spec, subject, exp, TOL)
    assert result.tolerance is TOL  # 3 steps, oracle |c| = 1: the table's bound as it is
    assert not result.ok
    _, big = _zeros(steps=3, batch=2, batch_first=False, cell=8.0)  # the oracle's |c| = 8: atol 4x, rtol as it is
    widened = compare(spec, big._replace(y=big.y + 3 * TOL.atol), big, TOL)
    assert widened.ok and (widened.tolerance.atol, widened.tolerance.rtol) == (4 * TOL.atol, TOL.rtol)
    assert not compare(spec, big._replace(y=big.y + 5 * TOL.atol), big, TOL).ok


def test_the_oracles_sensitivity_sets_a_floor_under_atol():
    spec, exp = _zeros(steps=3, batch=2, batch_first=False)
    floor = compare(spec, exp, exp, TOL, sensitivity=1e-5).tolerance
    assert (floor.atol, floor.rtol) == (10 * 1e-5, TOL.rtol)  # 10 x the sensitivity
    assert compare(spec, exp, exp, TOL, sensitivity=1e-8).tolerance is TOL  # below atol: no change
    wrong = exp._replace(y=exp.y + 5e-5)
    assert compare(spec, wrong, exp, TOL, sensitivity=1e-5).ok and not compare(spec, wrong, exp, TOL).ok


@pytest.mark.parametrize("steps, cell, factors", [
    (1, 0.0, (1.0, 1.0)), (150, 2.0, (1.0, 1.0)), (151, 0.0, (151 / 150, 151 / 150)), (300, 1.0, (2.0, 2.0)),
    (75, 4.0, (1.0, 2.0)), (300, 6.0, (2.0, 6.0)), (1500, 10.0, (10.0, 50.0))])
def test_growth_is_length_over_150_and_cell_over_2(steps, cell, factors):
    assert growth(steps, cell) == pytest.approx(factors, rel=1e-15)


def test_for_work_keeps_the_bound_within_its_measured_work_and_says_when_it_widens():
    assert TOL.for_work(150, 2.0) is TOL and TOL.for_work(150, 2.0, 1e-8) is TOL
    wide = TOL.for_work(3000, 4.0)
    assert (wide.rtol, wide.atol, wide.measured_worst) == (20 * TOL.rtol, 40 * TOL.atol, TOL.measured_worst)
    assert wide.evidence == TOL.evidence and wide.widened.startswith("rtol 2e-05, atol 4e-05 for 3000 steps")
    assert TOL.for_work(10, 1.0, 2.0 ** -20).atol == 10 * 2.0 ** -20


def test_a_bound_measured_over_a_larger_cell_state_widens_only_past_it():
    wide = Tolerance(rtol=1e-6, atol=1e-6, evidence="", covers_cell=20.0)
    assert wide.for_work(100, 15.0) is wide
    assert wide.for_work(100, 40.0).atol == 2 * wide.atol and wide.for_work(100, 40.0).rtol == wide.rtol
    assert growth(300, 40.0, 20.0) == (2.0, 4.0) and growth(300, 40.0) == (2.0, 40.0)


# Per-example lengths: y at padded steps by the backend's convention --------------------------------------
def _ragged(batch_first=False):
    spec = LSTMSpec(input_size=1, hidden_size=2)
    y = np.zeros((2, 3, 2) if batch_first else (3, 2, 2))
    return spec, LSTMOutput(y, np.zeros((1, 2, 2)), np.zeros((1, 2, 2)))


def test_padded_steps_mark_the_steps_past_each_examples_length():
    from harness.compare import padded_steps

    np.testing.assert_array_equal(padded_steps([1, 3], 3), [[False, False], [True, False], [True, False]])
    np.testing.assert_array_equal(padded_steps([1, 3], 3, batch_first=True), [[False, True, True], [False] * 3])


@pytest.mark.parametrize("batch_first", [False, True])
def test_undefined_padding_is_left_out_and_counted(batch_first):
    spec, exp = _ragged(batch_first)
    y = exp.y.copy()
    pad = (0, 1) if batch_first else (1, 0)  # example 0 (length 1) at step 1
    y[pad] += 5.0
    result = compare(spec, exp._replace(y=y), exp, TOL, batch_first=batch_first, lengths=[1, 3], padding="undefined")
    assert result.ok and result.padding == "undefined"
    assert [p.excluded for p in result.paths] == [4, 0, 0]  # 2 padded steps x 2 units of y; never h_n or c_n
    valid = exp.y.copy()
    valid[(0, 0) if batch_first else (0, 0)] += 5.0  # example 0 at step 0: valid
    assert not compare(spec, exp._replace(y=valid), exp, TOL, batch_first=batch_first, lengths=[1, 3],
                       padding="undefined").ok


@pytest.mark.parametrize("padding", ["zeros", "carry"])
def test_a_convention_of_zeros_or_carry_is_compared_at_padded_steps(padding):
    spec, exp = _ragged()
    y = exp.y.copy()
    y[2, 0, 1] += 5.0  # example 0 (length 1) at step 2: padding
    y[0, 1, 0] += 5.0  # example 1 at step 0: valid
    result = compare(spec, exp._replace(y=y), exp, TOL, lengths=[1, 3], padding=padding)
    assert not result.ok and result.padding == padding
    (p,) = [p for p in result.paths if p.mismatched]
    assert (p.path, p.mismatched, p.padded_mismatched, p.excluded) == ("y", 2, 1, 0)


def test_padding_never_excuses_the_final_states():
    spec, exp = _ragged()
    result = compare(spec, exp._replace(c_n=exp.c_n + 1.0), exp, TOL, lengths=[1, 3], padding="undefined")
    assert not result.ok and [p.path for p in result.paths if p.mismatched] == ["c_n[layer=0, direction=forward]"]


def test_without_lengths_there_is_no_padding():
    spec, exp = _ragged()
    result = compare(spec, exp, exp, TOL, padding="undefined")
    assert result.padding is None and all(p.excluded == 0 and p.padded_mismatched == 0 for p in result.paths)


def test_an_unknown_padding_convention_is_refused():
    spec, exp = _ragged()
    with pytest.raises(ValueError):
        compare(spec, exp, exp, TOL, lengths=[1, 3], padding="garbage")


def test_lengths_without_a_padding_convention_compare_padded_steps_as_zeros():
    """compare(..., lengths=) alone: the oracle's own convention (zeros at padded steps) is the one held to."""
    spec, exp = _ragged()
    y = exp.y.copy()
    y[2, 0, 1] += 5.0  # example 0 (length 1) at step 2: padding
    result = compare(spec, exp._replace(y=y), exp, TOL, lengths=[1, 3])
    assert not result.ok and result.padding == "zeros"
    assert [(p.mismatched, p.padded_mismatched) for p in result.paths] == [(1, 1), (0, 0), (0, 0)]


def test_a_padded_step_counts_as_mismatched_only_past_the_bound():
    """padded_mismatched follows the same inclusive bound as `mismatched`: at the bound, not counted; 1.5x, counted."""
    spec, exp = _ragged()
    tol = Tolerance(rtol=0.0, atol=0.25, evidence="")  # exact in binary: a difference of 0.25 is ratio 1.0
    y = exp.y.copy()
    y[1, 0, 0] += 0.25  # example 0 (length 1) at step 1, padding: exactly the bound
    y[2, 0, 1] += 0.375  # at step 2, padding: 1.5x the bound
    (p, *_) = compare(spec, exp._replace(y=y), exp, tol, lengths=[1, 3], padding="zeros").paths
    assert (p.mismatched, p.padded_mismatched, p.worst_ratio) == (1, 1, 1.5)


@pytest.mark.parametrize("batch_first", [False, True])
def test_a_failure_message_gives_the_index_order_of_the_callers_layout(batch_first):
    spec, exp = _ragged(batch_first)
    y = exp.y.copy()
    y[0, 1, 0] += 1.0
    message = compare(spec, exp._replace(y=y), exp, TOL, batch_first=batch_first).message()
    assert ("y (shape (2, 3, 2), index (b, t, j))" if batch_first else "y (shape (3, 2, 2), index (t, b, j))") in message


def test_a_wrong_shape_in_every_part_is_reported_as_not_compared():
    """Each part's report of a shape it could not compare: not counted (-1, what diagnose and the records read),
    infinitely far, at no index; and the worst of several such parts can still be taken."""
    spec = LSTMSpec(input_size=1, hidden_size=2)
    exp = LSTMOutput(np.zeros((3, 2, 2)), np.zeros((1, 2, 2)), np.zeros((1, 2, 2)))
    act = LSTMOutput(np.zeros((3, 1, 2)), np.zeros((1, 1, 2)), np.zeros((1, 1, 2)))  # one batch row
    result = compare(spec, act, exp, TOL)
    assert not result.ok
    for p, shape in zip(result.paths, [(3, 1, 2), (1, 1, 2), (1, 1, 2)]):
        assert (p.shape, p.mismatched) == (shape, -1)
        assert (p.max_abs, p.max_abs_index, p.max_rel, p.max_rel_index, p.worst_ratio, p.worst_index) == (
            np.inf, (), np.inf, (), np.inf, ())
    assert result.worst.path == "y" and "expected shape (3, 2, 2), got (3, 1, 2)" in result.message()


def test_a_nan_is_the_worst_element_and_where_it_is():
    """A NaN output beside finite errors: it is the worst (ratio inf, never NaN, which sorts and formats as no
    number), its index is the one reported, and the message names where the first one is."""
    spec = LSTMSpec(input_size=1, hidden_size=2)
    exp = LSTMOutput(np.ones((3, 2, 2)), np.zeros((1, 2, 2)), np.zeros((1, 2, 2)))
    y = np.ones((3, 2, 2))
    y[0, 0, 0] = 1.001  # a finite error, first in memory order
    y[2, 1, 0] = np.nan
    (p, *_) = compare(spec, exp._replace(y=y), exp, TOL).paths
    assert p.worst_ratio == np.inf  # the differences themselves are NaN there: |NaN - 1| is no number
    assert p.worst_index == p.max_abs_index == p.max_rel_index == (2, 1, 0)
    assert p.error == "1 non-finite values, first at index (2, 1, 0)"


def test_comparing_infinities_and_zeros_raises_no_numpy_warning(recwarn):
    """inf - inf and x / 0 are handled, not warned about: a user running pytest -W error must not fail here."""
    import warnings

    spec = LSTMSpec(input_size=1, hidden_size=1)
    exp = LSTMOutput(np.array([[[np.inf]], [[0.0]], [[0.0]]]), np.zeros((1, 1, 1)), np.zeros((1, 1, 1)))
    act = exp._replace(y=np.array([[[np.inf]], [[0.0]], [[1.0]]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zero = compare(spec, act, exp, Tolerance(rtol=0.0, atol=0.0, evidence=""))  # x / 0 in the ratio
        compare(spec, act, exp, TOL)  # inf - inf in the difference
    assert not zero.ok and zero.paths[0].error == "1 non-finite values, first at index (0, 0, 0)"


def test_a_half_precision_oracle_still_gets_its_bound_in_float64():
    """expected in float16 (two half-precision frameworks compared, as assert_equivalent's a vs b): the bound is
    atol + rtol |expected| in float64. Computed in float16 it would round 10.01 down to 10.0078 and fail 10.009."""
    spec = LSTMSpec(input_size=1, hidden_size=1)
    exp = LSTMOutput(np.full((1, 1, 1), 1000.0, dtype=np.float16), np.zeros((1, 1, 1)), np.zeros((1, 1, 1)))
    act = exp._replace(y=np.full((1, 1, 1), 1010.009))
    (y, *_) = compare(spec, act, exp, Tolerance(rtol=1e-2, atol=1e-2, evidence="")).paths
    assert y.mismatched == 0 and y.worst_ratio == pytest.approx(10.009 / 10.01)
