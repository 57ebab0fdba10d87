"""Keras 3 on each of its backends: keras-tensorflow, keras-jax and keras-torch (harness/backends/keras.py),
the worker process that runs those that are not this process's Keras backend (keras_worker.py), and the
forwards the benchmarks time (keras_compiled.py).

The agreement cases (test_agreement.py) check each subject's direct (eager) layer call against the oracle;
here each timed forward, per variant, is checked against that direct call and the oracle: what the
benchmarks time is the LSTM the matrix checked, not some other or cheaper call.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from harness import CanonicalLSTM, LSTMSpec, backends
from harness.backends import keras_compiled
from harness.backends.keras import process_keras_backend
from harness.backends.keras_worker import Worker, WorkerDied, _portable, _rebuild
from harness.catalogue import get_case
from harness.compare import compare, tolerance_for
from harness.runner import oracle_for

KERAS = ("keras-tensorflow", "keras-jax", "keras-torch")
CASE = get_case("bidirectional-2layer")  # stacked and bidirectional, with an initial state: every index in play


def installed(name: str):
    backend = backends.get(name)
    reason = backend.installed()
    if reason:
        pytest.skip(f"not installed: {reason}")
    return backend


@pytest.fixture(scope="module")
def data():
    model, (x, h0, c0), expected = oracle_for(CASE, "float32")
    return model, tuple(a.astype(np.float32) for a in (x, h0, c0)), expected


@pytest.fixture(scope="module")
def prepared(data, request):
    """name -> (backend, its prepared model, the direct layer call's outputs), built once per Keras backend."""
    model, inputs, _ = data
    made = {}
    # In one process the workers import while this process builds its own. Not in an xdist worker: it runs
    # one keras-<b>'s tests (conftest.worker_scope), and starting the others there cost 3-5 s of CPU each.
    if not hasattr(request.config, "workerinput"):
        for name in KERAS:
            backends.get(name).start_in_background()

    def get(name):
        if name not in made:
            backend = installed(name)
            live = backend.prepare(model, "float32", "cpu")
            made[name] = backend, live, backend.run(live, *inputs)
        return made[name]
    return get


@pytest.mark.parametrize(("name", "variant"), [
    pytest.param(name, variant, marks=[pytest.mark.slow] if variant == "torch.compile" else [])  # ~60 s compile
    for name in KERAS for variant in keras_compiled.VARIANTS[name.removeprefix("keras-")]
    if variant != keras_compiled.EAGER])  # eager is the direct call itself (run() times nothing else)
def test_the_timed_forward_is_the_direct_call(name, variant, prepared, data):
    """Each benchmarked callable gives the direct layer call's outputs (and the oracle's) and records its path."""
    backend, live, direct = prepared(name)
    _, inputs, expected = data
    forward = backend.forward_callable(live, *inputs, variant=variant)
    with backend.watch_kernel(live) as seen:
        got = forward.fetch(forward.call())
    tol = tolerance_for("float32")
    same = compare(CASE.spec, got, direct, tol)
    assert same.ok, same.message(f" ({name} {variant} against its direct call)")
    assert compare(CASE.spec, got, expected, tol).ok
    assert keras_compiled.COVERS[variant] in forward.what
    assert seen["kernel"].split(":")[0] in ("cuDNN", "fused op", "generic loop"), seen


def test_a_variant_that_is_not_there_is_named():
    backend = installed("keras-tensorflow")
    model = CanonicalLSTM.random(LSTMSpec(input_size=2, hidden_size=3))
    x = np.zeros((2, 1, 2), np.float32)
    with pytest.raises(ValueError, match="variant: expected one of 'tf.function', .* got 'jax.jit'"):
        backend.forward_callable(backend.prepare(model), x, variant="jax.jit")


def test_each_keras_backend_runs_in_its_own_process():
    """keras-<this process's Keras backend> runs here; the others in a worker that has its KERAS_BACKEND."""
    current = process_keras_backend()
    for name in KERAS:
        backend = backends.get(name)
        if backend.modules_missing():
            continue  # not installed here: nothing to run anywhere
        assert backend.installed() is None, name  # found here, so its worker (or this process) must import it
        here = backend.keras_name == current
        assert backend.in_process() is here and (backend.timing_missing() is None) is here, name
        assert backend.environment()["keras_backend"] == backend.keras_name  # asked where it runs
        assert backend.process_env() == {"KERAS_BACKEND": backend.keras_name}
    assert set(KERAS) <= set(backends.subjects()) and "keras" not in backends.subjects()
    alias = backends.get("keras")
    assert alias.alias
    if current is not None:  # None: no Keras to ask (a torch-only install)
        assert alias.keras_backend() == current


def test_the_keras_alias_is_accepted_but_not_a_column(capsys):
    from harness.__main__ import main

    installed("keras")
    assert main(["run", "--case", "seed-question", "--backend", "keras", "--dtype", "float32",
                 "--results", "", "--reports", ""]) == 0
    header = [line for line in capsys.readouterr().out.splitlines() if line.startswith("case ")]
    assert header and header[0].split() == ["case", "keras"]


def _remote() -> backends.Backend:
    for name in KERAS:
        backend = backends.get(name)
        if backend.installed() is None and not backend.in_process():
            return backend
    pytest.skip("skipped: no Keras backend here runs in a worker (none other than this process's is installed)")


def test_lengths_reach_a_worker_as_a_mask():
    """Per-example lengths cross the pipe (Backend.run -> the worker's run): the Keras layers in the worker carry
    the last valid output past each length and stop their state there (one small layer on a cheap backend: the
    ragged agreement cases run every keras-<b> in its own process, and in-process here)."""
    remote = [n for n in ("keras-torch", "keras-tensorflow", "keras-jax")
              if backends.get(n).installed() is None and not backends.get(n).in_process()]
    if not remote:
        pytest.skip("skipped: no Keras backend here runs in a worker (none other than this process's is installed)")
    backend = backends.get(remote[0])
    model = CanonicalLSTM.random(LSTMSpec(input_size=3, hidden_size=4), seed=1).rounded("float32")
    x = model.random_inputs(2, 5, seed=2)[0].astype(np.float32)
    lengths = np.array([2, 5])
    actual = backend.run(backend.prepare(model, "float32", "cpu"), x, lengths=lengths)
    expected = model.forward(x, lengths=lengths, padding="carry")
    comparison = compare(model.spec, actual, expected, tolerance_for("float32"), lengths=lengths, padding="carry")
    assert comparison.ok, comparison.message(f" ({backend.name} in its worker)")


def test_an_error_in_the_worker_keeps_its_type_and_brings_its_traceback():
    backend = _remote()
    spec = LSTMSpec(input_size=2, hidden_size=3, bias="single")
    with pytest.raises(ValueError, match="keras import: layer 0: expected 3 arrays") as info:
        backend.worker().call("method", "import_", [[np.zeros((2, 12))]], spec)
    note = "\n".join(info.value.__notes__)
    assert f"raised in the {backend.name} worker process (KERAS_BACKEND={backend.keras_name})" in note
    assert "import_" in note  # the worker's traceback


def test_an_exception_only_a_framework_can_rebuild_arrives_as_a_runtime_error_naming_it():
    class XlaRuntimeError(Exception):  # stands for a framework's own exception type
        pass

    exc = XlaRuntimeError("INTERNAL: out of memory")
    assert _portable(exc) is None and _portable(ValueError("v")).args == ("v",)
    rebuilt = _rebuild(Worker("keras-jax", {"KERAS_BACKEND": "jax"}), None, "jaxlib.XlaRuntimeError", str(exc), "tb")
    assert type(rebuilt) is RuntimeError and str(rebuilt) == "jaxlib.XlaRuntimeError: INTERNAL: out of memory"
    assert rebuilt.__notes__ == ["raised in the keras-jax worker process (KERAS_BACKEND=jax):\ntb"]


def test_a_worker_that_dies_is_reported_and_the_next_request_starts_another():
    """The protocol on a cheap worker (the numpy oracle as a backend: no framework import)."""
    worker = Worker("numpy", {"LSTM_HARNESS_WORKER_TEST": "1"})
    model = CanonicalLSTM.random(LSTMSpec(input_size=3, hidden_size=4), seed=1)
    x = model.random_inputs(2, 5, seed=2)[0]
    try:
        handle = worker.prepare(model, "float64", "cpu", "exact")
        np.testing.assert_array_equal(worker.on(handle, "run", x, None, None, False).y, model.forward(x).y)
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(WorkerDied, match=r"exited \(exit code -9\)"):
            worker.on(handle, "run", x, None, None, False)
        with pytest.raises(WorkerDied, match="prepare it again"):
            worker.on(handle, "run", x, None, None, False)
        again = worker.prepare(model, "float64", "cpu", "exact")  # a fresh process
        np.testing.assert_array_equal(worker.on(again, "run", x, None, None, False).y, model.forward(x).y)
    finally:
        pid = worker.pid
        worker.stop()
    assert worker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone (reaped by stop)


@pytest.mark.skipif(not os.path.exists("/proc/self/fd/2"), reason="skipped: no /proc/<pid>/fd (not Linux)")
def test_a_worker_started_inside_the_stderr_filter_writes_to_the_real_stderr():
    """`run` filters stderr while its cases run; a worker (re)started there must not write into that capture, which
    is gone when the block ends (its crash report would be lost): its fd 2 is the stderr from before the block."""
    from harness import quiet

    real = os.readlink("/proc/self/fd/2")
    worker = Worker("numpy", {"LSTM_HARNESS_WORKER_TEST": "1"})
    try:
        with quiet.filtered_stderr():
            worker.start()
            inside = os.readlink("/proc/self/fd/2")
            child = os.readlink(f"/proc/{worker.pid}/fd/2")
        assert inside != real  # the filter was in place
        assert child == real, (child, real)
    finally:
        worker.stop()


@pytest.mark.parametrize(("environment", "keras_json", "expected"), [
    ({}, None, "tensorflow"),  # no keras.json (Keras writes one): its default
    ({}, '{"backend": "jax"}', "jax"),
    ({}, '{"floatx": "float32"}', "tensorflow"),
    ({}, "not json", "tensorflow"),
    ({"KERAS_BACKEND": "torch"}, '{"backend": "jax"}', "torch"),  # the variable decides over the file
    ({"KERAS_BACKEND": ""}, '{"backend": "jax"}', "jax"),  # an empty one does not
])
def test_the_configured_keras_backend_is_the_one_keras_chooses(tmp_path, monkeypatch, environment, keras_json,
                                                                expected):
    """configured_keras_backend (read without importing Keras) against Keras's own config.py, run afresh here
    under the same KERAS_HOME, keras.json and KERAS_BACKEND."""
    import runpy

    installed("keras")  # its config.py is what decides
    import keras.src.backend.config as keras_config

    from harness.backends.keras import configured_keras_backend

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if keras_json is not None:
        (tmp_path / "keras.json").write_text(keras_json)
    ours = configured_keras_backend()
    theirs = runpy.run_path(keras_config.__file__)["_BACKEND"]
    assert ours == theirs == expected
