"""pytest set-up for the cases in cases/: options, framework import order, precision policy, results.

Options (also usable from tox): --backend torch,keras  --device cpu,cuda  --dtype float32
--precision exact|tf32  --results reports/results.jsonl (write one JSON record per agreement test)
--machine LABEL (the machine the results name; default the host name)
--report reports (write agreement.html, and performance.html when benchmarks ran, into that folder).

GPU: `pytest -m gpu` runs the agreement cases on CUDA (the device is added when the -m expression
names gpu); without a GPU every one of them is skipped with the reason.
Slow runs (the 1000-seed run, every backend on long sequences) are skipped unless the -m expression names
slow: `pytest -m slow`. Property-based tests (hypothesis) run the `ci` profile (a few examples per backend);
`--hypothesis-profile thorough` (or HYPOTHESIS_PROFILE=thorough) runs many more.
Benchmarks (cases/bench_*.py) run only with --bench; see cases/bench_forward.py and
`python -m harness bench`, which runs one process per backend and precision mode.
`slow` tests run only with -m slow (WORKER_CASES below says which agreement cases a backend running in a
worker process takes in a plain run).
"""

from __future__ import annotations

import importlib.util
import os
import re

import pytest

from harness import import_order, quiet

# A pytest-xdist worker (-n N) shares the cores with N - 1 others: each framework gets its share of threads, set
# before any of them is imported (a value the user set wins). Without this, torch's OpenMP pool, XLA's Eigen pool
# and TensorFlow's pools, each sized for the whole machine, spin against the other workers. Measured on 2 cores:
# -n 2 used 269 s of CPU where one process uses 167-189 s; with these shares and the grouping below, 208-220 s.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _share = str(max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ.setdefault(_name, _share)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    # XLA is left alone: --xla_cpu_multi_thread_eigen=false changes the program XLA builds, and compiling
    # took 1.5x the CPU time with it (measured: Flax's agreement cases, 14.3 s against 9.3 s).

# torch before tensorflow (Keras's own test suite does this to avoid a crash seen elsewhere when TF loads first),
# imported when TensorFlow first is. Each framework is imported at most once per process.
import_order.torch_before_tensorflow()

quiet.environment()  # keep the frameworks' start-up chatter out of test output (set before TensorFlow loads)

