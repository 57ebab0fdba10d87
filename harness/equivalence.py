"""assert_equivalent(a, b): two live LSTMs, each run in its own framework on the same inputs, each compared
with the float64 oracle on a's weights. One line in a user's test suite:

    from harness import assert_equivalent
    assert_equivalent(torch_lstm, keras_model)        # AssertionError naming both sides, or a result

a and b are what harness.sides reads (a torch.nn.LSTM or a module holding one, a Keras layer or model, a
(flax.linen module, variables) pair, an nnx module, a list of Equinox cells, an ONNX model or path, a TF1 cell
with its variables, a CanonicalLSTM, or b: a forward function). Each side's weights are read through the
backend imports (what the canonical LSTM cannot express is refused by name), each side runs in its own
framework, and the expected outputs are the oracle's on a's weights as a holds them. Inputs: x [T, B, in]
(time-major; [B, T, in] with batch_first) and h0, c0 (zeros where not given), or random x [6, 3, in] with
nonzero h0, c0; rounded to the pair's dtype (the coarsest of the two sides'; float64 only when both are).

Per-example lengths (a right-padded batch, int [B]): each side runs them its own framework's way (harness.sides:
torch packs, Keras masks, Flax passes seq_lengths, ONNX feeds sequence_lens, ...), and is compared with the
oracle run with the same lengths and that side's convention for y at padded steps (zeros, the last valid
output, or not compared where the framework leaves it undefined); the final states always. A side that cannot
run lengths is refused by name before anything runs.

The bound is the tolerance table's for that dtype (harness.compare), or rtol/atol where given; each side must
be within it of the oracle, so two float32 frameworks may differ from each other by up to twice the bound
(the result reports how far apart they are against that). Imports no framework: the sides' readers import
each framework only to read an object of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backends import UnsupportedFeature
from .canonical import CanonicalLSTM
from .compare import Comparison, Tolerance, compare, tolerance_for
from .inputs import check_inputs, check_lengths
from .outputs import LSTMOutput
from .precision import numpy_dtype
from .spec import LSTMSpec

STEPS, BATCH, SEED = 6, 3, 0  # port_check's sizes: a misread weight shows from the first step


@dataclass
class Pair:
    """Two sides read, and the inputs both run on (time-major float64 arrays holding `dtype` values)."""

    a: object  # harness.sides.Side
    b: object
    xs: tuple[np.ndarray, np.ndarray, np.ndarray]
    origin: str
    dtype: str
    batch_first: bool = False
    lengths: np.ndarray | None = None  # per-example lengths, int64 [B] (None: every sequence runs all T steps)


def read_pair(a, b, x=None, h0=None, c0=None, *, batch_first=False, select_a=None, select_b=None,
              lenient=False, steps=STEPS, batch=BATCH, weights_on_a=True, lengths=None) -> Pair:
    """Read both sides (harness.sides) and settle the inputs (and lengths, which both sides must be able to run)."""
    from . import sides

    sa = sides.read(a, select_a, name="a", lenient=lenient)
    sb = sides.read(b, select_b, name="b", lenient=lenient)
    if sa.model is None and (weights_on_a or sb.model is None):
        raise TypeError("a: the oracle runs on a's weights, and a function holds none: pass the function as b"
                        if sb.model is not None else "a, b: both are functions; one side must hold weights")
    sides.same_shape(sa, sb)
    dtype = sides.coarsest(sa.dtype, sb.dtype)
    spec = sa.spec or sb.spec
    if lengths is not None and x is None:  # random x: one example per length
        batch = len(np.atleast_1d(np.asarray(lengths)))
    xs, origin = inputs(spec, x, h0, c0, batch_first, dtype, steps, batch)
    if lengths is not None:
        lengths = check_lengths(lengths, xs[0].shape[0], xs[0].shape[1])
        for name, side in (("a", sa), ("b", sb)):
            if side.no_lengths:
                raise UnsupportedFeature(f"lengths: {name} ({side.label}) cannot run per-example lengths here: "
                                         f"{side.no_lengths}")
        origin += f", per-example lengths {lengths.tolist()}"
    return Pair(sa, sb, xs, origin, dtype, batch_first, lengths)


def inputs(spec: LSTMSpec, x, h0, c0, batch_first: bool, dtype: str, steps: int = STEPS, batch: int = BATCH):
    """(x, h0, c0) time-major as float64 arrays holding `dtype` values, and a line saying where they came from."""
    if x is None:
        if h0 is not None or c0 is not None:
            raise ValueError("h0, c0: given without x; pass x too (or none of them for random inputs)")
        x, h0, c0 = CanonicalLSTM.random(spec).random_inputs(batch, steps, seed=SEED)
        origin = f"random x [{steps}, {batch}, {spec.input_size}] (time-major), nonzero h0 and c0"
    else:
        checked = check_inputs(spec, x, h0, c0, batch_first=batch_first)
        x = np.asarray(checked.x, dtype=np.float64)
        x = x.transpose(1, 0, 2) if batch_first else x
        n, B = spec.num_layers * spec.num_directions, checked.batch
        given = checked.h0 is not None
        h0 = checked.h0 if given else np.zeros((n, B, spec.output_size))
        c0 = checked.c0 if given else np.zeros((n, B, spec.hidden_size))
        origin = f"the given x {list(np.shape(checked.x))}" + ("" if given else ", zero h0 and c0")
    rounded = tuple(np.asarray(a, dtype=numpy_dtype(dtype)).astype(np.float64) for a in (x, h0, c0))
    return rounded, origin + (f", rounded to {dtype}" if dtype != "float64" else "")


def run(side, pair: Pair) -> LSTMOutput:
    """One side on the pair's inputs (and lengths), time-major; a function side is called in the caller's layout."""
    x, h0, c0 = pair.xs
    lengths = {} if pair.lengths is None else {"lengths": pair.lengths}  # a function is called fn(x, h0, c0) without
    if side.framework == "function" and pair.batch_first:
        out = side.run(np.ascontiguousarray(x.transpose(1, 0, 2)), h0, c0, **lengths)
        return LSTMOutput(np.asarray(out.y).transpose(1, 0, 2), out.h_n, out.c_n)
    return side.run(x, h0, c0, **lengths)


def tolerance(dtype: str, rtol=None, atol=None) -> Tolerance:
    """The table's bound for the pair's dtype, or the caller's rtol/atol in its place."""
    base = tolerance_for(dtype)
    if rtol is None and atol is None:
        return base
    return Tolerance(base.rtol if rtol is None else float(rtol), base.atol if atol is None else float(atol),
                     evidence="given by the caller (rtol/atol)")


