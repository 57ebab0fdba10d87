"""The bad-input matrix over every registered backend: Backend.run and forward_callable (the base class's own)
refuse a bad x, h0, c0 or lengths with an error naming it, before the backend's own code runs (harness/inputs.py),
and pass a missing c0 (or h0) on as zeros. Nothing is broadcast, ignored or truncated."""

from __future__ import annotations

import numpy as np
import pytest

from harness import CanonicalLSTM, LSTMSpec, backends
from harness.backends import Prepared, UnsupportedFeature

SPEC = LSTMSpec(input_size=3, hidden_size=2)  # one layer, one direction: h0 and c0 are [1, B, 2]
T, B = 4, 3


@pytest.fixture(scope="module", params=backends.names())
def prepared(request):
    """(backend, its prepared tiny model), once per backend; a framework that is not installed is skipped, saying
    why. A backend with no CPU path (jax-cudnn) gets a Prepared without a live model: the checks are the base
    class's and never reach the model (framework_calls proves it), so they are tested for it all the same."""
    backend = backends.get(request.param)
    reason = backend.installed()
    if reason:
        pytest.skip(f"not installed: {reason}")
    if backend.supports(SPEC, "float32", "cpu"):
        return backend, Prepared(backend.name, SPEC, "float32", "cuda", model=None)
    return backend, backend.prepare(CanonicalLSTM.random(SPEC), "float32", "cpu")


@pytest.fixture
def framework_calls(prepared, monkeypatch):
    """Stand-ins for the backend's own _run / _forward_callable: record what reaches them, run nothing."""
    backend, _ = prepared
    calls = []
    for name in ("_run", "_forward_callable"):
        monkeypatch.setattr(backend, name, lambda model, x, h0, c0, *, batch_first=False, name=name, **lengths:
                            calls.append((name, x, h0, c0, *lengths.values())))
    return calls


def _x(t=T, b=B, n=3, dtype=np.float32):
    return np.random.default_rng(0).uniform(-1, 1, (t, b, n)).astype(dtype)


def _state(n=1, b=B, width=2, dtype=np.float32):
    return np.full((n, b, width), 0.5, dtype)


def _nan_x():
    x = _x()
    x[2, 1, 0] = np.nan
    return x


BAD = {  # what a careless caller passes -> (error, what the message must say)
    "h0 with an extra layer entry": (dict(h0=_state(n=2), c0=_state()), ValueError, r"^h0: expected shape \(1, 3, 2\)"),
    "c0 with an extra layer entry": (dict(h0=_state(), c0=_state(n=2)), ValueError, r"^c0: expected shape \(1, 3, 2\)"),
    "a batch-1 state for batch 3": (dict(h0=_state(b=1), c0=_state(b=1)), ValueError,
                                    r"^h0: expected shape \(1, 3, 2\) .*got \(1, 1, 2\)"),
    "no time steps (T = 0)": (dict(x=_x(t=0)), ValueError, "^x: expected at least one time step"),
    "a wrong last dimension": (dict(x=_x(n=4)), ValueError, r"^x: expected last dimension input_size=3, got shape"),
    "a wrong state width": (dict(h0=_state(), c0=_state(width=3)), ValueError, r"^c0: expected shape \(1, 3, 2\)"),
    "an integer x": (dict(x=_x(dtype=np.int64)), TypeError, "^x: expected a floating-point array, got dtype int64"),
    "an integer h0": (dict(h0=_state(dtype=np.int32), c0=_state()), TypeError, "^h0: expected a floating-point array"),
    "NaN in x": (dict(x=_nan_x()), ValueError, r"^x: expected finite values, got 1 non-finite .*at index \(2, 1, 0\)"),
    "inf in c0": (dict(h0=_state(), c0=_state() * np.inf), ValueError, "^c0: expected finite values"),
    "a 2-D x": (dict(x=_x()[0]), ValueError, r"^x: expected a 3-D array \[T, B, input_size\], got shape \(3, 3\)"),
    "float lengths": (dict(lengths=np.array([4.0, 2.0, 1.0])), TypeError, "^lengths: expected integers"),
    "a zero length": (dict(lengths=[4, 0, 1]), ValueError, r"^lengths: .* got 0 at index 1: 0 \(an empty sequence"),
    "a negative length": (dict(lengths=[4, 2, -1]), ValueError, "^lengths: .* got -1 at index 2: a negative length"),
    "a length above T": (dict(lengths=[5, 2, 1]), ValueError, "^lengths: .* got 5 at index 0: more than the 4 steps"),
    "lengths for another batch": (dict(lengths=[4, 2]), ValueError, r"^lengths: expected shape \(3,\)"),
}


@pytest.mark.parametrize("bad", list(BAD))
def test_a_bad_input_is_refused_naming_it_before_the_backend_runs(bad, prepared, framework_calls):
    backend, model = prepared
    given, error, message = BAD[bad]
    inputs = {"x": _x(), "h0": None, "c0": None, **given}
    with pytest.raises(error, match=message):
        backend.run(model, **inputs)
    with pytest.raises(error, match=message):
        backend.forward_callable(model, **inputs)
    assert framework_calls == []  # refused before the framework was called


@pytest.mark.parametrize("given", ["h0", "c0"])
def test_one_state_without_the_other_is_the_zero_state(given, prepared, framework_calls):
    backend, model = prepared
    backend.run(model, _x(), **{given: _state()})
    (_, x, h0, c0), = framework_calls
    missing = c0 if given == "h0" else h0
    assert missing.shape == (1, B, 2) and missing.dtype == np.float32 and not missing.any()


def test_lengths_reach_the_backend_as_int64_or_are_refused_as_unsupported(prepared, framework_calls):
    backend, model = prepared
    reason = backend.supports(SPEC, "float32", model.device, lengths=True)
    if reason:  # said before its code runs, with the reason supports() gives
        with pytest.raises(UnsupportedFeature, match="cannot run per-example sequence lengths"):
            backend.run(model, _x(), lengths=[4, 2, 1])
        assert framework_calls == []
        return
    backend.run(model, _x(), lengths=[4, 2, 1])
    backend.run(model, _x())
    (_, _, _, _, lengths), (_, _, _, _) = framework_calls  # passed only when given
    assert lengths.dtype == np.int64 and lengths.tolist() == [4, 2, 1]


def test_a_model_prepared_by_another_backend_is_refused(prepared, framework_calls):
    backend, model = prepared
    other = "torch" if backend.name != "torch" else "numpy"
    foreign = type(model)(other, model.spec, model.dtype, model.device, model.model)
    with pytest.raises(TypeError, match=f"{backend.name}.run\\(prepared\\): expected what {backend.name}.prepare\\(\\) "
                                        f"returned, got a Prepared of {other}"):
        backend.run(foreign, _x())
    with pytest.raises(TypeError, match="got ndarray"):
        backend.forward_callable(np.zeros(3), _x())
    assert framework_calls == []
