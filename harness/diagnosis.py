"""diagnose(a, b): when two LSTMs disagree, which porting mistake explains it.

Both sides are read and run as assert_equivalent reads and runs them (harness.equivalence, harness.sides), once
each, on the same inputs (random x [4, 4, in] with nonzero h0, c0 by default: T = B, so that reading x
batch-major is a mistake that keeps its shape). Then the search runs on the oracle alone, never the frameworks:
for every mistake in the catalogue (harness.mistakes) and each side, it predicts what a port of the *other*
side's weights with that mistake computes and compares the prediction with what this side's framework
returned. A mistake explains the difference when the other side is faithful (its framework agrees with the
oracle on its own weights) and the prediction is within the bound of this side's outputs.

Every mistake that explains it is reported, as one class: on a given pair some cannot be told apart (b's gate
blocks in order f, g, i, o is a's in the inverse order; a bias doubled on b is a bias halved on a). With the
error before (b against the oracle on a's weights) and after undoing it (the side against the prediction).
When none explains it, the closest candidates are shown. When the two agree, the mistakes these inputs could
not have shown (swapping b_ih and b_hh changes nothing) are listed.

A side's own gate activation counts as its base: a Keras layer with hard_sigmoid gates is read leniently
(its weights, its activation: Keras 3's) so that a port of it to a sigmoid framework is named as that mistake.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import mistakes
from .compare import Comparison, Tolerance, padded_steps
from .equivalence import compared, describe, output_dtype, read_pair, run, tolerance, worst
from .outputs import LSTMOutput

STEPS = BATCH = 4
CLOSEST = 3


@dataclass
class Party:
    """One side as the search sees it: its weights (None for a function), its gates' activation, its outputs."""

    name: str  # "a" or "b"
    label: str
    model: object  # CanonicalLSTM | None
    gate: str
    outputs: LSTMOutput
    padding: str = "zeros"  # its framework's y at padded steps, when the run has lengths (harness.sides.Side)


@dataclass
class Candidate:
    mistake: mistakes.Mistake
    side: str  # the side that made it ("a" or "b"), predicted from the other side's weights
    after: Comparison  # the side's outputs against the prediction

    @property
    def ratio(self) -> float:
        return self.after.worst.worst_ratio

    def line(self) -> str:
        return f"{self.side}: {self.mistake.name}: {self.mistake.what}"


@dataclass
class Diagnosis:
    a: str
    b: str
    inputs: str
    tolerance: Tolerance
    before: Comparison  # b against the oracle on a's weights (a against b's where a is a function)
    faithful: dict[str, Comparison]  # each side against the oracle on its own weights (and gate)
    explained: list[Candidate] = field(default_factory=list)  # the one class that explains it
    closest: list[Candidate] = field(default_factory=list)  # when none does
    invisible: list[str] = field(default_factory=list)  # mistakes these inputs could not show
    not_searched: dict[str, str] = field(default_factory=dict)  # mistake -> why the pair cannot express it
    notes: list[str] = field(default_factory=list)
    before_what: str = "b against the oracle on a's weights"

    @property
    def agree(self) -> bool:
        return self.before.ok and all(c.ok for c in self.faithful.values())

    @property
    def named(self) -> list[str]:
        """The explaining class as 'side: mistake' names."""
        return [f"{c.side}: {c.mistake.name}" for c in self.explained]

    def __str__(self) -> str:
        tol = self.tolerance
        lines = [f"diagnose: a = {self.a}", f"          b = {self.b}",
                 f"inputs: {self.inputs}; bound |actual - expected| <= {tol.atol:g} + {tol.rtol:g} |expected|"]
        lines += [f"note: {n}" for n in self.notes]
        if self.agree:
            lines.append(f"a and b agree: {worst(self.before)}")
            if self.invisible:
                lines.append("these inputs could not show (each changes nothing here): " + ", ".join(self.invisible))
            return "\n".join(lines)
        lines.append(f"before: {self.before_what}: {_count(self.before)}; {worst(self.before)}")
        for name, c in self.faithful.items():
            if not c.ok:
                lines.append(f"  {name} disagrees with the oracle on its own weights too: {worst(c)}")
        if self.explained:
            n = len(self.explained)
            lines.append("explained by one mistake" + ("" if n == 1 else
                         f", a class of {n} that these inputs cannot tell apart") + ":")
            for c in self.explained:
                lines.append(f"  {c.line()}")
                lines.append(f"      after undoing it: {worst(c.after)}")
        else:
            lines.append("no single mistake in the catalogue explains it; the closest:")
            for c in self.closest:
                lines.append(f"  {c.line()}")
                lines.append(f"      after undoing it: {_count(c.after)}; {worst(c.after)}")
        if self.not_searched:
            by_reason: dict[str, list[str]] = {}
            for name, why in self.not_searched.items():
                by_reason.setdefault(why, []).append(name)
            lines.append(f"not searched ({len(self.not_searched)}: the pair cannot express them): " +
                         "; ".join(f"{', '.join(names)} ({why})" for why, names in by_reason.items()))
        return "\n".join(lines)


def _count(c: Comparison) -> str:
    bad = [p for p in c.paths if p.error or p.mismatched]
    elements = sum(max(p.mismatched, 0) for p in bad)
    return f"{len(bad)} of {len(c.paths)} output parts outside the bound ({elements} elements)"