def output_dtype(side, out: LSTMOutput, dtype: str) -> str:
    """The pair's dtype, coarsened by what a function side returned."""
    from . import sides

    if side.framework != "function":
        return dtype
    kind = np.asarray(out.y).dtype
    return sides.coarsest(dtype, kind.name) if np.issubdtype(kind, np.floating) else dtype


def compared(spec: LSTMSpec, actual: LSTMOutput, expected: LSTMOutput, tol: Tolerance, batch_first: bool,
             lengths=None, padding: str = "zeros") -> Comparison:
    """compare() in the caller's layout, so the indices in a message are the caller's."""
    if batch_first:
        actual, expected = (LSTMOutput(np.asarray(o.y).transpose(1, 0, 2), o.h_n, o.c_n) for o in (actual, expected))
    return compare(spec, actual, expected, tol, batch_first=batch_first, lengths=lengths, padding=padding)


def describe(side) -> str:
    dtype = f", {side.dtype}" if side.dtype else ""
    return f"{side.label} ({side.framework}{dtype}; {side.how})"


def worst(comparison: Comparison) -> str:
    w = comparison.worst
    if w.error:
        return f"{w.path}: {w.error}"
    return f"worst {w.path} at {w.worst_index}: |diff| {w.max_abs:.3g}, {w.worst_ratio:.3g} x the bound"


