"""Everything of the GPU runs and the benchmarks that a machine without a GPU can check.

Precision modes set and read back, tolerances per device, devices reported present or missing
(a skip with its reason), the kernel that ran, the timed forward computing the real thing, the FLOP
count, benchmarks kept out of a plain `pytest`, and `python -m harness bench` leaving a JSON.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness import backends, bench, devices, precision
from harness.backends import Backend, Capabilities
from harness.catalogue import get_case
from harness.compare import GPU_TOLERANCES, TOLERANCES, compare, tolerance_for
from harness.outputs import LSTMOutput
from harness.report.performance import load_run
from harness.results import NOT_INSTALLED, PASS, SKIPPED
from harness.runner import oracle_for, run_case

ROOT = Path(__file__).resolve().parents[1]


def installed(name: str) -> backends.Backend:
    backend = backends.get(name)
    if backend.installed():
        pytest.skip(f"not installed: {backend.installed()}")
    return backend


@pytest.fixture
def exact_afterwards():
    yield
    precision.apply("exact")


# Precision -----------------------------------------------------------------------------------
def test_modes_set_and_read_back_torch_flags(exact_afterwards):
    installed("torch")
    import torch

    tf32 = precision.apply("tf32")
    assert tf32["precision"] == "tf32" and precision.tf32_allowed()
    assert tf32["torch.backends.cudnn.allow_tf32"] == "True" and tf32["torch.backends.cudnn.rnn.fp32_precision"] == "tf32"
    assert tf32["torch.backends.cuda.matmul.fp32_precision"] == "tf32"
    exact = precision.apply("exact")
    assert exact["torch.backends.cudnn.allow_tf32"] == "False" and exact["torch.backends.cuda.matmul.allow_tf32"] == "False"
    assert exact["torch.backends.cudnn.rnn.fp32_precision"] == "none"  # the newer API's view: no TF32
    assert exact["torch.backends.cuda.matmul.fp32_precision"] == "ieee"
    assert exact["torch.cuda.matmul.allow_fp16_reduced_precision_reduction"] == "False"
    assert not precision.tf32_allowed()
    # One API, consistently: torch's own code that reads the older flags must not raise (torch.onnx.export does).
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        pass


def test_unknown_mode_and_dtype_are_refused_by_name():
    with pytest.raises(ValueError, match=r"precision mode must be one of \('exact', 'tf32'\), got 'fast'"):
        precision.apply("fast")
    with pytest.raises(ValueError, match="dtype: expected one of"):
        precision.dtype_name("float17")
    assert precision.dtype_name(np.float16) == "float16"


def test_bfloat16_without_ml_dtypes_is_not_installed_naming_the_extras(monkeypatch):
    if precision.dtype_missing("bfloat16") is None:  # here: ml_dtypes came with jax or tensorflow
        assert precision.dtype_name("bfloat16") == "bfloat16"
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # as in a torch-only install (.[torch,test])
    reason = precision.dtype_missing("bfloat16")
    assert reason.startswith("dtype bfloat16 needs the ml_dtypes package") and "install the jax or tf extra" in reason
    r = run_case(get_case("plain"), "torch", "bfloat16").result
    assert (r.status, r.reason) == (NOT_INSTALLED, reason)  # a cell that cannot run here, not bad input
    assert precision.check_dtype("bfloat16") == "bfloat16"  # so --dtype bfloat16 is no usage error either


def test_the_mode_goes_with_every_result(exact_afterwards):
    installed("torch")
    r = run_case(get_case("plain"), "torch", "float32", "cpu", "exact").result
    assert r.status == PASS, r.reason
    assert r.precision == "exact" and r.environment["precision"] == "exact"
    assert r.environment["torch.backends.cudnn.allow_tf32"] == "False"


# Tolerances per device --------------------------------------------------------------------
def test_gpu_bounds_are_their_own_and_say_what_they_rest_on():
    assert tolerance_for("float32", "exact", device="cpu") is TOLERANCES[("float32", "exact")]
    assert tolerance_for("float32", "exact", device="cuda") is GPU_TOLERANCES[("float32", "exact")]
    assert tolerance_for("float32", "tf32", device="cuda").atol > tolerance_for("float32", "exact", device="cuda").atol
    for (dtype, mode), tol in GPU_TOLERANCES.items():
        assert "not re-measured" in tol.evidence or "NOT MEASURED ON A GPU" in tol.evidence, (dtype, mode)
    with pytest.raises(KeyError, match="python -m harness measure --device cpu --dtype float32 --precision tf32"):
        tolerance_for("float32", "tf32", device="cpu")


# Devices ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["torch", "keras"])
def test_gpu_backends_report_each_device(name):
    backend = installed(name)
    present = backend.devices_present()
    assert set(present) == {"cpu", "cuda"} and present["cpu"] is None
    reason = devices.missing(backend.runtime(), "cuda")
    assert present["cuda"] == reason
    if reason is not None:  # this machine: the reason names the runtime that has no GPU
        assert {"torch": "torch", "tensorflow": "TensorFlow", "jax": "jax"}[backend.runtime()] in reason


@pytest.mark.parametrize("name", ["torch", "keras"])
def test_no_gpu_is_a_skip_with_the_reason(name):
    backend = installed(name)
    reason = backend.device_missing("cuda")
    if reason is None:
        pytest.skip("skipped: a CUDA device is present here (this test checks the machine without one)")
    r = run_case(get_case("plain"), name, "float32", "cuda", "exact").result
    assert (r.status, r.reason) == (SKIPPED, reason)


def test_a_backend_without_a_gpu_path_and_an_unknown_runtime_say_so():
    class CpuOnly(Backend):
        name, framework, capabilities = "cpu-only", "numpy", Capabilities()

    assert CpuOnly().device_missing("cuda") == "cpu-only has no cuda path (devices: cpu)"
    assert devices.missing("some-runtime", "cuda") == "some-runtime has no cuda path"
    with pytest.raises(ValueError, match="device must be one of"):
        devices.missing("torch", "gpu0")


def test_pytest_m_gpu_selects_the_cuda_cases():
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q", "-m", "gpu",
                          "--backend", "torch", "--dtype", "float32", "cases/test_agreement.py"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    assert ids and all("cuda-float32" in i for i in ids), out.stdout[-2000:]
    assert len(ids) == len([c for c in ids if "test_agreement[" in c])  # the sweep runs on the cpu only



GOOD_OPTIONS = {"--backend": "", "--dtype": "float32", "--device": "cpu", "--precision": "exact", "--results": "",
                "--report": "", "--bench-not-run": ""}


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--dtype", "float8", "--dtype: expected one of"), ("--device", "tpu", "--device: device must be one of"),
    ("--precision", "fast", "--precision: precision mode must be one of"),
    ("--backend", "nope", "--backend: unknown backend 'nope'")])
def test_a_bad_pytest_option_is_a_usage_error_naming_it(option, value, message):
    from conftest import _check_options

    given = {**GOOD_OPTIONS, option: value}
    with pytest.raises(pytest.UsageError, match=f"^{re.escape(message)}"):
        _check_options(SimpleNamespace(getoption=given.__getitem__))
    _check_options(SimpleNamespace(getoption={**given, option: ""}.__getitem__))  # without the typo: accepted


@pytest.mark.parametrize(("option", "where", "message"), [
    ("--results", "a-folder", "--results: {path} is a folder; expected a file to write"),
    ("--results", "a-file/results.jsonl", "--results: cannot write {path}: {tmp}/a-file is a file, not a folder"),
    ("--report", "a-file", "--report: {path} is a file; expected a folder to write into"),
    ("--report", "locked/new/reports", "--report: cannot write {path}: {tmp}/locked is not writable"),
    ("--bench-not-run", "a-folder", "--bench-not-run: {path} is a folder; expected a file to write")])
def test_an_output_path_that_cannot_be_written_is_a_usage_error_before_the_run(option, where, message, tmp_path):
    """The session's files are written when it ends: a path that cannot be written must stop it at the start,
    not lose a whole run's records at the end."""
    from conftest import _check_options

    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("")
    (tmp_path / "locked").mkdir(mode=0o500)
    path = tmp_path / where
    if option == "--report" and where.startswith("locked") and os.access(tmp_path / "locked", os.W_OK):
        pytest.skip("running as a user who can write anywhere (root): a read-only folder cannot be made here")
    with pytest.raises(pytest.UsageError, match=f"^{re.escape(message.format(path=path, tmp=tmp_path))}"):
        _check_options(SimpleNamespace(getoption={**GOOD_OPTIONS, option: str(path)}.__getitem__))
    fine = tmp_path / "new" / ("reports" if option == "--report" else "out.json")  # made when written: accepted
    _check_options(SimpleNamespace(getoption={**GOOD_OPTIONS, option: str(fine)}.__getitem__))


