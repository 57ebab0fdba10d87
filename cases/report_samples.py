"""Inputs for the report tests: real Result records of every status, and the sample benchmark JSON.

The results come from runner.run_case, the code path of `python -m harness run`; the backends below
are the torch backend with one thing changed each, so every status has a real record with a real
message (a failure with its real comparison, an error with its traceback).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from harness import backends, catalogue
from harness.backends.torch import TorchBackend
from harness.runner import run_case

BENCH_SAMPLE = Path(__file__).with_name("data") / "benchmark-sample.json"
SCRIPT_REASON = "<script>alert('reason')</script> broke"


class AbsentBackend(TorchBackend):
    name, framework = "absent", "no_such_framework_for_the_report_test"


class NoGpuBackend(TorchBackend):
    name = "nogpu"

    def device_missing(self, device):
        return "no CUDA device in this test"


class BrokenBackend(TorchBackend):
    name = "broken"

    def _run(self, prepared, x, h0, c0, *, batch_first=False):
        raise RuntimeError(SCRIPT_REASON)


class SloppyBackend(TorchBackend):
    """torch with one element of the last layer's last-direction h_n off by 1e-3 (the failure to report)."""

    name = "sloppy"
    OFF_INDEX = (1, 2)

    def _run(self, prepared, x, h0, c0, *, batch_first=False):
        out = super()._run(prepared, x, h0, c0, batch_first=batch_first)
        h_n = np.array(out.h_n)
        h_n[(-1, *self.OFF_INDEX)] += 1e-3
        return out._replace(h_n=h_n)


SUBJECTS = {"torch": None, "sloppy": SloppyBackend, "broken": BrokenBackend, "absent": AbsentBackend,
            "nogpu": NoGpuBackend}
CASES = ("plain", "bidirectional-2layer", "peephole")


def sample_results(monkeypatch) -> list:
    """cases x backends x (float32, float64): pass, fail, unsupported, not installed, skipped, error."""
    for name, cls in SUBJECTS.items():
        if cls is not None:
            monkeypatch.setitem(backends._REGISTRY, name, f"{__name__}:{cls.__name__}")
            monkeypatch.setitem(backends._INSTANCES, name, cls())
    return [run_case(catalogue.get_case(case), name, dtype).result
            for case in CASES for name in SUBJECTS for dtype in ("float32", "float64")]


def bench_sample() -> dict:
    return json.loads(BENCH_SAMPLE.read_text())


def with_stats(data: dict, index: int, **stats) -> dict:
    """A copy of benchmark JSON with benchmark `index`'s stats replaced (median, q1, q3, ...)."""
    data = copy.deepcopy(data)
    data["benchmarks"][index]["stats"].update(stats)
    return data
