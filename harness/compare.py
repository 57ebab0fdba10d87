"""Tolerances (one table) and the comparison of a backend's outputs with the oracle's.

An element passes when |actual - expected| <= atol + rtol * |expected| (torch.testing.assert_close's
rule). Every bound sits next to the errors measured to justify it (`measured_worst`, and the evidence in
words); `python -m harness measure` re-measures them (max abs / max rel error over the catalogue and extra
seeds). A bound holds for the work it was measured on (up to GROWTH_STEPS steps, |c| up to GROWTH_CELL);
`compare` widens it for longer sequences and larger cell states by `growth`, computed from the oracle's
outputs. A bound is never loosened to make a test pass: find the cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np

from .outputs import LSTMOutput, check_padding
from .precision import MODES as PRECISIONS  # noqa: F401  ("exact", "tf32"); see harness.precision
from .precision import dtype_name
from .spec import DIRECTIONS, LSTMSpec


# How a bound follows the work (the rule and its evidence: GROWTH_EVIDENCE, beside the tables below).
GROWTH_STEPS = 150  # steps a bound holds for unwidened
GROWTH_CELL = 2.0  # the smallest |c| a bound covers unwidened (float32's); a row may cover more (covers_cell)
SENSITIVITY_MARGIN = 10.0  # atol >= this x the oracle's own sensitivity (harness.conditioning)


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    evidence: str  # the measurement that justifies the bound, in words
    measured_worst: float | None = None  # the worst absolute error measured (None: not a measured bound)
    covers_cell: float = GROWTH_CELL  # the largest oracle |c| the bound holds for unwidened (measured)
    widened: str = ""  # how for_work widened the table's bound for a run's work ("": not widened)

    def allowed(self, expected: np.ndarray) -> np.ndarray:
        return self.atol + self.rtol * np.abs(expected)

    def for_work(self, steps: int, cell: float, sensitivity: float = 0.0) -> "Tolerance":
        """This bound for a run of `steps` steps whose oracle reaches |c| = `cell`, where the oracle's outputs move
        by `sensitivity` under one rounding step of the weights (harness.conditioning): rtol and atol times
        growth(steps, cell), and atol at least SENSITIVITY_MARGIN * sensitivity. Itself within its measured work."""
        rtol_factor, atol_factor = growth(steps, cell, self.covers_cell)
        atol = max(self.atol * atol_factor, SENSITIVITY_MARGIN * sensitivity)
        if rtol_factor == 1.0 and atol == self.atol:
            return self
        return replace(self, rtol=self.rtol * rtol_factor, atol=atol,
                       widened=f"rtol {self.rtol * rtol_factor:.3g}, atol {atol:.3g} for {steps} steps, oracle |c| "
                               f"up to {cell:.3g}, sensitivity {sensitivity:.2g} (harness.compare.growth)")


# (dtype, precision) -> bound. Evidence: `python -m harness measure --seeds 8` on the CPU (2026-11-23;
# torch 2.13.0, keras 3.15.1 on TF 2.21, tf1/tf-block, jax 0.10.2 / flax 0.12.8 / equinox 0.13.8,
# onnxruntime 1.32, onnx.reference, numpy 2.4): the 23 catalogue cases and the 4 SIZE_SWEEP cases (hidden
# up to 128, 300 steps, 3 bidirectional layers) x 8 seeds, every backend. The float32 worst case is
# large-cell-state (forget_bias 3, |c| up to ~10: float32 rounding grows with |c|); 40 seeds of it,
# long-200 and long-300-single on onnx, torch, tf-block-v2 and keras reached the same worst ratio, 0.59.
# Then (2026-11-30, same versions) the 1000-seed run (cases/test_flake.py: 1000 weight seeds per backend and
# dtype over the catalogue): float64 reached 1.4e-14 (jax, large-cell-state seed 351), so its bound went from
# 1e-13 to 5e-14 (10x at most over the worst measured); float32 reached 3.6e-6 on jax and flax at an element of
# c_n near 0 where |c| elsewhere is ~9, which set the cell-state widening below (GROWTH_CELL).
TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("float64", "exact"): Tolerance(
        rtol=5e-14,
        atol=5e-14,
        evidence="measured max abs err 1.4e-14 (jax, large-cell-state seed 351; 1000-seed run), 5.3e-15 over "
                 "the catalogue and size sweep x 8 seeds; worst ratio 0.27 (jax); every backend",
        measured_worst=1.4e-14,
        covers_cell=20.0,
    ),
    ("float32", "exact"): Tolerance(
        rtol=2e-6,
        atol=2e-6,
        evidence="measured max abs err 3.6e-6 (jax, large-cell-state seed 351; 1000-seed run), 3.0e-6 (onnx, "
                 "large-cell-state) over the catalogue and size sweep x 8 seeds; <= 0.12 of the bound on every case "
                 "with |c| < 2 (tf1/tf-block, deep-narrow)",
        measured_worst=3.6e-6,
    ),
    # Half precision: the bound is the smallest 1, 2 or 5 x 10^k that is at least 5x the worst error
    # measured. Measured like the rows above (catalogue +
    # SIZE_SWEEP x 8 seeds, 2026-11-23) on this CPU (AVX-512 BF16): torch float16 runs ATen's own
    # cells, torch bfloat16 oneDNN, keras (TensorFlow backend) its generic loop.
    ("float16", "exact"): Tolerance(
        rtol=1e-2,
        atol=1e-2,
        evidence="measured max abs err 1.6e-3 (keras, plain), 1.5e-3 (torch, deep-narrow); 298 runs. On "
                 "large-cell-state (|c| up to ~15; torch and keras, 20 seeds, 2026-11-30) 1.3e-2 in c_n, 0.37 of the "
                 "bound",
        measured_worst=1.3e-2,
        covers_cell=20.0,
    ),
    ("bfloat16", "exact"): Tolerance(
        rtol=1e-1,
        atol=1e-1,
        evidence="measured max abs err 1.9e-2 (keras, deep-narrow), 9.4e-3 (torch, projection-128); 298 runs. On "
                 "large-cell-state (|c| up to ~15; torch and keras, 20 seeds, 2026-11-30) 2.0e-1 in c_n, 0.32 of the "
                 "bound",
        measured_worst=2.0e-1,
        covers_cell=20.0,
    ),
}

# The same on a GPU (any non-cpu device), where cuDNN, cuBLAS and XLA:GPU sum in other orders and
# TF32 exists. NOT RE-MEASURED BY THIS HARNESS: no GPU was available when these were set. The float32
# rows rest on the H100 measurements in shared/lstm-conventions.md (torch 2.11 + cuDNN 9.19, jax
# 0.11.2, keras 3.15.1, max abs error vs float64 on small LSTMs), with the margin rule above; the
# others are marked for what they rest on. Re-measure on a GPU and replace the evidence:
#   python -m harness measure --device cuda --dtype float32,float64,float16,bfloat16 [--precision tf32]
GPU_TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("float32", "exact"): Tolerance(
        rtol=5e-5,
        atol=5e-5,
        evidence="H100 (not re-measured): keras torch backend 1.0e-5, torch cuDNN 5.4e-6 (allow_tf32=False), "
                 "jax scan 7.1e-7, keras jax 4.8e-7; worst 0.2 of the bound",
        measured_worst=1.0e-5,
    ),
    ("float32", "tf32"): Tolerance(
        rtol=1e-2,
        atol=1e-2,
        evidence="H100 (not re-measured), TF32 on: jax scan 1.9e-3, keras jax 1.7e-3, keras torch 1.5e-3, "
                 "torch cuDNN 2.4e-4; worst 0.19 of the bound",
        measured_worst=1.9e-3,
    ),
    ("float64", "exact"): Tolerance(
        rtol=5e-14,
        atol=5e-14,
        evidence="NOT MEASURED ON A GPU: the CPU bound (CPU worst 1.4e-14); float64 has no reduced-precision "
                 "mode on NVIDIA GPUs, only another summation order",
        measured_worst=1.4e-14,
        covers_cell=20.0,
    ),
    ("float16", "exact"): Tolerance(
        rtol=1e-2,
        atol=1e-2,
        evidence="NOT MEASURED ON A GPU: the CPU bound (CPU worst 1.3e-2); cuDNN's own accumulation may differ",
        measured_worst=1.3e-2,
        covers_cell=20.0,
    ),
    ("bfloat16", "exact"): Tolerance(
        rtol=1e-1,
        atol=1e-1,
        evidence="NOT MEASURED ON A GPU: the CPU bound (CPU worst 2.0e-1); cuDNN's own accumulation may differ",
        measured_worst=2.0e-1,
        covers_cell=20.0,
    ),
}

# Backend-specific bounds where a framework computes differently by design, each with its reason.
BACKEND_TOLERANCES: dict[tuple[str, str, str], Tolerance] = {}

# Growth with the work. The bounds above were measured on at most 300 steps; rounding errors grow with the
# length and with |c|. Where the forget gate keeps c large (forget_bias 3: |c| ~ 10), an error made in c while |c|
# is large stays in c and reaches h undamped when c later swings through 0 (tanh' = 1 there); the longer the
# sequence, the more such swings and the larger the worst one. And some weight draws are ill-conditioned: a
# change of one float32 rounding step in the weights moves y by 1e-4..1e-3 after ~1000 steps (seeds 31, 49, 60
# of 100), so every correct float32 implementation differs from float64 by about that much. Measured 2026-11-30
# (torch 2.13, onnxruntime 1.32, jax 0.10.2; catalogue.LONG_SEQUENCES, batch 2): the worst ratio to the
# UNWIDENED bound, [weight seeds per backend]:
GROWTH_EVIDENCE = """
    float32, large-cell-state's spec (forget_bias 3, |c| 4-20)      torch / onnx / jax (lax.scan)
      T = 300: 0.44 [26] / 0.63 [6] / 0.56 [6]
      T = 1000: 411 [126] / 2.61 [6] / 2.56 [6]   (torch without the 2 ill-conditioned seeds: 5.2)
      T = 2000: 87 [106] / 127 [56] / 22 [56]     (ill-conditioned seeds 31, 60; the others <= 14.5)
      T = 3000: 3.55 [20];  5000: 4.58 / 7.66 / 3.19 [6];  10000: 16.3 [20] (torch)
    float32, forget_bias 5 (|c| 20-130)                              torch / onnx
      T = 40: 0.61 / 0.72 [20];  300: 2.33 / 4.75 [26];  2000: 13.3 / 84 [20];  5000: 13.3 / 52 [6]
    float16 / bfloat16, large-cell-state's spec, torch [6]
      T = 40: 0.50 / 0.24;  300: 0.75 / 0.82;  1000: 2.28 / 0.57;  5000: 6.34 / 2.72
    float32, plain spec (|c| ~ 1), torch, onnx, jax [3]: <= 0.06 at every T up to 5000 (no growth)
    error / the oracle's sensitivity (harness.conditioning), y, over the 700 runs above: median 0.9, worst 5.8
