"""Forward-pass benchmarks: every backend on the same work, per device and dtype (harness.bench).

Not collected by a plain `pytest` (the name does not match test_*.py); `--bench` turns them on:

    python -m pytest --bench cases/bench_forward.py --backend torch --device cpu \
        --benchmark-json reports/bench/torch-exact.json

Settings fixed once per process (threads, TF32, jax x64) make one process per backend and precision
mode the sound way to run them all: `python -m harness bench` does that (a keras-<b> process with
KERAS_BACKEND=b, so Keras runs in-process) and merges the JSON. A backend with several ways to run its
forward (Backend.forward_variants: Keras's compiled and eager calls) gets one benchmark per variant,
named backend[variant].
Speed is never asserted; a benchmark fails only if its forward pass errs or returns non-finite values.
"""

from __future__ import annotations

import pytest

from harness import backends, bench, precision
from harness.results import NOT_INSTALLED, SKIPPED, UNSUPPORTED

pytestmark = pytest.mark.bench


def pytest_generate_tests(metafunc):
    if "work" in metafunc.fixturenames:
        from conftest import _devices

        works = bench.works(_devices(metafunc.config), metafunc.config.getoption("--precision"))
        metafunc.parametrize("work", [
            pytest.param(w, id=w.id, marks=[pytest.mark.gpu] if w.device != "cpu" else []) for w in works])
    if "subject" in metafunc.fixturenames:  # (backend, variant): one benchmark per way to run the forward
        from conftest import _csv

        names = _csv(metafunc.config.getoption("--backend")) or backends.subjects()
        pairs = [(n, v) for n in names for v in _variants(n)]
        metafunc.parametrize("subject", pairs, ids=[f"{n}[{v}]" if v else n for n, v in pairs])


def _variants(name: str) -> tuple[str, ...]:
    try:
        return backends.get(name).forward_variants()
    except ImportError:  # `keras` asks Keras which backend it is on: not installed, reported by the test
        return ("",)


@pytest.fixture
def settings(request, mode) -> bench.Settings:
    opt = request.config.getoption
    return bench.Settings(mode=mode, threads=opt("--bench-threads"), seconds=opt("--bench-seconds"),
                          min_rounds=opt("--bench-min-rounds"), warmup=opt("--bench-warmup"))


def test_forward(benchmark, work, subject, settings, request):
    backend_name, variant = subject
    backend = backends.get(backend_name)
    for status, reason in ((NOT_INSTALLED, backend.installed() or precision.dtype_missing(work.dtype)),
                           (UNSUPPORTED, reason_if_installed(backend, "supports", work)),
                           (SKIPPED, reason_if_installed(backend, "device_missing", work)),
                           (SKIPPED, reason_if_installed(backend, "timing_missing", work))):
        if reason:
            request.config._lstm_not_run.append({"name": request.node.name, "backend": backend_name,
                                                 "variant": variant, **work.__dict__, "status": status,
                                                 "reason": reason})
            pytest.skip(f"{status}: {reason}")
    benchmark.extra_info.update(bench.run_forward(benchmark, backend, work, settings, variant))


def reason_if_installed(backend, check: str, work: bench.Work) -> str | None:
    if backend.installed() or precision.dtype_missing(work.dtype):
        return None  # already reported as not installed
    if check == "supports":
        return backend.supports(work.spec, work.dtype, work.device)
    if check == "timing_missing":
        return backend.timing_missing()
    return backend.device_missing(work.device)