def diagnose(a, b, x=None, *, h0=None, c0=None, lengths=None, batch_first: bool = False, rtol: float | None = None,
             atol: float | None = None, select_a=None, select_b=None) -> Diagnosis:
    """Read and run a and b (as assert_equivalent does), then search the catalogue of porting mistakes for the
    one that explains their difference. Returns a Diagnosis; print it for the report.

    lengths: int [B], each example's valid steps (right padding), run by each side its framework's own way, as
    assert_equivalent runs them; the search then predicts every mistake on the padded batch too, and names the
    ways a port drops or misuses lengths (harness.mistakes, family "lengths"). Without x, x is random [T, B, in]
    with B = len(lengths) and T = max(4, max(lengths))."""
    steps = STEPS if lengths is None or x is not None else max(STEPS, int(np.max(lengths)))
    pair = read_pair(a, b, x, h0, c0, batch_first=batch_first, select_a=select_a, select_b=select_b, lenient=True,
                     steps=steps, batch=BATCH, weights_on_a=False, lengths=lengths)
    out_a, out_b = run(pair.a, pair), run(pair.b, pair)
    dtype = output_dtype(pair.a, out_a, output_dtype(pair.b, out_b, pair.dtype))
    parties = [Party(name, describe(side), side.model, side.gate, out, side.padding)
               for name, side, out in (("a", pair.a, out_a), ("b", pair.b, out_b))]
    result = search(*parties, pair.xs, tolerance(dtype, rtol, atol), pair.origin, batch_first, pair.lengths)
    result.notes += pair.a.notes + pair.b.notes
    return result


def _computed(padding: str) -> str:
    """The convention the oracle computes y's padded steps with: "undefined" ones are written as zeros, and
    not compared."""
    return "zeros" if padding == "undefined" else padding


def search(a: Party, b: Party, xs, tol: Tolerance, origin: str = "", batch_first: bool = False,
           lengths=None) -> Diagnosis:
    """The search on outputs already computed (time-major); imports no framework (the negative controls call it
    directly). lengths: the run's per-example lengths (None: none); each party's y at padded steps is held to
    its own convention (Party.padding)."""
    spec = (a.model or b.model).spec
    steps, batch = xs[0].shape[:2]
    base = a if a.model is not None else b
    other = b if base is a else a
    references: dict[tuple[str, str], LSTMOutput] = {}

    def oracle(source: Party, padding: str) -> LSTMOutput:
        """The oracle on `source`'s weights and gates, y's padded steps by `padding`."""
        key = (source.name, _computed(padding))
        if key not in references:
            references[key] = mistakes.forward(source.model, *xs, gate=source.gate, lengths=lengths, padding=key[1])
        return references[key]

    def held(party: Party, expected: LSTMOutput, padding: str) -> Comparison:
        return compared(spec, party.outputs, expected, tol, batch_first, lengths, padding)

    before = held(other, oracle(base, other.padding), other.padding)
    faithful = {p.name: held(p, oracle(p, p.padding), p.padding) for p in (a, b) if p.model is not None}
    result = Diagnosis(a.label, b.label, origin, tol, before, faithful,
                       before_what=f"{other.name} against the oracle on {base.name}'s weights")
    scored, invisible, searched, unexpressed = [], set(), set(), {}
    padded = None if lengths is None else padded_steps(lengths, steps)  # [T, B], time-major as the outputs
    # Each side that holds weights is a source, a faithful one first: only its predictions can explain (the
    # others score inf and only rank the closest), and the reasons a mistake was not searched are said for it.
    order = sorted(((maker, source) for maker, source in ((b, a), (a, b)) if source.model is not None),
                   key=lambda pair: not faithful[pair[1].name].ok)
    for maker, source in order:  # the mistake on `maker`, predicted from `source`'s weights
        for m in mistakes.CATALOGUE:
            why = m.expressible(source.model.spec, steps, batch, lengths)
            if m.gate is not None and m.gate == source.gate:
                why = f"{source.name}'s gates already use {m.gate}"
            if why:
                unexpressed.setdefault(m.name, why)
                continue
            searched.add(m.name)
            # y at padded steps: the maker's convention; after a lengths mistake, whatever its port left there
            padding = "undefined" if m.lengths_use is not None else maker.padding
            predicted = m.predict(source.model, *xs, gate=source.gate, lengths=lengths, padding=_computed(padding))
            if _ratio(predicted, oracle(source, padding), None) <= 1e-12:  # changes nothing, padding included
                invisible.add(m.name)
                continue
            ratio = _ratio(maker.outputs, predicted, tol, padded if padding == "undefined" else None)
            scored.append((ratio if faithful[source.name].ok else np.inf, ratio, m, maker, predicted, padding))
    result.not_searched = {m: why for m, why in unexpressed.items() if m not in searched}
    result.invisible = sorted(invisible)
    if result.agree:
        return result

    def candidate(m, maker, predicted, padding) -> Candidate:
        return Candidate(m, maker.name, held(maker, predicted, padding))

    result.explained = [candidate(*rest) for r, _, *rest in scored if r <= 1]
    if not result.explained:
        result.closest = [candidate(*rest) for _, _, *rest in sorted(scored, key=lambda s: s[1])[:CLOSEST]]
    return result


def _ratio(actual: LSTMOutput, predicted: LSTMOutput, tol: Tolerance | None, skip=None) -> float:
    """The worst |actual - predicted| / (atol + rtol |predicted|) over every output (compare()'s verdict, fast);
    tol None: the worst |actual - predicted|. skip: [T, B] True at y's steps left out (undefined padding)."""
    worst = 0.0
    for i, (act, exp) in enumerate(zip(actual, predicted)):
        act = np.asarray(act, dtype=np.float64)
        if act.shape != exp.shape or not np.isfinite(act).all():
            return np.inf
        if i == 0 and skip is not None:
            act = np.where(skip[..., None], exp, act)
        diff = np.abs(act - exp)
        worst = max(worst, float(np.max(diff if tol is None else diff / tol.allowed(exp))))
    return worst