"""
# The rule (Tolerance.for_work), from the oracle's outputs only (a wrong subject must not widen its own bound):
#   rtol and atol x max(1, T / GROWTH_STEPS); atol also x max(1, |c| / covers_cell), T the run's steps and |c| the
#   largest |c_n| of the oracle; covers_cell is 2 for float32 (large-cell-state seed 351: 3.6e-6 at an element of
#   c_n near 0 where |c| elsewhere is 9, 1.8x the bound) and 20 for float64 and half precision, whose bounds were
#   measured on large-cell-state with their margin intact;
#   atol at least SENSITIVITY_MARGIN x the oracle's own sensitivity (how far y and h_n move when every weight
#   moves by one rounding step of the dtype), computed only where the length or |c| widens a float32 bound.
# Under the rule (`python -m harness measure --no-sweep --case large-cell-state-1000 ...`, the same seeds): worst
# ratio to the WIDENED bound 0.32 (torch, T = 2000, seed 60), 0.27 (onnx, T = 2000), 0.27 (onnx, forget_bias 5,
# T = 300); every backend at T = 2000 (float32, float64; 3 seeds) <= 0.05; float16 / bfloat16 (torch, T = 1000
# and 5000, 6 seeds) 0.13 / 0.07.
def growth(steps: int, cell: float, covered: float = GROWTH_CELL) -> tuple[float, float]:
    """How much a bound widens (rtol's factor, atol's factor) for `steps` time steps whose oracle cell state reaches
    |c| = `cell`, for a bound that covers |c| up to `covered`: the length widens both; |c| widens atol only (an
    error made while |c| was large shows where c is small; the relative error of the large values does not grow)."""
    length = max(1.0, steps / GROWTH_STEPS)
    return length, length * max(1.0, cell / covered)


def tolerance_for(dtype: str, precision: str = "exact", backend: str | None = None, device: str = "cpu") -> Tolerance:
    key = (dtype_name(dtype), precision)
    if backend is not None and (backend, *key) in BACKEND_TOLERANCES:
        return BACKEND_TOLERANCES[(backend, *key)]
    table, where = (TOLERANCES, "cpu") if device == "cpu" else (GPU_TOLERANCES, "GPU")
    if key not in table:
        raise KeyError(f"no {where} tolerance for dtype={key[0]!r}, precision={precision!r}; known: {sorted(table)}. "
                       f"Measure one: python -m harness measure --device {device} --dtype {key[0]} --precision {precision}")
    return table[key]


@dataclass(frozen=True)
class Bound:
    """One row of the tolerance tables, as a report lists it."""
    device: str  # "cpu", "GPU" (any CUDA device) or "any"
    dtype: str
    precision: str
    backend: str  # "" for every backend
    tolerance: Tolerance


def tolerance_table() -> list[Bound]:
    """Every bound of the tables above with its evidence, backend-specific ones first (they win in
    tolerance_for); the reports read the tables through this, never the dicts."""
    return ([Bound("any", dtype, mode, backend, tol) for (backend, dtype, mode), tol in BACKEND_TOLERANCES.items()]
            + [Bound("cpu", dtype, mode, "", tol) for (dtype, mode), tol in TOLERANCES.items()]
            + [Bound("GPU", dtype, mode, "", tol) for (dtype, mode), tol in GPU_TOLERANCES.items()])


def output_paths(spec: LSTMSpec, out: LSTMOutput) -> Iterator[tuple[str, np.ndarray]]:
    """Split an LSTMOutput into its named parts: y per direction, h_n and c_n per (layer, direction)."""
    D, P = spec.num_directions, spec.output_size
    for d in range(D):
        yield (f"y[direction={DIRECTIONS[d]}]" if D == 2 else "y"), out.y[..., d * P : (d + 1) * P]
    for name, arr in (("h_n", out.h_n), ("c_n", out.c_n)):
        for k, d in spec.units():
            yield f"{name}[layer={k}, direction={DIRECTIONS[d]}]", arr[k * D + d]


@dataclass
class PathReport:
    path: str
    shape: tuple[int, ...]
    mismatched: int
    max_abs: float
    max_abs_index: tuple[int, ...]
    max_rel: float
    max_rel_index: tuple[int, ...]
    worst_ratio: float  # max |a - e| / (atol + rtol |e|): <= 1 passes
    worst_index: tuple[int, ...]
    error: str | None = None  # shape or non-finite problem
    excluded: int = 0  # elements not compared: y at padded steps where the backend leaves them undefined
    padded_mismatched: int = 0  # of `mismatched`, those at padded steps (compared by the padding convention)


@dataclass
class Comparison:
    tolerance: Tolerance
    paths: list[PathReport] = field(default_factory=list)
    batch_first: bool = False
    padding: str | None = None  # y's padded-step convention, when the run had lengths (harness.oracle)

    @property
    def ok(self) -> bool:
        return all(p.error is None and p.mismatched == 0 for p in self.paths)

    @property
    def worst(self) -> PathReport:
        return max(self.paths, key=lambda p: (p.error is not None, p.worst_ratio))

    def message(self, context: str = "") -> str:
        bad = [p for p in self.paths if p.error or p.mismatched]
        if not bad:
            w = self.worst
            return (f"all outputs close{context}: worst {w.path} abs {w.max_abs:.3g}, {w.worst_ratio:.3g} of the bound"
                    f"{self._excluded_note()}")
        tol = self.tolerance
        lines = [f"{len(bad)} of {len(self.paths)} outputs are not close to the oracle{context}."]
        for p in bad:
            if p.error:
                lines.append(f"{p.path}: {p.error}")
                continue
            total = int(np.prod(p.shape))
            lines += [
                f"{p.path} (shape {p.shape}, index {self._axes(p.path)}):",
                f"  Mismatched elements: {p.mismatched} / {total} ({100 * p.mismatched / total:.1f}%)",
                f"  Greatest absolute difference: {p.max_abs:.6g} at index {p.max_abs_index} (up to {tol.atol:g} allowed)",
                f"  Greatest relative difference: {p.max_rel:.6g} at index {p.max_rel_index} (up to {tol.rtol:g} allowed)",
            ]
            if p.padded_mismatched:
                lines.append(f"  {p.padded_mismatched} of the mismatched elements are at padded steps, where the "
                             f"backend's convention is {self.padding!r}")
        return "\n".join(lines) + self._excluded_note()

    def _excluded_note(self) -> str:
        excluded = sum(p.excluded for p in self.paths)
        if not excluded:
            return ""
        return (f"; {excluded} values of y at padded steps not compared (the backend leaves them "
                f"{self.padding})")

    def _axes(self, path: str) -> str:
        if path.startswith("y"):
            return "(b, t, j)" if self.batch_first else "(t, b, j)"
        return "(b, j)"


def _idx(flat: int, shape) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def padded_steps(lengths, steps: int, batch_first: bool = False) -> np.ndarray:
    """[T, B] (or [B, T]) True where a step is padding: step t of example b with t >= lengths[b]."""
    padded = np.arange(steps)[:, None] >= np.asarray(lengths)[None, :]
    return padded.T if batch_first else padded


def compare(
    spec: LSTMSpec, actual: LSTMOutput, expected: LSTMOutput, tolerance: Tolerance, *, batch_first: bool = False,
    lengths=None, padding: str = "zeros", sensitivity: float = 0.0,
) -> Comparison:
    """Compare every output part with the oracle's (`expected`); never broadcasts (a shape difference is a failure
    of its own).

    With `lengths` (the run's per-example lengths), y at padded steps is compared by the backend's `padding`
    convention: "zeros" and "carry" compare it with what the oracle computed for that convention, "undefined"
    leaves it out (counted in PathReport.excluded and said in the message). Valid steps are always compared.
    `tolerance` is widened for the work: the oracle's steps and |c|, and `sensitivity` (harness.conditioning's
    sensitivity of the oracle run; Tolerance.for_work). The result holds the bound used.
    """
    if lengths is not None:
        check_padding(padding, spec)
    result = Comparison(tolerance, batch_first=batch_first, padding=None if lengths is None else padding)
    for name, exp_full, act_full in zip(("y", "h_n", "c_n"), expected, actual):
        act_full = np.asarray(act_full)
        if act_full.shape != exp_full.shape:
            result.paths.append(
                PathReport(name, act_full.shape, -1, np.inf, (), np.inf, (), np.inf, (),
                           error=f"expected shape {exp_full.shape}, got {act_full.shape}")
            )
    if result.paths:
        return result
    # The bound follows the work: the sequence length and the largest cell state, both the oracle's.
    steps = np.shape(expected.y)[1 if batch_first else 0]
    cell = float(np.max(np.abs(expected.c_n), initial=0.0))
    tolerance = result.tolerance = tolerance.for_work(steps, cell, sensitivity)
    padded = None
    if lengths is not None:
        padded = padded_steps(lengths, steps, batch_first)[..., None]
    for (path, exp), (_, act) in zip(output_paths(spec, expected), output_paths(spec, actual)):
        exp = np.asarray(exp, dtype=np.float64)
        act = np.asarray(act, dtype=np.float64)
        at_padding = np.broadcast_to(padded, exp.shape) if padded is not None and path.startswith("y") else None
        if at_padding is not None and padding == "undefined":  # not compared: the same numbers on both sides
            act = np.where(at_padding, exp, act)
        with np.errstate(divide="ignore", invalid="ignore"):  # inf - inf, x / 0: handled just below
            diff = np.abs(act - exp)
            rel = np.where(exp != 0, diff / np.abs(exp), np.where(diff == 0, 0.0, np.inf))
            ratio = diff / tolerance.allowed(exp)
        nonfinite = ~np.isfinite(act)
        ratio = np.where(nonfinite, np.inf, ratio)
        mism = int(np.count_nonzero(~(ratio <= 1.0)))
        ia, ir, iw = (int(np.nanargmax(np.where(np.isnan(a), np.inf, a))) for a in (diff, rel, ratio))
        report = PathReport(
            path, exp.shape, mism,
            float(diff.flat[ia]), _idx(ia, exp.shape),
            float(rel.flat[ir]), _idx(ir, exp.shape),
            float(ratio.flat[iw]), _idx(iw, exp.shape),
        )
        if at_padding is not None:
            if padding == "undefined":
                report.excluded = int(at_padding.sum())
            else:
                report.padded_mismatched = int(np.count_nonzero(~(ratio <= 1.0) & at_padding))
        if nonfinite.any():
            report.error = f"{int(nonfinite.sum())} non-finite values, first at index {_idx(int(np.argmax(nonfinite)), exp.shape)}"
        result.paths.append(report)
    return result
