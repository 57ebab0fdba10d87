"""run_case's verdict and runner.oracle_for, with a framework-free backend that runs the oracle on exactly what
it is handed (verdict_fakes.Recording): the status each situation gets, and the identical inputs promise.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness import conditioning
from harness.backends import Capabilities
from harness.catalogue import Case, get_case
from harness.compare import BACKEND_TOLERANCES, GPU_TOLERANCES, TOLERANCES, Tolerance, growth
from harness.results import ERROR, FAIL, NOT_INSTALLED, PASS, SKIPPED, UNSUPPORTED
from harness.runner import oracle_for, reproduce_command, run_case
from harness.spec import LSTMSpec
from verdict_fakes import Recording, shift

CASE = Case("verdict", LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True), batch=3, steps=4,
            seed=4)


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """The stand-in under its name, as backends.register would add it (its reproduce command registers it)."""
    from harness import backends

    monkeypatch.setitem(backends._REGISTRY, "recording", "verdict_fakes:Recording")


def run(backend, case=CASE, dtype="float32", device="cpu", **kw):
    return run_case(case, "recording", dtype, device, backend=backend, **kw)


# The identical-inputs promise -------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", ["float32", "float16"])
def test_the_oracle_and_the_backend_see_the_same_rounded_inputs(dt):
    model64 = CASE.model()
    x64, h64, c64 = CASE.inputs(model64)
    backend = Recording()
    outcome = run(backend, dtype=dt)
    (x, h0, c0, batch_first), = backend.inputs
    for got, full in ((x, x64), (h0, h64), (c0, c64)):
        assert got.dtype == np.dtype(dt)
        np.testing.assert_array_equal(got, full.astype(dt))  # what the backend was handed: the rounded inputs
    assert not np.array_equal(x.astype(np.float64), x64)  # (rounding changed them: the check above has teeth)
    model, (ox, oh, oc), expected = oracle_for(CASE, dt)
    for got, used in ((x, ox), (h0, oh), (c0, oc)):
        np.testing.assert_array_equal(got.astype(np.float64), used)  # ... and the oracle ran on the same numbers
    assert model == CASE.model().rounded(dt)
    for exp, again in zip(outcome.expected, model.forward(ox, oh, oc)):
        np.testing.assert_array_equal(exp, again)
    # The backend computes as the oracle does (float64 on the same numbers): only identical inputs give 0 error.
    assert outcome.result.status == PASS and outcome.result.worst_abs == 0.0


def test_the_oracle_runs_on_the_weights_rounded_to_the_dtype():
    backend = Recording()
    run(backend, dtype="float16")
    (model, dtype, device), = backend.prepared
    assert (dtype, device) == ("float16", "cpu")
    assert model == CASE.model().rounded("float16") and model != CASE.model()


def test_float64_inputs_pass_through_unrounded():
    backend = Recording()
    assert run(backend, dtype="float64").result.worst_abs == 0.0
    x64 = CASE.inputs(CASE.model())[0]
    np.testing.assert_array_equal(backend.inputs[0][0], x64)


def test_zero_state_cases_hand_over_no_state():
    case = get_case("zero-initial-state")
    backend = Recording()
    outcome = run(backend, case)
    (_, h0, c0, _), = backend.inputs
    assert h0 is None and c0 is None and outcome.result.status == PASS
    _, (_, oh, oc), _ = oracle_for(case, "float32")
    assert oh is None and oc is None


def test_batch_first_cases_run_batch_first():
    case = get_case("batch-first")
    backend = Recording()
    assert run(backend, case).result.status == PASS
    assert backend.inputs[0][3] is True and backend.inputs[0][0].shape == (case.batch, case.steps, 5)


def test_another_seed_is_other_weights_and_inputs():
    a, b = Recording(), Recording()
    ra, rb = run(a, seed=4).result, run(b, seed=5).result
    assert (ra.seed, rb.seed) == (4, 5) and run(Recording()).result.seed == CASE.seed
    assert not np.array_equal(a.inputs[0][0], b.inputs[0][0])
    assert b.prepared[0][0] == CASE.model(5).rounded("float32")


# The verdict ------------------------------------------------------------------------------------------------
def test_a_correct_backend_passes_with_the_tables_bound_recorded():
    started = time.perf_counter()
    outcome = run_case(CASE, "recording", backend=Recording())  # the defaults: float32, cpu, exact
    took = time.perf_counter() - started
    r = outcome.result
    assert r.status == PASS and outcome.comparison.ok
    assert (r.case, r.backend, r.device, r.dtype, r.precision) == ("verdict", "recording", "cpu", "float32", "exact")
    assert 0 <= r.seconds <= took
    assert (r.rtol, r.atol) == (TOLERANCES[("float32", "exact")].rtol, TOLERANCES[("float32", "exact")].atol)
    assert r.reason.startswith("all outputs close (recording, verdict, float32, cpu, precision exact)")
    assert r.environment["recording"] == "1" and r.environment["precision"] == "exact"
    assert r.spec == CASE.spec.to_dict() and r.reproduce == reproduce_command("verdict", "recording", "float32",
                                                                              "cpu", "exact")
    assert r.widened == ""  # 4 steps, small |c|: the table's bound as it is


@pytest.mark.parametrize("part", ["y", "h_n", "c_n"])
def test_wrong_outputs_fail_and_say_how_to_reproduce(part):
    outcome = run(Recording(shift(part, 1e-3, index=(1, 2, 3))))
    r = outcome.result
    assert r.status == FAIL and not outcome.comparison.ok
    assert r.worst_path.startswith(part) and r.worst_abs == pytest.approx(1e-3)
    assert r.worst_ratio > 1 and r.worst_index == ([1, 2, 3] if part == "y" else [2, 3])
    assert r.reason.endswith(f"\nReproduce: {r.reproduce}")


def test_the_worst_of_a_pass_is_recorded():
    r = run(Recording(shift("h_n", 1e-7, index=(3, 0, 1)))).result
    assert r.status == PASS
    assert (r.worst_path, r.worst_index) == ("h_n[layer=1, direction=backward]", [0, 1])
    assert r.worst_abs == pytest.approx(1e-7) and 0 < r.worst_ratio < 1


def test_the_bound_is_the_backends_own_and_the_devices(monkeypatch):
    own = Tolerance(rtol=3e-6, atol=3e-6, evidence="measured 1.0e-6", measured_worst=1.0e-6)
    monkeypatch.setitem(BACKEND_TOLERANCES, ("recording", "float32", "exact"), own)
    r = run(Recording()).result
    assert (r.rtol, r.atol) == (own.rtol, own.atol)
    monkeypatch.delitem(BACKEND_TOLERANCES, ("recording", "float32", "exact"))
    backend = Recording()
    r = run(backend, device="cuda").result
    assert r.status == PASS and r.device == "cuda" and backend.prepared[0][2] == "cuda"
    assert (r.rtol, r.atol) == (GPU_TOLERANCES[("float32", "exact")].rtol, GPU_TOLERANCES[("float32", "exact")].atol)


def test_the_bound_follows_the_oracles_work():
    """An ill-conditioned long run (large-cell-state's spec, seed 60, 1000 steps, batch-first): the bound widens by
    the length (rtol, atol), the oracle's |c| (atol) and the oracle's own sensitivity (a floor under atol)."""
    case = Case("ill-conditioned", get_case("large-cell-state").spec, batch=2, steps=1000, batch_first=True, seed=60)
    outcome = run(Recording(), case)
    r, applied = outcome.result, outcome.comparison.tolerance
    model, inputs, expected = oracle_for(case, "float32")
    sensitivity = conditioning.sensitivity(model, inputs, expected, "float32", batch_first=True)
    rtol_factor, atol_factor = growth(1000, float(np.abs(expected.c_n).max()))
    base = TOLERANCES[("float32", "exact")]
    assert r.status == PASS and rtol_factor == 1000 / 150
    assert sensitivity > base.atol * atol_factor  # the floor decides here
    assert (applied.rtol, applied.atol) == (base.rtol * rtol_factor, 10 * sensitivity)
    assert (r.rtol, r.atol) == (base.rtol, base.atol)  # the record keeps the table's bound, and says how it widened
    assert r.widened == applied.widened and r.widened.startswith(f"rtol {applied.rtol:.3g}, atol {applied.atol:.3g}")


def test_a_given_tolerance_replaces_the_table():
    loose = Tolerance(rtol=1.0, atol=1.0, evidence="measurement only")
    r = run(Recording(shift("y", 1e-3)), tolerance=loose).result
    assert r.status == PASS and (r.rtol, r.atol) == (1.0, 1.0)


def test_the_hooks_sit_between_the_oracle_and_the_backend():
    def drop_b_hh(model):
        for lw in model.weights.values():
            lw.b_hh = np.zeros_like(lw.b_hh)
        return model

    backend = Recording()
    outcome = run(backend, model_hook=drop_b_hh)
    assert outcome.result.status == FAIL
    assert all(not lw.b_hh.any() for lw in backend.prepared[0][0].weights.values())
    assert any(lw.b_hh.any() for lw in oracle_for(CASE, "float32")[0].weights.values())  # the oracle kept them
    hooked = run(Recording(), output_hook=shift("c_n", 1e-3, index=(0, 0, 0)))
    assert hooked.result.status == FAIL and hooked.result.worst_path == "c_n[layer=0, direction=forward]"
    assert hooked.actual.c_n[0, 0, 0] == pytest.approx(hooked.expected.c_n[0, 0, 0] + 1e-3)


def test_the_kernel_that_ran_and_what_was_folded_are_recorded():
    folding = Recording(capabilities=Capabilities(), kernel={"kernel": "cells"})  # one bias: b_ih + b_hh folded
    r = run(folding).result
    assert r.status == PASS and r.environment["kernel"] == "cells"
    assert r.folded and "b_ih + b_hh" in r.folded[0]
    assert run(Recording()).result.folded == []


# What did not run, and why -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, status", [
    ({"not_installed": "numpy is not installed (ImportError)"}, NOT_INSTALLED),
    ({"unsupported": "recording cannot express peepholes"}, UNSUPPORTED),
    ({"missing_device": "no CUDA device visible to numpy"}, SKIPPED),
])
def test_what_cannot_run_here_is_not_run_and_says_why(kw, status):
    backend = Recording(**kw)
    outcome = run(backend, device="cuda")
    assert outcome.result.status == status and outcome.result.reason == next(iter(kw.values()))
    assert outcome.comparison is None and not backend.prepared and not backend.inputs


def test_not_installed_comes_before_unsupported_before_skipped():
    both = Recording(not_installed="gone", unsupported="cannot", missing_device="absent")
    assert run(both, device="cuda").result.status == NOT_INSTALLED
    assert run(Recording(unsupported="cannot", missing_device="absent"), device="cuda").result.status == UNSUPPORTED


def test_a_device_missing_elsewhere_does_not_stop_a_cpu_run():
    assert run(Recording(missing_device="no CUDA device"), device="cpu").result.status == PASS


@pytest.mark.parametrize("dtypes, dt", [(("float32",), "float64"), (("float64",), "float32")])
def test_a_dtype_the_backend_lacks_is_unsupported_naming_it(dtypes, dt):
    r = run(Recording(capabilities=Capabilities(dtypes=dtypes)), dtype=dt).result
    assert r.status == UNSUPPORTED and dt in r.reason


def test_a_device_the_backend_lacks_is_unsupported_naming_it():
    backend = Recording(capabilities=Capabilities(devices=("cpu",)))
    r = run(backend, device="cuda").result
    assert r.status == UNSUPPORTED and "no cuda path" in r.reason and not backend.prepared


def test_a_raising_backend_is_an_error_with_its_traceback():
    backend = Recording(raises=RuntimeError("kernel exploded"))
    started = time.perf_counter()
    r = run(backend).result
    took = time.perf_counter() - started
    assert r.status == ERROR and r.reason.startswith("RuntimeError: kernel exploded\n")
    assert "Traceback" in r.reason and "_run" in r.reason
    assert 0 <= r.seconds <= took
    with pytest.raises(RuntimeError, match="kernel exploded"):
        run(Recording(raises=RuntimeError("kernel exploded")), raise_errors=True)


def test_a_mismatched_output_shape_fails():
    r = run(Recording(lambda out: out._replace(h_n=out.h_n[:, :1]))).result
    assert r.status == FAIL and "expected shape" in r.reason


@pytest.mark.parametrize("kw, words", [({"dtype": "int32"}, "int32"), ({"device": "tpu"}, "tpu"),
                                       ({"mode": "fast"}, "fast")])
def test_bad_input_is_a_value_error_not_a_status(kw, words):
    with pytest.raises(ValueError, match=words):
        run_case(CASE, "recording", backend=Recording(), **kw)


def test_the_reference_is_never_a_subject():
    with pytest.raises(ValueError, match="numpy is the reference"):
        run_case(CASE, "numpy")


def test_dtype_names_are_normalized():
    r = run(Recording(), dtype=np.float64).result
    assert r.dtype == "float64" and r.status == PASS


def test_a_dtype_numpy_cannot_hold_here_is_not_installed(monkeypatch):
    """bfloat16 without ml_dtypes: not installed, naming what to install, never bad input nor a run."""
    from harness import precision

    monkeypatch.setattr(precision, "dtype_missing", lambda d: "dtype bfloat16 needs ml_dtypes" if "bfloat16" in str(d)
                        else None)
    backend = Recording()
    r = run(backend, dtype="bfloat16").result
    assert (r.status, r.reason, r.dtype) == (NOT_INSTALLED, "dtype bfloat16 needs ml_dtypes", "bfloat16")
    assert not backend.prepared and run(Recording(), dtype="float32").result.status == PASS


# Per-example lengths -------------------------------------------------------------------------------------------
RAGGED = get_case("ragged")  # 2 layers, lengths (4, 6, 1) of 6 steps


@pytest.mark.parametrize("padding", ["zeros", "carry", "undefined"])
def test_a_ragged_batch_runs_with_its_lengths_and_the_backends_padding(padding):
    from dataclasses import replace

    backend = Recording(capabilities=replace(Recording.capabilities, lengths=padding))
    outcome = run(backend, RAGGED)
    r = outcome.result
    assert r.status == PASS and outcome.comparison.padding == padding
    np.testing.assert_array_equal(backend.lengths[0], [4, 6, 1])
    model, inputs, expected = oracle_for(RAGGED, "float32", padding=padding)
    for exp, got in zip(outcome.expected, expected):
        np.testing.assert_array_equal(exp, got)  # the oracle computed y's padded steps by that convention
    assert f"lengths [4, 6, 1] (padding {padding})" in r.reason
    assert run(Recording(capabilities=replace(Recording.capabilities, lengths=padding))).result.status == PASS


def test_padded_steps_are_held_to_the_convention_unless_it_is_undefined():
    from dataclasses import replace

    def garbage_at_padding(out):
        y = np.array(out.y)
        y[5, 2] += 1.0  # example 2 (length 1) at step 5: padding
        return out._replace(y=y)
    for padding, status in (("zeros", FAIL), ("undefined", PASS)):
        backend = Recording(garbage_at_padding, capabilities=replace(Recording.capabilities, lengths=padding))
        assert run(backend, RAGGED).result.status == status, padding


def test_a_backend_without_lengths_is_unsupported_for_a_ragged_batch():
    from dataclasses import replace

    backend = Recording(capabilities=replace(Recording.capabilities, lengths=None))
    r = run(backend, RAGGED).result
    assert r.status == UNSUPPORTED and "lengths" in r.reason and not backend.prepared
    assert run(Recording(capabilities=replace(Recording.capabilities, lengths=None))).result.status == PASS
    assert backend.lengths == [] and Recording().lengths == []


def test_a_run_without_lengths_hands_none():
    backend = Recording()
    run(backend)
    assert backend.lengths == [None]


def test_the_sensitivity_of_a_ragged_run_is_taken_with_its_lengths_and_padding():
    """An ill-conditioned long ragged run (seed 60, lengths 1000 and 100, carry): the floor under atol is the
    oracle's sensitivity on the same lengths and convention, not on full sequences (which move by ~1)."""
    from dataclasses import replace

    case = Case("ill-conditioned-ragged", get_case("large-cell-state").spec, batch=2, steps=1000, seed=60,
                lengths=(1000, 100))
    backend = Recording(capabilities=replace(Recording.capabilities, lengths="carry"))
    outcome = run(backend, case)
    model, inputs, expected = oracle_for(case, "float32", padding="carry")
    sensitivity = conditioning.sensitivity(model, inputs, expected, "float32", lengths=case.length_array,
                                           padding="carry")
    assert outcome.result.status == PASS and set(map(id, backend.padding_asked)) == {id(case.spec)}
    assert 1e-3 < sensitivity < 1e-2 and outcome.comparison.tolerance.atol == 10 * sensitivity
