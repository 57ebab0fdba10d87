"""Per-example lengths (right padding): the oracle's semantics against independent facts, the one input check,
the comparison of padded steps by each backend's convention, and what a backend without lengths says.

The agreement cases (catalogue: ragged*) run every backend with lengths against the oracle, padded steps
included where the backend's convention defines them; the negative controls (test_negative_controls) show
that padding run as data, a backward direction started at T-1 and a final state taken at T-1 all fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import CanonicalLSTM, LSTMSpec, backends
from harness.backends import Backend, Capabilities, UnsupportedFeature
from harness.catalogue import get_case
from harness.compare import compare, tolerance_for
from harness.outputs import LSTMOutput
from harness.results import NOT_INSTALLED, PASS, SKIPPED, UNSUPPORTED
from harness.runner import run_case

SPEC = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True, peephole=True, proj_size=4,
                cell_clip=0.5, forget_bias=0.7)
LENGTHS = np.array([4, 6, 1])


def _model_and_inputs(spec=SPEC, steps=6):
    model = CanonicalLSTM.random(spec, 3)
    return model, model.random_inputs(len(LENGTHS), steps, 4)


# The oracle ------------------------------------------------------------------------------------------
def test_each_example_is_its_own_sequence_cut_at_its_length():
    """Independent of how the oracle masks: running example b alone on x[:lengths[b]] (no lengths at all) gives
    its valid y, its h_n and c_n, in every layer and both directions, with peepholes, projection and clips."""
    model, (x, h0, c0) = _model_and_inputs()
    out = model.forward(x, h0, c0, lengths=LENGTHS)
    # 1e-15: float64 re-association only (a batch of one against a batch of four); measured 1.7e-16 over 20 seeds
    for b, n in enumerate(LENGTHS):
        alone = model.forward(x[:n, b:b + 1], h0[:, b:b + 1], c0[:, b:b + 1])
        np.testing.assert_allclose(out.y[:n, b:b + 1], alone.y, rtol=0, atol=1e-15)
        np.testing.assert_allclose(out.h_n[:, b:b + 1], alone.h_n, rtol=0, atol=1e-15)
        np.testing.assert_allclose(out.c_n[:, b:b + 1], alone.c_n, rtol=0, atol=1e-15)
        assert not np.any(out.y[n:, b])  # "zeros": both directions zero at padded steps


def test_full_lengths_are_no_lengths_and_padding_never_matters():
    model, (x, h0, c0) = _model_and_inputs()
    plain = model.forward(x, h0, c0)
    assert all(np.array_equal(a, b) for a, b in zip(plain, model.forward(x, h0, c0, lengths=[6, 6, 6])))
    ragged = model.forward(x, h0, c0, lengths=LENGTHS)
    x2 = x.copy()
    x2[5:, 0] = 1e3  # garbage in the padding of examples 0 and 2
    x2[1:, 2] = -7.0
    assert all(np.array_equal(a, b) for a, b in zip(ragged, model.forward(x2, h0, c0, lengths=LENGTHS)))


def test_carry_repeats_the_last_valid_output():
    spec = SPEC.replace(bidirectional=False)
    model, (x, h0, c0) = _model_and_inputs(spec)
    zeros = model.forward(x, h0, c0, lengths=LENGTHS)
    carry = model.forward(x, h0, c0, lengths=LENGTHS, padding="carry")
    for b, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(carry.y[:n, b], zeros.y[:n, b])
        np.testing.assert_array_equal(carry.y[n:, b], np.broadcast_to(zeros.h_n[-1, b], carry.y[n:, b].shape))
    assert all(np.array_equal(a, b) for a, b in zip(zeros[1:], carry[1:]))
    with pytest.raises(ValueError, match="padding: 'carry' is a one-direction convention"):
        CanonicalLSTM.random(SPEC, 0).forward(x, lengths=LENGTHS, padding="carry")
    with pytest.raises(ValueError, match="padding: expected one of zeros, carry, undefined, got 'ones'"):
        model.forward(x, h0, c0, lengths=LENGTHS, padding="ones")


def test_batch_first_lengths_index_the_batch():
    model, (x, h0, c0) = _model_and_inputs()
    time_major = model.forward(x, h0, c0, lengths=LENGTHS)
    batch_major = model.forward(x.transpose(1, 0, 2), h0, c0, batch_first=True, lengths=LENGTHS)
    np.testing.assert_array_equal(batch_major.y, time_major.y.transpose(1, 0, 2))
    np.testing.assert_array_equal(batch_major.h_n, time_major.h_n)


# The one input check ---------------------------------------------------------------------------------
BAD_LENGTHS = [
    (np.array([4.0, 6.0, 1.0]), TypeError, r"lengths: expected integers .* got dtype float64"),
    (np.array([True, True, True]), TypeError, r"lengths: expected integers .* got dtype bool"),
    ([4, 0, 1], ValueError, r"lengths: expected each length in 1\.\.6 .* got 0 at index 1: 0 \(an empty sequence"),
    ([4, -2, 1], ValueError, r"got -2 at index 1: a negative length"),
    ([4, 7, 1], ValueError, r"got 7 at index 1: more than the 6 steps of x"),
    ([4, 6], ValueError, r"lengths: expected shape \(3,\), one length per batch element of x, got \(2,\)"),
    ([[4, 6, 1]], ValueError, r"lengths: expected shape \(3,\).* got \(1, 3\)"),
]


class _Refuses(Backend):
    """A backend whose own code must never run: the base class's check comes first."""

    name = "refuses"
    capabilities = Capabilities(double_bias=True, forget_bias=True, projection=True, peephole=True, cell_clip=True,
                                lengths="zeros")

    def _prepare(self, model, dtype, device):
        return model

    def _run(self, model, x, h0, c0, *, batch_first=False, lengths=None):
        raise AssertionError("reached the backend's _run")


