"""Keras on TensorFlow: the harness's compiled timing beside a plain tf.function timing of the same layer.

Two benchmarks per size, in one group and one process (same threads, same machine state): the harness's
own path (harness.bench.run_forward on keras-tensorflow, variant "tf.function", exactly what
`python -m harness bench` times) and a keras.layers.LSTM inside tf.function written here from Keras and
TensorFlow alone, as a user would, with none of the harness's code. pytest-benchmark's table prints each
median with its ratio to the faster one in parentheses. Run it on a quiet machine (check `uptime`):

    python -m pytest -p no:cacheprovider --bench cases/bench_keras_tf.py --benchmark-columns=median,iqr,rounds

(`-k smoke --bench-seconds 0.2` rehearses it on a tiny layer in seconds). Speed is not asserted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from harness import backends, bench

pytestmark = pytest.mark.bench

# (batch, steps, input, hidden): the sizes of the comparison in issue 15, and a tiny one to rehearse with
SIZES = {"B64-T100-I512-H512": (64, 100, 512, 512), "B16-T25-I256-H256": (16, 25, 256, 256), "smoke": (2, 5, 8, 8)}
ORDER = ("harness", "plain")  # the harness first: its run_forward sets the threads both then run with


@dataclass(frozen=True)
class PairWork(bench.Work):
    @property
    def group(self) -> str:  # both of a size in one pytest-benchmark group: its table gives the ratio
        return f"keras tensorflow tf.function {self.size}: harness vs plain"


@pytest.fixture
def settings(request) -> bench.Settings:
    opt = request.config.getoption
    return bench.Settings(threads=opt("--bench-threads"), seconds=opt("--bench-seconds"),
                          min_rounds=opt("--bench-min-rounds"), warmup=opt("--bench-warmup"))


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("who", ORDER)
def test_keras_lstm_in_tf_function(benchmark, who, size, settings, request):
    chosen = [n.strip() for n in request.config.getoption("--backend").split(",") if n.strip()]
    if chosen and "keras-tensorflow" not in chosen:
        pytest.skip(f"skipped: --backend {','.join(chosen)} leaves out keras-tensorflow")
    backend = backends.get("keras-tensorflow")
    for reason in (backend.installed(), backend.timing_missing()):
        if reason:
            pytest.skip(f"skipped: {reason}")
    work = PairWork(*size, device="cpu", dtype="float32")
    if who == "harness":
        benchmark.extra_info.update(bench.run_forward(benchmark, backend, work, settings, "tf.function"))
        return
    import keras
    import tensorflow as tf

    batch, steps, inputs, hidden = size
    layer = keras.layers.LSTM(hidden, return_sequences=True, return_state=True)
    x = tf.random.normal((batch, steps, inputs))
    h, c = tf.random.normal((batch, hidden)), tf.random.normal((batch, hidden))
    forward = tf.function(lambda x, h, c: layer(x, initial_state=[h, c]))
    forward(x, h, c)  # the trace, as the harness's first call: not timed
    start = time.perf_counter()
    forward(x, h, c)
    one = time.perf_counter() - start
    rounds = max(settings.min_rounds, min(settings.max_rounds, int(settings.seconds / max(one, 1e-9)) + 1))
    benchmark.extra_info.update(backend="plain keras.layers.LSTM in tf.function", device="cpu", dtype="float32",
                                batch=batch, steps=steps, input_size=inputs, hidden_size=hidden,
                                timed="keras.layers.LSTM(hidden, return_sequences=True, return_state=True) in "
                                      "tf.function, written without the harness", rounds=rounds)
    benchmark.group = work.group
    benchmark.pedantic(forward, args=(x, h, c), rounds=rounds, warmup_rounds=settings.warmup, iterations=1)
