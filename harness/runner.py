"""Run one case on one backend and compare with the oracle: the one code path behind both the
pytest cases and `python -m harness run`.
"""

from __future__ import annotations

import json
import shlex
import time
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import backends, conditioning, devices, precision
from .canonical import CanonicalLSTM
from .catalogue import Case
from .compare import Comparison, Tolerance, compare, tolerance_for
from .outputs import LSTMOutput
from .results import ERROR, FAIL, NOT_INSTALLED, PASS, SKIPPED, UNSUPPORTED, Result, host_environment


@dataclass
class Outcome:
    result: Result
    comparison: Comparison | None = None
    expected: LSTMOutput | None = None
    actual: LSTMOutput | None = None


def reproduce_command(case: str, backend: str, dtype: str, device: str, mode: str) -> str:
    """The command line that runs this one cell again.

    A backend registered from Python (backends.register) exists only in the process that registered it, so its
    command registers it again before running (built-in and entry-point backends are the CLI's own).
    """
    argv = ["run", "--case", case, "--backend", backend, "--dtype", dtype, "--device", device, "--precision", mode]
    if backends.origin(backend) != backends.REGISTERED:
        return "python -m harness " + shlex.join(argv)
    code = (f"from harness import backends; backends.register({json.dumps(backend)}, "
            f"{json.dumps(backends.target(backend))}); from harness.__main__ import main; "
            f"raise SystemExit(main({json.dumps(argv)}))")
    return "python -c " + shlex.quote(code)


def oracle_for(case: Case, dtype: str, seed: int | None = None, padding: str = "zeros"):
    """The case's weights and inputs rounded to `dtype`, and the float64 oracle's outputs on them (with the
    case's lengths, y's padded steps by the `padding` convention)."""
    model = case.model(seed).rounded(dtype)
    x, h0, c0 = (None if a is None else a.astype(dtype).astype(np.float64) for a in case.inputs(model, seed))
    return model, (x, h0, c0), model.forward(x, h0, c0, batch_first=case.batch_first, lengths=case.length_array,
                                             padding=padding)


def run_case(case: Case, backend_name: str, dtype: str = "float32", device: str = "cpu", mode: str = "exact",
             *, seed: int | None = None, raise_errors: bool = False,
             model_hook: Callable[[CanonicalLSTM], CanonicalLSTM] | None = None,
             output_hook: Callable[[LSTMOutput], LSTMOutput] | None = None,
             backend: backends.Backend | None = None, tolerance: Tolerance | None = None) -> Outcome:
    """Run `case` on a backend and compare with the oracle.

    model_hook / output_hook inject a bug between the oracle and the backend (the weights the
    backend receives, or the outputs it returns): the negative controls use them to show that
    the comparison catches each porting mistake.
    backend: the instance to run instead of the registered one (a variant of it, such as
    FlaxNnxBackend("OptimizedLSTMCell")); its environment() says which variant ran.
    tolerance: replaces the table's bound (for `python -m harness measure` on a dtype, precision
    or device that has no bound yet).
    """
    backend = backends.get(backend_name) if backend is None else backend
    if backend.reference:
        raise ValueError(f"{backend_name} is the reference: comparing it with itself proves nothing")
    missing = precision.dtype_missing(dtype)  # bfloat16 without ml_dtypes: not installed, not bad input
    dtype = precision.check_dtype(dtype) if missing else precision.dtype_name(dtype)
    precision.check_mode(mode)
    devices.check_device(device)  # a typo is bad input, not every backend's 'unsupported'
    record = Result(case=case.name, backend=backend_name, device=device, dtype=dtype, precision=mode,
                    status=PASS, spec=case.spec.to_dict(), seed=case.seed if seed is None else seed,
                    reproduce=reproduce_command(case.name, backend_name, dtype, device, mode))
    reason = backend.installed() or missing
    if reason:
        record.status, record.reason = NOT_INSTALLED, reason
        return Outcome(record)
    reason = backend.supports(case.spec, dtype, device, lengths=case.lengths is not None)
    if reason:
        record.status, record.reason = UNSUPPORTED, reason
        return Outcome(record)
    reason = backend.device_missing(device)
    if reason:
        record.status, record.reason = SKIPPED, reason
        return Outcome(record)
    start = time.perf_counter()
    try:
        record.environment = {**host_environment(), **backend.environment(), **precision.apply(mode)}
        padding = backend.padding(case.spec) if case.lengths is not None else "zeros"
        model, (x, h0, c0), expected = oracle_for(case, dtype, seed, padding)
        tol = tolerance or tolerance_for(dtype, mode, backend_name, device)
        record.rtol, record.atol = tol.rtol, tol.atol
        subject = model_hook(model.copy()) if model_hook else model
        prepared = backend.prepare(subject, dtype, device)
        record.folded = list(backend.adapt(subject).folded)
        cast = lambda a: None if a is None else a.astype(dtype)  # noqa: E731
        with backend.watch_kernel(prepared) as kernel:  # where a framework may fall back silently
            actual = backend.run(prepared, cast(x), cast(h0), cast(c0), batch_first=case.batch_first,
                                 lengths=case.length_array)
        record.environment.update(kernel)
        if output_hook:
            actual = output_hook(actual)
    except Exception as exc:
        if raise_errors:
            raise
        record.status = ERROR
        record.reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"
        record.seconds = time.perf_counter() - start
        return Outcome(record)
    record.seconds = time.perf_counter() - start
    sensitivity = conditioning.sensitivity(model, (x, h0, c0), expected, dtype, batch_first=case.batch_first,
                                           lengths=case.length_array, padding=padding)
    comparison = compare(case.spec, actual, expected, tol, batch_first=case.batch_first, lengths=case.length_array,
                         padding=padding, sensitivity=sensitivity)
    record.widened = comparison.tolerance.widened  # rtol, atol stay the table's: the reports check them against it
    worst = comparison.worst
    record.worst_path, record.worst_index = worst.path, list(worst.worst_index)
    record.worst_abs, record.worst_ratio = worst.max_abs, worst.worst_ratio
    with_lengths = "" if case.lengths is None else f", lengths {list(case.lengths)} (padding {padding})"
    context = f" ({backend_name}, {case.name}{with_lengths}, {dtype}, {device}, precision {mode})"
    record.reason = comparison.message(context)
    if not comparison.ok:
        record.status = FAIL
        record.reason += f"\nReproduce: {record.reproduce}"
    return Outcome(record, comparison, expected, actual)