if importlib.util.find_spec("hypothesis") is not None:
    from hypothesis import HealthCheck, settings

    # deadline=None: a first call compiles (JAX, Keras), which is not slowness. Few examples by default: each runs
    # every installed backend; `thorough` is the long search.
    _common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                   print_blob=True)
    settings.register_profile("ci", max_examples=1, database=None, **_common)
    settings.register_profile("thorough", max_examples=200, **_common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def pytest_addoption(parser):
    g = parser.getgroup("lstm-harness")
    g.addoption("--backend", default="", help="comma-separated backends to test (default: all registered)")
    g.addoption("--device", default="cpu", help="comma-separated devices: cpu, cuda (default: cpu)")
    g.addoption("--dtype", default="float32,float64", help="comma-separated dtypes (default: float32,float64)")
    g.addoption("--precision", default="exact", help="precision mode (default: exact = TF32 off)")
    g.addoption("--results", default="", help="write the agreement results as JSON lines to this path")
    g.addoption("--machine", default="", metavar="LABEL",
                help="the machine the results (and benchmark JSON) name (default: this host's name)")
    g.addoption("--bench", action="store_true", help="collect and run the benchmarks (cases/bench_*.py)")
    g.addoption("--bench-threads", type=int, default=len(os.sched_getaffinity(0)),
                help="CPU threads for every runtime in benchmarks (default: the cores this process may use)")
    g.addoption("--bench-seconds", type=float, default=2.0,
                help="timed seconds to aim for per benchmark; rounds = clamp(seconds / one call)")
    g.addoption("--bench-min-rounds", type=int, default=3, help="fewest timed rounds per benchmark")
    g.addoption("--bench-warmup", type=int, default=2, help="untimed warm-up rounds after the first call")
    g.addoption("--bench-not-run", default="",
                help="write the benchmarks that could not run here (status, reason) as JSON to this path")
    g.addoption("--report", default="", metavar="DIR",
                help="write the HTML reports into DIR (with results.jsonl, and bench.json when benchmarks ran)")
    g.addoption("--flake-seeds", type=int, default=1000,
                help="weight seeds per backend and dtype in the slow flake run (cases/test_flake.py; default 1000)")


def _devices(config) -> list[str]:
    """--device, plus cuda when the -m expression selects gpu tests (so `pytest -m gpu` alone works)."""
    devices = _csv(config.getoption("--device"))
    if re.search(r"\bgpu\b", config.getoption("markexpr", "") or "") and "cuda" not in devices:
        devices.append("cuda")
    return devices


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: runs on a CUDA device (--device cuda, or -m gpu)")
    config.addinivalue_line("markers", "bench: a benchmark; runs only with --bench")
    config.addinivalue_line("markers", "slow: a long run, not in the default pytest (pytest -m slow runs it)")
    config._lstm_results = []
    config._lstm_not_run = []  # benchmarks that could not run here, with the status and reason
    _check_options(config)
    _check_parallel(config)
    if _xdist_worker(config):
        from harness import quick_exit

        quick_exit.at_exit()  # its records went to the controller; the controller would wait out its teardown


def _xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")  # a pytest-xdist worker process (-n N): the controller writes the files


def _check_parallel(config):
    """pytest-xdist (-n N): the benchmarks need one process."""
    if _xdist_worker(config) or not getattr(config.option, "numprocesses", None):
        return
    if config.getoption("--bench"):
        raise pytest.UsageError("--bench: benchmarks are timed in one process (pytest-benchmark turns itself off "
                                "under pytest-xdist): drop -n, or run python -m harness bench")


GROUPED_MODULES = ("cases/test_agreement.py::", "cases/test_negative_controls.py::")
# Modules whose tests share module-scoped fixtures that are dear to make or write one fixed path: split over two
# workers, each worker made its own (measured: the default_run fixture, a `python -m harness run` of every
# framework, ran twice, 7 s each; the browser and its pages twice, and both workers rewrote reports/browser).
ONE_WORKER_MODULES = ("cases/test_report_browser.py", "cases/test_reports.py")
# Every test that starts a Keras worker process (a keras-<b> beside this process's Keras backend) runs in one xdist
# worker, so each of those processes starts once per run: a test naming such a backend, and these modules, whose
# tests start them without naming one (`list backends`, the worker's own tests). Measured: keras-jax and keras-torch
# each started in both xdist workers, the second start 3.7 and 5.2 s of CPU. (test_cli's module-scoped run is
# made once for that reason too.)
KERAS_WORKER_MODULES = ("cases/test_cli.py", "cases/test_keras_backends.py")
KERAS_WORKER_SCOPE = "keras worker processes"


def backend_group(nodeid: str, names, everywhere=()) -> str | None:
    """The backend of an agreement test (the longest of `names` that is a whole part of its id's parameters:
    keras-torch before torch), or of any test whose parameters name one of `everywhere`; else None."""
    if "[" not in nodeid:
        return None
    params = "-" + nodeid[nodeid.index("[") + 1:nodeid.rindex("]")] + "-"
    candidates = names if nodeid.startswith(GROUPED_MODULES) else everywhere
    return next((n for n in sorted(candidates, key=len, reverse=True) if f"-{n}-" in params), None)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's controller
def pytest_xdist_make_scheduler(config, log):
    """Under -n (xdist's default --dist load), one backend's agreement cases run in one worker: a JAX backend
    compiles a program once for every case that shares it (measured: 37 of 194 programs compiled twice without).
    So do all tests that start a Keras worker process (a keras-<b> beside this process's Keras backend), in any
    module: each of those processes starts once (~4 s of CPU each time); and the tests of each ONE_WORKER_MODULES
    module. Every other test is balanced as
    --dist load balances it. (xdist's own --dist
    loadgroup cannot do this under pytest 9.2: it renames a test through Item._nodeid, which 9.2 no longer reads.)"""
    if config.option.dist != "load":
        return None  # a mode the user chose
    from xdist.scheduler import LoadScopeScheduling

    from harness import backends

    names = backends.names()
    in_worker = [n for n in names if getattr(backends.get(n), "in_worker", lambda: False)()]

    class ByBackend(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_scope(nodeid, names, in_worker)

    return ByBackend(config, log)


def worker_scope(nodeid: str, names, in_worker=()) -> str:
    """What runs together in one xdist worker: every test that starts a Keras worker process (KERAS_WORKER_SCOPE),
    a backend's group (backend_group), a module of ONE_WORKER_MODULES, or else the test alone (balanced freely)."""
    group = backend_group(nodeid, names, in_worker)
    module = nodeid.split("::", 1)[0]
    if group in in_worker or module in KERAS_WORKER_MODULES:
        return KERAS_WORKER_SCOPE
    if group:
        return f"backend {group}"
    return f"module {module}" if module in ONE_WORKER_MODULES else nodeid


def _check_options(config):
    """A typo in --backend/--dtype/--device/--precision is a usage error naming it, not N failed tests; so is
    a --results/--report/--bench-not-run path that could not be written."""
    from harness import backends, devices, precision

    checks = (("--backend", backends.get), ("--dtype", precision.check_dtype), ("--device", devices.check_device),
              ("--precision", precision.check_mode))
    for option, check in checks:
        for value in _csv(config.getoption(option)):
            try:
                check(value)
            except (KeyError, ValueError) as exc:
                message = str(exc.args[0]).removeprefix(option[2:] + ": ")  # no "--dtype: dtype: ..."
                raise pytest.UsageError(f"{option}: {message}") from None
    from harness.atomic import cannot_write

    # The files written when the session ends, checked now: a bad path fails in the first second, not after the run.
    for option, kind in (("--results", "file"), ("--report", "folder"), ("--bench-not-run", "file")):
        path = config.getoption(option)
        problem = cannot_write(path, kind) if path else None
        if problem:
            raise pytest.UsageError(f"{option}: {problem}")


def pytest_collect_file(file_path, parent):
    # Benchmarks do not match test_*.py, so a plain `pytest` never collects them; --bench does.
    if parent.config.getoption("--bench") and file_path.suffix == ".py" and file_path.name.startswith("bench_") \
            and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_collection_finish(session):
    """The backends the selected tests use begin their slow set-up now, in the background (keras-<b> on
    another Keras backend: its worker process imports while the first tests run)."""
    from harness import backends

    if session.config.option.collectonly or _xdist_worker(session.config):
        return  # an xdist worker runs only the tests it is sent: a backend starts when its first one runs
    for name in dict.fromkeys(item.callspec.params["backend_name"] for item in session.items
                              if "backend_name" in getattr(getattr(item, "callspec", None), "params", {})):
        backends.get(name).start_in_background()


# A backend that runs in a worker process (keras-<b> on another Keras backend than this process's) pays a
# framework import there and, on JAX, a compilation per layer call: in a plain pytest it runs these
# catalogue cases, which between them take every path its running code has (stacked, bidirectional, an
# initial state or none, a bias or none, batch-first, the seed question's fixed weights; folding is
# conversion, the same code for every keras-<b>, tested in test_conversion.py; per-example lengths through the
# pipe: test_keras_backends.py); the rest of the catalogue, the size sweep and the negative controls on it are
# `slow`. The same backend in its own process (KERAS_BACKEND=b) runs all of them, and `python -m harness run`
# always runs the whole matrix.
WORKER_CASES = ("bidirectional-2layer", "zero-initial-state", "no-bias", "batch-first", "seed-question")


def _slow_in_a_worker(item) -> bool:
    from harness import backends

    params = getattr(getattr(item, "callspec", None), "params", {})
    if "backend_name" not in params or not backends.get(params["backend_name"]).in_worker():
        return False
    return "case" not in params or params["case"].name not in WORKER_CASES


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__ in ("test_agreement", "test_negative_controls") and _slow_in_a_worker(item):
            item.add_marker(pytest.mark.slow)
    if not re.search(r"\bslow\b", config.getoption("markexpr", "") or ""):
        slow = pytest.mark.skip(reason="slow: not in the default run (pytest -m slow runs it)")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(slow)
    if config.getoption("--bench"):
        return
    skip = pytest.mark.skip(reason="benchmarks run only with --bench (or python -m harness bench)")
    for item in items:
        if "bench" in item.keywords:
            item.add_marker(skip)


def pytest_generate_tests(metafunc):
    from harness import backends, catalogue

    opt = metafunc.config.getoption
    names = metafunc.fixturenames
    # Parametrized in this order so ids read case-backend[-device]-dtype.
    if "case" in names:
        metafunc.parametrize("case", catalogue.CASES, ids=[c.name for c in catalogue.CASES])
    if "backend_name" in names:
        chosen = _csv(opt("--backend")) or backends.subjects()
        for name in chosen:
            backends.get(name)  # an unknown name fails loudly here
        metafunc.parametrize("backend_name", chosen)
    if "device" in names and "dtype" in names:
        # One parameter for both, so the id names the device only when it is not the cpu.
        metafunc.parametrize(("device", "dtype"), [
            pytest.param(dev, dt, id=dt if dev == "cpu" else f"{dev}-{dt}",
                         marks=[pytest.mark.gpu] if dev != "cpu" else [])
            for dev in _devices(metafunc.config) for dt in _csv(opt("--dtype"))])
    elif "dtype" in names:
        metafunc.parametrize("dtype", _csv(opt("--dtype")))


@pytest.fixture(autouse=True)
def _as_a_user_runs_it(monkeypatch):
    """In a pytest-xdist worker, a test's own subprocesses (pytest, python -m harness) do not inherit the worker's
    PYTEST_XDIST_* variables: pytest-benchmark turns itself off where it sees them."""
    for name in [n for n in os.environ if n.startswith("PYTEST_XDIST_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def mode(request) -> str:
    return request.config.getoption("--precision")


@pytest.fixture
def record_result(request):
    """Keep a Result for --results (and the reports), naming the --machine given."""
    machine = request.config.getoption("--machine")

    def record(result):
        if machine:
            result.machine = machine
        request.config._lstm_results.append(result)
    return record


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    """Devices, driver, cuDNN, framework versions, precision and threads into the benchmark JSON."""
    from harness import bench

    machine_info["lstm_harness"] = bench.machine_info(config)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Benchmarks that could not run here (not installed, unsupported, no device), with the reason."""
    output_json.setdefault("lstm_harness", {})["not_run"] = config._lstm_not_run


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    outcome = yield
    if session.config.getoption("--report"):
        from harness.report.pytest_hooks import before_benchmark_saving

        before_benchmark_saving(session.config)  # pytest-benchmark saves its JSON before our sessionfinish
    return outcome


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent without it
def pytest_testnodedown(node, error):
    """pytest-xdist's controller: a worker's records join this process's (its own lists are empty)."""
    from harness.results import from_record

    out = getattr(node, "workeroutput", {})
    node.config._lstm_results.extend(from_record(r) for r in out.get("lstm_results", ()))
    node.config._lstm_not_run.extend(out.get("lstm_not_run", ()))
    node.config._lstm_results.sort(key=lambda r: r.key)  # workers finish in any order; the files should not vary


def pytest_sessionfinish(session, exitstatus):
    if _xdist_worker(session.config):  # sent to the controller (pytest_testnodedown), which writes the files
        from harness.results import to_record

        session.config.workeroutput["lstm_results"] = [to_record(r) for r in session.config._lstm_results]
        session.config.workeroutput["lstm_not_run"] = list(session.config._lstm_not_run)
        return
    not_run = session.config.getoption("--bench-not-run")
    if not_run:
        import json

        from harness import atomic

        atomic.write_text(not_run, json.dumps({"not_run": session.config._lstm_not_run}, indent=1))
    path = session.config.getoption("--results")
    if path and session.config._lstm_results:
        from harness.results import write_jsonl

        write_jsonl(session.config._lstm_results, path)
    if session.config.getoption("--report"):
        from harness.report.pytest_hooks import write_session_reports

        session.config._lstm_report_paths = write_session_reports(session.config)


def pytest_terminal_summary(terminalreporter, config):
    for path in getattr(config, "_lstm_report_paths", []):
        terminalreporter.write_line(f"report written to {path}")
