"""Forward-pass benchmarks: the work, the FLOP count, the measured peak, and one timed run.

Every backend gets the same work: a one-layer, one-direction LSTM (both biases; a one-bias backend
gets them summed) with `CanonicalLSTM.random` weights and inputs, in the given dtype, on the given
device. Method, for each (backend, work):

  1. prepare the model and place the inputs on the device (prepare_s, untimed);
  2. the first call, which includes any compilation, autotuning or lazy initialization
     (first_call_s, recorded apart, never among the timed rounds);
  3. one call under Backend.watch_kernel (the kernel that ran), and a comparison of that call's
     outputs with the float64 oracle where the oracle is affordable (oracle_max_abs_err);
  4. warm-up rounds, then timed rounds of Backend.forward_callable(...).call, which returns only when
     the device has finished, so pytest-benchmark's host timer measures the forward itself; the CPU time
     other processes used on this process's cores meanwhile is recorded, and the benchmark flagged `busy`
     when it was substantial (harness.machine_load);
  5. on CUDA, the same call timed again with CUDA events (an independent clock, see
     harness.devices.cuda_event_seconds) beside the host timer's median.

Achieved FLOP/s = forward_flops / median seconds, where forward_flops counts the matrix products
only (multiply and add = 2 FLOPs):

    per layer k, direction d, time step:  2 * B * 4H * (I_k + R)  [+ 2 * B * P * H with a projection]

with B batch, H hidden, I_k layer k's input width, R = P (proj_size) or H the recurrent width. The
bias adds, gate activations and elementwise cell update (about 12 * B * H per step) are left out:
under 0.3% of the total for I_k + R >= 512. The fraction of peak divides by the device's *measured*
peak: the best FLOP/s of a large square matrix product (torch.matmul, or numpy on a CPU without
torch) in the same dtype, precision mode and thread count (measured_peak), not a datasheet figure.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from . import devices, machine_load, precision
from .canonical import CanonicalLSTM
from .spec import LSTMSpec

# (batch, steps, input, hidden)
STANDARD_SIZES = ((64, 100, 512, 512), (1, 100, 512, 512), (16, 25, 256, 256))
GPU_ONLY_SIZES = ((64, 512, 1024, 1024),)  # several seconds per forward on a 2-core CPU
# How cost grows: steps at (B=16, I=H=256), batch at (T=25, I=H=256).
SWEEP_STEPS = (1, 10, 25, 50, 100, 200)
SWEEP_BATCH = (1, 4, 16, 64, 128)
DEVICE_DTYPES = {"cpu": ("float32",), "cuda": ("float32", "float16", "bfloat16")}
ORACLE_MAX_FLOPS = 3e10  # the float64 numpy oracle checks a benchmark's outputs up to this size
FORMULA = "sum over layers, directions, steps of 2*B*4H*(I_k + R) (+ 2*B*P*H with a projection)"


@dataclass(frozen=True)
class Work:
    batch: int
    steps: int
    input_size: int
    hidden_size: int
    device: str
    dtype: str
    sweep: str = ""  # "", "steps" or "batch": which sweep this point belongs to

    @property
    def spec(self) -> LSTMSpec:
        return LSTMSpec(input_size=self.input_size, hidden_size=self.hidden_size)

    @property
    def size(self) -> str:
        return f"B{self.batch}-T{self.steps}-I{self.input_size}-H{self.hidden_size}"

    @property
    def id(self) -> str:
        return f"{self.device}-{self.dtype}-{self.sweep + '-' if self.sweep else ''}{self.size}"

    @property
    def group(self) -> str:
        """pytest-benchmark group: every backend on the same work (a sweep: on every point of it)."""
        if self.sweep == "steps":
            return f"sweep steps {self.device} {self.dtype} B{self.batch} I{self.input_size} H{self.hidden_size}"
        if self.sweep == "batch":
            return f"sweep batch {self.device} {self.dtype} T{self.steps} I{self.input_size} H{self.hidden_size}"
        return f"forward {self.device} {self.dtype} {self.size}"

    @property
    def flops(self) -> int:
        return forward_flops(self.spec, self.batch, self.steps)


def forward_flops(spec: LSTMSpec, batch: int, steps: int) -> int:
    """Matrix-product FLOPs of one forward pass (see the module docstring for the formula)."""
    H, P = spec.hidden_size, spec.proj_size
    total = 0
    for k, _ in spec.units():
        per_step = 2 * batch * 4 * H * (spec.layer_input_size(k) + spec.output_size)
        if P:
            per_step += 2 * batch * P * H
        total += steps * per_step
    return total


def works(device_list, mode: str = "exact") -> list[Work]:
    """The benchmark selection for these devices: standard sizes, the GPU-only size, both sweeps.

    The tf32 mode changes float32 products on a GPU only, so under it only those are selected.
    """
    out = []
    for device in device_list:
        devices.check_device(device)
        if precision.check_mode(mode) == "tf32" and device == "cpu":
            continue
        for dtype in DEVICE_DTYPES[device] if mode == "exact" else ("float32",):
            sizes = STANDARD_SIZES + (GPU_ONLY_SIZES if device != "cpu" else ())
            out += [Work(*size, device, dtype) for size in sizes]
            # A sweep point that is a standard size is not timed twice: the report charts the standard one there.
            out += [Work(16, t, 256, 256, device, dtype, "steps") for t in SWEEP_STEPS if (16, t, 256, 256) not in sizes]
            out += [Work(b, 25, 256, 256, device, dtype, "batch") for b in SWEEP_BATCH if (b, 25, 256, 256) not in sizes]
    return out


# The device's measured peak -------------------------------------------------------------------
@lru_cache(maxsize=None)
def measured_peak(device: str, dtype: str, mode: str, threads: int) -> tuple[float | None, str]:
    """(best FLOP/s of a square matrix product on `device`, how it was measured); (None, why) if not."""
    n = 8192 if device != "cpu" else 2048
    reps = 10 if device != "cpu" else 5
    if _have("torch"):
        import torch

        if device != "cpu" and not torch.cuda.is_available():
            return None, "no CUDA device visible to torch"
        precision.apply(mode)
        if device == "cpu":
            torch.set_num_threads(threads)
        tdev = "cuda" if device != "cpu" else "cpu"
        a = torch.rand(n, n, device=tdev, dtype=getattr(torch, dtype))
        b = torch.rand(n, n, device=tdev, dtype=getattr(torch, dtype))

        def call():
            a @ b
            if tdev == "cuda":
                torch.cuda.synchronize()
        how = f"torch.matmul {n}x{n} {dtype} on {tdev}, precision {mode}"
    elif device == "cpu" and dtype in ("float32", "float64"):
        a = np.random.default_rng(0).random((n, n)).astype(dtype)
        b = a.T.copy()
        call = lambda: a @ b  # noqa: E731
        how = f"numpy.matmul {n}x{n} {dtype} (numpy's BLAS threads)"
    else:
        return None, f"no way to measure a {dtype} peak on {device} without torch"
    for _ in range(2):
        call()
    best = min(devices.host_seconds(call, reps))
    threads_note = f", {threads} threads" if device == "cpu" else ""
    return 2 * n**3 / best, f"{how}{threads_note}: best of {reps} after 2 warm-ups"


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# One benchmark ----------------------------------------------------------------------------
@dataclass
class Settings:
    mode: str = "exact"
    threads: int = 1
    seconds: float = 2.0
    min_rounds: int = 3
    max_rounds: int = 200
    warmup: int = 2


def inputs_for(work: Work) -> tuple[CanonicalLSTM, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Weights and (x, h0, c0), rounded to the dtype so the oracle sees exactly what the backend sees."""
    model = CanonicalLSTM.random(work.spec, seed=0).rounded(work.dtype)
    dt = precision.numpy_dtype(work.dtype)
    x, h0, c0 = model.random_inputs(work.batch, work.steps, seed=1)
    return model, tuple(a.astype(dt) for a in (x, h0, c0))