@pytest.mark.parametrize("bad, error, message", BAD_LENGTHS, ids=[str(b[0]) for b in BAD_LENGTHS])
def test_bad_lengths_are_refused_by_name_everywhere(bad, error, message):
    model, (x, h0, c0) = _model_and_inputs()
    with pytest.raises(error, match=message):
        model.forward(x, h0, c0, lengths=bad)
    backend = _Refuses()
    prepared = backend.prepare(model)
    for call in (backend.run, backend.forward_callable):
        with pytest.raises(error, match=message):
            call(prepared, x, h0, c0, lengths=bad)


def test_a_case_with_bad_lengths_is_refused_where_it_is_written():
    from harness.catalogue import Case

    with pytest.raises(ValueError, match="lengths: expected each length in 1..6"):
        Case("bad", SPEC, lengths=(6, 6, 0))


def test_a_backend_without_lengths_says_why_and_never_sees_them():
    class NoLengths(_Refuses):
        name = "no-lengths"
        capabilities = Capabilities(double_bias=True, forget_bias=True, projection=True, peephole=True,
                                    cell_clip=True)
        lengths_missing = "its op has no sequence length input"

        def _run(self, model, x, h0, c0, *, batch_first=False):  # no lengths keyword at all
            return model.forward(x, h0, c0, batch_first=batch_first)

    backend = NoLengths()
    model, (x, h0, c0) = _model_and_inputs()
    prepared = backend.prepare(model)
    backend.run(prepared, x, h0, c0)  # without lengths, as before
    reason = "no-lengths cannot run per-example sequence lengths: its op has no sequence length input"
    assert backend.supports(SPEC, lengths=True) == reason and backend.supports(SPEC) is None
    with pytest.raises(UnsupportedFeature, match=reason):
        backend.run(prepared, x, h0, c0, lengths=LENGTHS)


# The comparison -------------------------------------------------------------------------------------
def _ragged_pair(padding="zeros"):
    spec = SPEC.replace(bidirectional=padding != "carry")
    model, (x, h0, c0) = _model_and_inputs(spec)
    return spec, model.forward(x, h0, c0, lengths=LENGTHS, padding=padding)