def test_pytest_stops_on_a_bad_option_with_a_usage_error():
    """The check above, as pytest runs it: exit status 4 and the message, before any test is collected."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q", "--device", "tpu",
                          "cases/test_agreement.py"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 4 and "ERROR: --device: device must be one of" in out.stderr, out.stdout[-2000:] + out.stderr[-2000:]

# The kernel that ran -----------------------------------------------------------------------
@pytest.mark.parametrize(("case_name", "kernel"), [("plain", "oneDNN (aten::mkldnn_rnn_layer)"),
                                                   ("projection", "ATen per-step LSTM cells (no fused kernel)")])
def test_torch_records_its_silent_fallback(case_name, kernel):
    installed("torch")
    r = run_case(get_case(case_name), "torch", "float32", "cpu", "exact").result
    assert r.status == PASS and r.environment["kernel"] == kernel


def test_keras_records_its_path_and_sees_a_declined_cudnn_call():
    backend = installed("keras")
    r = run_case(get_case("plain"), "keras", "float32", "cpu", "exact").result
    if backend.runtime() != "torch":  # on torch, use_cudnn="auto" on cpu too: its own loop runs (below)
        assert r.environment["kernel"] == "generic loop: keras RNN loop over LSTMCell (use_cudnn=False on cpu)"
    model, (x, h0, c0), _ = oracle_for(get_case("plain"), "float32")
    prepared = backend.prepare(model, "float32", "cpu")
    for layer in prepared.model["layers"]:
        layer.use_cudnn = "auto"  # as on a GPU: Keras offers the work to its backend's fused lstm first
    with backend.watch_kernel(prepared) as seen:
        backend.run(prepared, x.astype("float32"), h0.astype("float32"), c0.astype("float32"))
    if backend.runtime() == "torch":  # the torch backend's lstm runs its own loop on a CPU tensor
        assert seen["kernel"].startswith("fused op: keras torch backend.lstm, its own torch loop"), seen
    else:
        assert seen["kernel"] == ("generic loop: keras RNN loop over LSTMCell (backend.lstm declined: its cuDNN "
                                  "conditions do not hold)")


def test_keras_kernel_names_the_gpu_paths():
    from harness.backends.keras import keras_kernel

    bidi = [("bidirectional_lstm", "declined"), ("lstm", "ran"), ("lstm", "ran")]
    assert keras_kernel("tensorflow", bidi, set(), "cuda") == "cuDNN: keras tensorflow backend.lstm (tf CudnnRNN)"
    assert keras_kernel("torch", [("lstm", "ran")], {"aten::_cudnn_rnn"}, "cuda").startswith("cuDNN: cuDNN (aten::_cudnn_rnn)")
    assert keras_kernel("torch", [("lstm", "ran")], {"aten::addmm"}, "cuda").startswith("fused op: ")
    assert "declined" in keras_kernel("jax", [("lstm", "declined")], set(), "cuda")


# The timed forward -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["torch", "keras"])
def test_the_timed_call_computes_the_forward(name):
    backend = installed(name)
    case = get_case("bidirectional-2layer")
    model, (x, h0, c0), expected = oracle_for(case, "float32")
    prepared = backend.prepare(model, "float32", "cpu")
    forward = backend.forward_callable(prepared, *(a.astype("float32") for a in (x, h0, c0)))
    got = forward.fetch(forward.call())
    result = compare(case.spec, LSTMOutput.of(*got), expected, tolerance_for("float32"))
    assert result.ok, result.message()
    assert forward.what


def test_the_default_timed_call_is_run():
    from harness.backends.numpy_ref import NumpyBackend

    model, (x, h0, c0), expected = oracle_for(get_case("plain"), "float64")
    backend = NumpyBackend()
    forward = backend.forward_callable(backend.prepare(model, "float64"), x, h0, c0)
    assert "run()" in forward.what  # the backend's own _run, inputs checked by forward_callable
    np.testing.assert_array_equal(forward.fetch(forward.call()).y, expected.y)


# Benchmarks --------------------------------------------------------------------------------
def test_forward_flops_counts_every_matrix_product():
    from harness.spec import LSTMSpec

    assert bench.forward_flops(LSTMSpec(input_size=5, hidden_size=7), batch=2, steps=3) == 3 * 2 * 2 * 28 * (5 + 7)
    spec = LSTMSpec(input_size=5, hidden_size=7, proj_size=4, num_layers=2, bidirectional=True)
    per_step_l0 = 2 * (2 * 2 * 28 * (5 + 4) + 2 * 2 * 4 * 7)  # two directions, input 5, recurrent 4
    per_step_l1 = 2 * (2 * 2 * 28 * (8 + 4) + 2 * 2 * 4 * 7)  # layer 1 reads both directions' 4
    assert bench.forward_flops(spec, batch=2, steps=3) == 3 * (per_step_l0 + per_step_l1)


def test_the_selection_holds_the_sizes_and_sweeps():
    cpu, gpu = bench.works(["cpu"]), bench.works(["cuda"])
    sizes = lambda ws: {(w.batch, w.steps, w.input_size, w.hidden_size) for w in ws if not w.sweep}  # noqa: E731
    assert sizes(cpu) == {(64, 100, 512, 512), (1, 100, 512, 512), (16, 25, 256, 256)}
    assert sizes(gpu) == sizes(cpu) | {(64, 512, 1024, 1024)}
    assert {w.dtype for w in cpu} == {"float32"} and {w.dtype for w in gpu} == {"float32", "float16", "bfloat16"}
    # The sweeps' points, less the one the standard size (16, 25, 256, 256) already times (the report charts it there).
    assert sorted(w.steps for w in cpu if w.sweep == "steps") == [t for t in bench.SWEEP_STEPS if t != 25]
    assert sorted(w.batch for w in cpu if w.sweep == "batch") == [b for b in bench.SWEEP_BATCH if b != 16]
    assert len({w.id for w in cpu + gpu}) == len(cpu + gpu)
    tf32 = bench.works(["cpu", "cuda"], "tf32")  # TF32 changes float32 products on a GPU, nothing else
    assert tf32 == [w for w in gpu if w.dtype == "float32"]


def test_benchmarks_stay_out_of_a_plain_pytest():
    def pytest_(*args):
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--backend", "torch", *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=300).stdout

    others = ("--ignore-glob=cases/test_*.py", "--ignore-glob=cases/*/test_*.py")  # cases/ less the test modules
    assert "no tests collected" in pytest_("--co", "-q", *others)
    assert "bench_forward.py::test_forward[cpu-float32-B64-T100-I512-H512-torch]" in pytest_("--co", "-q", *others, "--bench")
    explicit = pytest_("-q", "-rs", "-k", "steps-B16-T1-", "cases/bench_forward.py")
    assert "benchmarks run only with --bench" in explicit and " passed" not in explicit


def test_harness_bench_leaves_a_json_for_the_reports(tmp_path):
    installed("torch")
    out = tmp_path / "bench.json"
    earlier = json.loads((ROOT / "cases" / "data" / "benchmark-sample.json").read_text())
    out.write_text(json.dumps({**earlier, "benchmarks": [b for b in earlier["benchmarks"]
                                                         if b["extra_info"]["backend"] == "keras"]}))
    run = subprocess.run([sys.executable, "-m", "harness", "bench", "--backend", "torch", "--device", "cpu,cuda",
                          "--seconds", "0.05", "-k", "steps-B16-T1-", "--out", str(out), "--machine", "ci-box"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(data)  # pytest-benchmark's
    kept = [b for b in data["benchmarks"] if b["extra_info"]["backend"] == "keras"]  # merged into, not replaced
    assert len(kept) == 10 and {b["extra_info"]["run_datetime"] for b in kept} == {earlier["datetime"]}
    [cpu] = [b for b in data["benchmarks"] if b["extra_info"]["device"] == "cpu" and b["extra_info"]["backend"] == "torch"]
    info = cpu["extra_info"]
    assert cpu["group"] == "sweep steps cpu float32 B16 I256 H256" and cpu["stats"]["rounds"] >= 3
    assert info["kernel"] == "oneDNN (aten::mkldnn_rnn_layer)"
    assert info["first_call_s"] > 0 and info["threads"]["torch.num_threads"] == str(len(os.sched_getaffinity(0)))
    assert info["precision_flags"]["torch.backends.cudnn.allow_tf32"] == "False"
    assert info["achieved_flops_per_s"] == pytest.approx(info["flops"] / cpu["stats"]["median"])
    assert info["oracle_max_abs_err"] < 1e-5 and info["peak_how"].startswith("torch.matmul 2048x2048 float32")
    assert data["machine_info"]["lstm_harness"]["backends"]["torch"]["environment"]["torch"]
    assert load_run(out).machines == ["ci-box"]  # --machine labels the file for `report --bench-json`
    gpu = [b for b in data["benchmarks"] if b["extra_info"]["device"] == "cuda"]
    if backends.get("torch").device_missing("cuda"):  # no GPU here: each GPU benchmark is listed with why
        assert not gpu
        not_run = {n["dtype"]: n for n in data["lstm_harness"]["not_run"]}
        no_bf16 = precision.dtype_missing("bfloat16")  # without ml_dtypes (a torch-only install): not installed
        expected = {"float32": (SKIPPED, "no CUDA device visible to torch"),
                    "float16": (SKIPPED, "no CUDA device visible to torch"),
                    "bfloat16": (NOT_INSTALLED, no_bf16) if no_bf16 else (SKIPPED, "no CUDA device visible to torch")}
        assert set(not_run) == set(expected)
        for dtype, (status, reason) in expected.items():
            assert not_run[dtype]["status"] == status and reason in not_run[dtype]["reason"], not_run[dtype]


def test_a_dtype_or_device_the_harness_has_no_meaning_for_is_bad_input_not_unsupported():
    for dtype in ("int32", "complex64"):
        with pytest.raises(ValueError, match=f"dtype: expected one of .*got '{dtype}'"):
            precision.dtype_name(dtype)
    with pytest.raises(ValueError, match="dtype: expected one of .*got 'int32'"):
        run_case(get_case("plain"), "torch", "int32")
    with pytest.raises(ValueError, match=r"device must be one of \('cpu', 'cuda'\), got 'gpu'"):
        run_case(get_case("plain"), "torch", "float32", "gpu")


def test_op_names_read_kineto_events_or_fall_back_to_key_averages():
    from types import SimpleNamespace

    from harness.kernels import _op_names

    event = SimpleNamespace(name=lambda: "aten::mkldnn_rnn_layer")
    raw = SimpleNamespace(profiler=SimpleNamespace(kineto_results=SimpleNamespace(events=lambda: [event])))
    assert _op_names(raw) == {"aten::mkldnn_rnn_layer"}
    public = SimpleNamespace(key_averages=lambda: [SimpleNamespace(key="aten::lstm")])  # internals moved
    assert _op_names(public) == {"aten::lstm"}