def run_forward(benchmark, backend, work: Work, settings: Settings, variant: str = "") -> dict[str, Any]:
    """Time `backend`'s forward pass on `work` with the pytest-benchmark fixture; return extra_info.

    variant: one of backend.forward_variants() ("" = its default, what its users run); recorded with
    whether it is the default. The caller has checked that the backend is installed, supports the work,
    has the device and can be timed in this process (timing_missing).
    """
    variants = backend.forward_variants()
    variant = variant or variants[0]
    info: dict[str, Any] = {"backend": backend.name, "runtime": backend.runtime(), **asdict(work),
                            "variant": variant, "default_variant": variant == variants[0],
                            "flops": work.flops, "flops_formula": FORMULA,
                            "load_avg_1min_before": os.getloadavg()[0]}  # other processes on the machine
    info["environment"] = backend.environment()  # imports the framework before the flags are set
    info["threads"] = backend.set_threads(settings.threads)
    info["precision_flags"] = precision.apply(settings.mode)

    model, (x, h0, c0) = inputs_for(work)
    t0 = time.perf_counter()
    prepared = backend.prepare(model, work.dtype, work.device)
    forward = backend.forward_callable(prepared, x, h0, c0, variant=variant)
    info["prepare_s"] = time.perf_counter() - t0
    info["timed"] = forward.what

    t0 = time.perf_counter()
    out = forward.call()
    info["first_call_s"] = time.perf_counter() - t0
    with backend.watch_kernel(prepared) as kernel:
        out = forward.call()
    info.update(kernel)
    info.update(_check_outputs(forward.fetch(out), model, x, h0, c0, work))

    # Rounds from one more (warm) call, so each benchmark takes about settings.seconds.
    one = min(devices.host_seconds(forward.call, 1))
    rounds = max(settings.min_rounds, min(settings.max_rounds, math.ceil(settings.seconds / max(one, 1e-9))))
    info.update(warmup_rounds=settings.warmup, rounds=rounds)
    benchmark.group = work.group
    with machine_load.ForeignCPU() as load:  # what other processes used on our cores during the rounds
        benchmark.pedantic(forward.call, rounds=rounds, warmup_rounds=settings.warmup, iterations=1)
    info.update(load.record())
    info["cores"] = machine_load.cores_available()

    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None:  # None under --benchmark-disable
        median = stats.median
        info["achieved_flops_per_s"] = work.flops / median
        peak, how = measured_peak(work.device, work.dtype, settings.mode, settings.threads)
        info["peak_flops_per_s"], info["peak_how"] = peak, how
        info["fraction_of_peak"] = None if peak is None else info["achieved_flops_per_s"] / peak
        if work.device != "cpu":
            info.update(_cuda_event_check(forward.call, median, rounds))
    info["load_avg_1min_after"] = os.getloadavg()[0]
    return info


