"""Makes cases/data/benchmark-sample.json, the pytest-benchmark JSON the report tests read.

Not a benchmark suite (that lives with the benchmarks): a few real, small CPU timings of the torch
and keras backends and the numpy oracle, written with the extra_info keys harness.report.performance
reads, so the report is tested on pytest-benchmark's own output format rather than a hand-made one.

    PYTHONPATH=$PWD python -m pytest -p no:cacheprovider cases/data/make_benchmark_sample.py \
        --benchmark-json=cases/data/benchmark-sample.json -q
"""

from __future__ import annotations

import time

import pytest

from harness import backends, precision
from harness.canonical import CanonicalLSTM
from harness.spec import LSTMSpec

INPUT = HIDDEN = 64
# (batch, steps, sweep): two fixed sizes, the steps sweep at batch 16 and the batch sweep at 25 steps.
SIZES = [(16, 25, ""), (1, 25, "")] + [(16, t, "steps") for t in (10, 25, 50, 100)] + [(b, 25, "batch") for b in (1, 4, 16, 64)]
_PEAK: dict[str, float] = {}


def lstm_flops(batch: int, steps: int, input_size: int, hidden: int) -> int:
    """Multiply-adds of the two gate products of a one-layer LSTM, 2 FLOPs each (elementwise work left out)."""
    return 2 * batch * steps * 4 * hidden * (input_size + hidden)


def measured_peak(dtype: str) -> float:
    """The measured matmul FLOP/s in `dtype` (torch, one thread like the torch runs, 1024^3, best of 30):
    the 'peak' the fraction is of. The best of many, as other jobs share the two cores."""
    if dtype not in _PEAK:
        import torch

        torch.set_num_threads(1)
        a = torch.ones(1024, 1024, dtype=getattr(torch, dtype))
        best = float("inf")
        for _ in range(30):
            start = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - start)
        _PEAK[dtype] = 2 * 1024**3 / best
    return _PEAK[dtype]


@pytest.mark.parametrize("which", ["torch", "keras", "numpy"])
@pytest.mark.parametrize(("batch", "steps", "sweep"), SIZES, ids=[f"{s + '-' if s else ''}b{b}-t{t}" for b, t, s in SIZES])
def test_forward(benchmark, which, batch, steps, sweep):
    backend = backends.get(which)
    if backend.installed():
        pytest.skip(backend.installed())
    dtype = "float64" if which == "numpy" else "float32"
    extra = {}
    if which == "torch":
        import torch

        torch.set_num_threads(1)  # two cores shared with other jobs: more threads only measure the contention
        extra["threads"] = torch.get_num_threads()
    model = CanonicalLSTM.random(LSTMSpec(input_size=INPUT, hidden_size=HIDDEN), seed=0)
    x, h0, c0 = (a.astype(dtype) for a in model.random_inputs(batch, steps, 1))
    peak = measured_peak(dtype)
    start = time.perf_counter()
    prepared = backend.prepare(model, dtype, "cpu")
    prepare_s = time.perf_counter() - start
    start = time.perf_counter()
    backend.run(prepared, x, h0, c0)  # first call: builds/traces, kept out of the timed rounds
    first_call_s = time.perf_counter() - start
    benchmark.group = f"{sweep or 'forward'} input {INPUT}, hidden {HIDDEN}"
    # The keys harness.report.performance reads (the forward benchmarks of harness.bench record the same).
    benchmark.extra_info.update(
        backend=which, device="cpu", dtype=dtype, batch=batch, steps=steps, input_size=INPUT, hidden_size=HIDDEN,
        sweep=sweep, flops=lstm_flops(batch, steps, INPUT, HIDDEN), peak_flops_per_s=peak,
        prepare_s=prepare_s, first_call_s=first_call_s, precision_flags=precision.apply("exact"),
        environment=backend.environment(), **extra)
    benchmark.pedantic(backend.run, args=(prepared, x, h0, c0), warmup_rounds=2, rounds=9, iterations=1)
