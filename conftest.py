"""pytest set-up for the cases in cases/: options, framework import order, precision policy, results.

Options (also usable from tox): --backend torch,keras  --device cpu,cuda  --dtype float32
--precision exact  --results reports/results.jsonl (write one JSON record per agreement test)
--report reports (write agreement.html, and performance.html when benchmarks ran, into that folder).
"""

from __future__ import annotations

import importlib.util
import os

import pytest

# Import order: torch before tensorflow (Keras's own test suite does this to avoid a crash seen
# elsewhere when TF loads first). Both are imported at most once per process.
if importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of test output


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def pytest_addoption(parser):
    g = parser.getgroup("lstm-harness")
    g.addoption("--backend", default="", help="comma-separated backends to test (default: all registered)")
    g.addoption("--device", default="cpu", help="comma-separated devices: cpu, cuda (default: cpu)")
    g.addoption("--dtype", default="float32,float64", help="comma-separated dtypes (default: float32,float64)")
    g.addoption("--precision", default="exact", help="precision mode (default: exact = TF32 off)")
    g.addoption("--results", default="", help="write the agreement results as JSON lines to this path")
    g.addoption("--report", default="", metavar="DIR",
                help="write the HTML reports into DIR (with results.jsonl, and bench.json when benchmarks ran)")


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: runs on a CUDA device (selected with --device cuda)")
    config._lstm_results = []


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
            for dev in _csv(opt("--device")) for dt in _csv(opt("--dtype"))])
    elif "dtype" in names:
        metafunc.parametrize("dtype", _csv(opt("--dtype")))


@pytest.fixture
def mode(request) -> str:
    return request.config.getoption("--precision")


@pytest.fixture
def record_result(request):
    """Keep a Result for --results (and the reports)."""
    return request.config._lstm_results.append


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    outcome = yield
    if session.config.getoption("--report"):
        from harness.report.pytest_hooks import before_benchmark_saving

        before_benchmark_saving(session.config)  # pytest-benchmark saves its JSON before our sessionfinish
    return outcome


def pytest_sessionfinish(session, exitstatus):
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