def _check_outputs(out, model, x, h0, c0, work: Work) -> dict[str, Any]:
    """The timed computation's outputs against the float64 oracle (informative: the tolerance table
    is measured on the small catalogue cases, not at these sizes). Non-finite outputs fail."""
    arrays = [np.asarray(a, dtype=np.float64) for a in out]
    if not all(np.isfinite(a).all() for a in arrays):
        raise AssertionError(f"{work.id}: the forward pass returned non-finite values")
    if work.flops > ORACLE_MAX_FLOPS:
        return {"oracle_max_abs_err": None, "oracle_note": f"not checked: over {ORACLE_MAX_FLOPS:.0e} FLOPs"}
    f64 = lambda a: a.astype(np.float64)  # noqa: E731
    expected = model.forward(f64(x), f64(h0), f64(c0))
    errs = []
    for got, exp in zip(arrays, expected):
        if got.shape != exp.shape:
            raise AssertionError(f"{work.id}: output shape {got.shape}, the oracle's {exp.shape}")
        errs.append(float(np.max(np.abs(got - exp))))
    return {"oracle_max_abs_err": max(errs)}


def _cuda_event_check(call, host_median: float, rounds: int) -> dict[str, Any]:
    """Time `call` with CUDA events as well; the two medians should agree for long enough calls."""
    if not _have("torch"):
        return {"cuda_event_note": "not measured: CUDA events are read through torch, which is not installed"}
    import torch

    if not torch.cuda.is_available():
        return {"cuda_event_note": "not measured: torch sees no CUDA device"}
    event_times = devices.cuda_event_seconds(call, min(rounds, 20))
    event_median = statistics.median(event_times)
    return {"cuda_event_median_s": event_median, "host_median_s": host_median,
            "host_over_cuda_event": host_median / event_median if event_median > 0 else None}


# What goes into the benchmark JSON's machine_info --------------------------------------------
def machine_info(config) -> dict[str, Any]:
    """Everything about this process's set-up that a figure depends on (pytest-benchmark hook)."""
    from . import backends, results

    chosen = [n.strip() for n in config.getoption("--backend").split(",") if n.strip()] or backends.subjects()
    info: dict[str, Any] = {
        "machine": config.getoption("--machine") or results.host_name(),  # what a report labels this file
        "python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)), "load_avg_1_5_15min": list(os.getloadavg()),
        "bench_threads": config.getoption("--bench-threads"),
        "thread_env": {name: os.environ.get(name, "") for name in devices.THREAD_ENV},
        "precision": precision.state(),  # read back at the end of the run
        "cuda": devices.cuda_info(),
        "backends": {},
    }
    for name in chosen:
        backend = backends.get(name)
        entry: dict[str, Any] = {"installed": backend.installed() is None}
        if entry["installed"]:
            entry["runtime"] = backend.runtime()
            entry["environment"] = backend.environment()
            entry["devices"] = {d: reason or "present" for d, reason in backend.devices_present().items()}
        info["backends"][name] = entry
    return info