def test_padded_steps_are_compared_by_the_convention():
    spec, out = _ragged_pair()
    tol = tolerance_for("float32")
    y = out.y.copy()
    y[5, 0, 1] = 0.25  # a padded step of example 0 (length 4), forward half
    wrong = LSTMOutput(y, out.h_n, out.c_n)
    zeros = compare(spec, wrong, out, tol, lengths=LENGTHS, padding="zeros")
    assert not zeros.ok
    assert "1 of the mismatched elements are at padded steps, where the backend's convention is 'zeros'" \
        in zeros.message()
    undefined = compare(spec, wrong, out, tol, lengths=LENGTHS, padding="undefined")
    assert undefined.ok
    padded_values = int((6 - LENGTHS).sum()) * 2 * spec.output_size  # both directions' halves
    assert sum(p.excluded for p in undefined.paths) == padded_values
    assert f"{padded_values} values of y at padded steps not compared (the backend leaves them undefined)" \
        in undefined.message()
    y[3, 0, 1] += 1e-3  # a valid step: compared whatever the convention
    assert not compare(spec, LSTMOutput(y, out.h_n, out.c_n), out, tol, lengths=LENGTHS, padding="undefined").ok


def test_undefined_padding_never_hides_a_valid_step_or_a_state():
    spec, out = _ragged_pair()
    tol = tolerance_for("float32")
    h_n = out.h_n.copy()
    h_n[1, 2] += 1e-3  # example 2 (length 1), layer 0 backward
    result = compare(spec, LSTMOutput(out.y, h_n, out.c_n), out, tol, lengths=LENGTHS, padding="undefined")
    assert [p.path for p in result.paths if p.mismatched] == ["h_n[layer=0, direction=backward]"]


# Each backend's convention, measured --------------------------------------------------------------
def _undefined_padding_backends() -> list[str]:
    spec = get_case("ragged").spec
    out = []
    for name in backends.subjects():
        b = backends.get(name)
        if b.supports(spec, b.capabilities.dtypes[0], b.capabilities.devices[0], lengths=True) is None \
                and b.padding(spec) == "undefined":
            out.append(name)
    return out


@pytest.mark.parametrize("name", _undefined_padding_backends())
def test_a_backend_declares_undefined_padding_only_where_neither_zeros_nor_carry_holds(name):
    """'undefined' leaves values out of the comparison: it must be the truth, not a convenience. (zeros and
    carry need no such test: the agreement cases compare the padded steps by them.)"""
    case = get_case("ragged")
    outcome = run_case(case, name, "float32")
    if outcome.result.status in (UNSUPPORTED, NOT_INSTALLED, SKIPPED):
        pytest.skip(f"{outcome.result.status}: {outcome.result.reason}")
    assert outcome.result.status == PASS, outcome.result.reason
    model, (x, h0, c0) = case.model().rounded("float32"), case.inputs(case.model().rounded("float32"))
    tol = tolerance_for("float32")
    for padding in ("zeros", "carry"):
        expected = model.forward(x.astype(np.float32), h0.astype(np.float32), c0.astype(np.float32),
                                 lengths=case.length_array, padding=padding)
        assert not compare(case.spec, outcome.actual, expected, tol, lengths=case.length_array,
                           padding=padding).ok, f"{name}'s padded steps hold {padding}: declare it"


# Compiled programs are shared ----------------------------------------------------------------------
def test_lengths_are_data_to_the_jax_programs():
    pytest.importorskip("jax")
    from harness.backends import _jax

    for name in ("jax", "equinox", "flax"):
        assert run_case(get_case("2layer"), name, "float32").result.status == PASS
        before = dict(_jax.TRACES)
        assert run_case(get_case("ragged"), name, "float32").result.status == PASS
        assert _jax.TRACES == before, f"{name}: lengths retraced its program"