@dataclass
class Equivalence:
    """What assert_equivalent returns when both sides agree with the oracle on a's weights."""

    a: str
    b: str
    spec: LSTMSpec
    dtype: str
    inputs: str
    tolerance: Tolerance
    a_vs_oracle: Comparison
    b_vs_oracle: Comparison
    a_vs_b: float  # worst |a - b| / (2 x the bound): <= 1 as both sides are within the bound of the oracle
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.a_vs_oracle.ok and self.b_vs_oracle.ok

    def __str__(self) -> str:
        return (f"equivalent ({self.dtype}, {self.inputs}; |actual - expected| <= {self.tolerance.atol:g} + "
                f"{self.tolerance.rtol:g} |expected|):\n  a: {self.a}: {worst(self.a_vs_oracle)}\n"
                f"  b: {self.b}: {worst(self.b_vs_oracle)}\n  a vs b: {self.a_vs_b:.3g} x twice the bound")


def assert_equivalent(a, b, x=None, *, h0=None, c0=None, lengths=None, batch_first: bool = False,
                      rtol: float | None = None, atol: float | None = None, select_a=None,
                      select_b=None) -> Equivalence:
    """Run a and b, each in its own framework, on the same inputs; compare each with the float64 oracle on a's
    weights. Raise AssertionError naming both sides, every output part outside the bound, how many elements,
    the worst absolute and relative error, where, and the bound; return an Equivalence when both agree.

    x: [T, B, in] ([B, T, in] with batch_first), h0/c0: [L*D, B, H] (zeros where not given); None: random x
    [6, 3, in] with nonzero h0, c0. lengths: int [B], each example's valid steps (right padding, 1..T; with
    random x, one example per length). rtol/atol replace the tolerance table's bound. select_a / select_b pick
    one LSTM where a side holds several (a module name, Keras layer names, a tree path, an ONNX node, a TF1
    scope).
    """
    pair = read_pair(a, b, x, h0, c0, batch_first=batch_first, select_a=select_a, select_b=select_b,
                     lengths=lengths)
    spec = pair.a.spec
    lengths = pair.lengths
    ragged = {"lengths": lengths} if lengths is not None else {}

    def expected_for(side) -> LSTMOutput:  # the oracle with the side's own convention for y at padded steps
        return pair.a.model.forward(*pair.xs, **ragged, **({"padding": side.padding} if ragged else {}))

    out_a, out_b = run(pair.a, pair), run(pair.b, pair)
    dtype = output_dtype(pair.b, out_b, pair.dtype)
    tol = tolerance(dtype, rtol, atol)
    ca, cb = (compared(spec, out, expected_for(side), tol, batch_first, lengths, side.padding)
              for side, out in ((pair.a, out_a), (pair.b, out_b)))
    labels = {"a": describe(pair.a), "b": describe(pair.b)}
    if not (ca.ok and cb.ok):
        lines = [f"assert_equivalent: {' and '.join(n for n, c in (('a', ca), ('b', cb)) if not c.ok)} "
                 "not within the bound of the float64 oracle on a's weights"]
        for name, c in (("a", ca), ("b", cb)):
            lines.append(f"  {name}: {labels[name]}: " + ("close, " + worst(c) if c.ok else "NOT close"))
        lines += [f"  inputs: {pair.origin}",
                  f"  bound: |actual - expected| <= {tol.atol:g} + {tol.rtol:g} |expected| ({dtype}; {tol.evidence})"]
        for name, c in (("a", ca), ("b", cb)):
            if not c.ok:
                lines.append(c.message(f" ({name}: {pair.a.label if name == 'a' else pair.b.label})"))
        lines.append("harness.diagnose(a, b) searches the catalogue of porting mistakes for the one that explains it")
        raise AssertionError("\n".join(lines))
    twice = Tolerance(2 * tol.rtol, 2 * tol.atol, "twice the bound")
    same = pair.a.padding if pair.a.padding == pair.b.padding else "undefined"  # padded y compared only if alike
    between = compared(spec, out_b, out_a, twice, batch_first, lengths, same).worst.worst_ratio
    return Equivalence(labels["a"], labels["b"], spec, dtype, pair.origin, tol, ca, cb, between,
                       pair.a.notes + pair.b.notes)