# One JSON from the per-process runs ---------------------------------------------------------
def merge(runs: list[dict[str, Any]], earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge per-process pytest-benchmark JSON files into one of the same schema, on top of `earlier`.

    `runs`: one dict per process with "json" (its --benchmark-json path, maybe never written when
    nothing ran), "not_run" (its --bench-not-run path) and what was run ("backend", "precision",
    "devices", "command", "returncode"). The top level keeps pytest-benchmark's keys (machine_info
    and commit_info of the first process that wrote one; every benchmark's extra_info carries its
    own process's versions, threads and precision flags, and "run_datetime", when its process ran);
    "lstm_harness" lists the processes with their machine_info and every benchmark that could not
    run, with the reason.

    `earlier`: the merged JSON this run goes into (a previous `python -m harness bench`). What this
    run measured, or found it could not run, replaces the earlier entry of the same (backend, precision
    mode, benchmark); every other earlier benchmark is kept with its own run_datetime, and so are the
    earlier processes of a (backend, precision mode) this run did not run again.
    """
    import json
    from datetime import datetime, timezone
    from pathlib import Path

    merged: dict[str, Any] = {"machine_info": {}, "commit_info": {}, "benchmarks": [],
                              "datetime": datetime.now(timezone.utc).isoformat(), "version": None,
                              "lstm_harness": {"processes": [], "not_run": []}}
    for run in runs:
        process = {k: run[k] for k in ("backend", "precision", "devices", "command", "returncode")}
        path = Path(run["json"])
        if path.exists():
            data = json.loads(path.read_text())
            if not merged["machine_info"]:
                merged.update(machine_info=data["machine_info"], commit_info=data["commit_info"],
                              version=data["version"])
            for b in data["benchmarks"]:
                b.setdefault("extra_info", {}).setdefault("run_datetime", data.get("datetime") or merged["datetime"])
            merged["benchmarks"] += data["benchmarks"]
            process["machine_info"] = data["machine_info"].get("lstm_harness", {})
            process["benchmarks"] = len(data["benchmarks"])
            process["datetime"] = data.get("datetime")
        else:
            process["benchmarks"] = 0
        if Path(run["not_run"]).exists():
            merged["lstm_harness"]["not_run"] += [{"precision": run["precision"], **n}
                                                  for n in json.loads(Path(run["not_run"]).read_text())["not_run"]]
        merged["lstm_harness"]["processes"].append(process)
    if earlier:
        _keep_earlier(merged, earlier)
    return merged


def benchmark_key(b: dict[str, Any]) -> tuple[str, str, str]:
    """(backend, precision mode, name): what a later bench run replaces."""
    info = b.get("extra_info") or {}
    return (info.get("backend", ""), (info.get("precision_flags") or {}).get("precision", "exact"), b.get("name", ""))


def _not_run_key(n: dict[str, Any]) -> tuple[str, str, str]:
    return (n.get("backend", ""), n.get("precision", "exact"), n.get("name", ""))


def _keep_earlier(merged: dict[str, Any], earlier: dict[str, Any]) -> None:
    new = {benchmark_key(b) for b in merged["benchmarks"]} | {_not_run_key(n) for n in merged["lstm_harness"]["not_run"]}
    when = earlier.get("datetime")
    kept = [b for b in earlier.get("benchmarks", []) if benchmark_key(b) not in new]
    for b in kept:
        b.setdefault("extra_info", {}).setdefault("run_datetime", when)
    merged["benchmarks"] = kept + merged["benchmarks"]
    ours = earlier.get("lstm_harness") or {}
    merged["lstm_harness"]["not_run"] = [n for n in ours.get("not_run", []) if _not_run_key(n) not in new] \
        + merged["lstm_harness"]["not_run"]
    rerun = {(p["backend"], p["precision"]) for p in merged["lstm_harness"]["processes"]}
    merged["lstm_harness"]["processes"] = [p for p in ours.get("processes", []) if (p.get("backend"), p.get("precision"))
                                           not in rerun] + merged["lstm_harness"]["processes"]
    for key in ("machine_info", "commit_info", "version"):
        if not merged[key] and earlier.get(key):
            merged[key] = earlier[key]


def run_dates(data: dict[str, Any]) -> tuple[str, str]:
    """(oldest, newest) date of the runs whose benchmarks `data` holds (a merged JSON spans several runs)."""
    dates = sorted({(b.get("extra_info") or {}).get("run_datetime") or data.get("datetime") or ""
                    for b in data.get("benchmarks", [])} - {""})
    return (dates[0], dates[-1]) if dates else ("", "")
