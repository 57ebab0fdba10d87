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
from .compare import Comparison, Tolerance
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


def diagnose(a, b, x=None, *, h0=None, c0=None, batch_first: bool = False, rtol: float | None = None,
             atol: float | None = None, select_a=None, select_b=None) -> Diagnosis:
    """Read and run a and b (as assert_equivalent does), then search the catalogue of porting mistakes for the
    one that explains their difference. Returns a Diagnosis; print it for the report."""
    pair = read_pair(a, b, x, h0, c0, batch_first=batch_first, select_a=select_a, select_b=select_b, lenient=True,
                     steps=STEPS, batch=BATCH, weights_on_a=False)
    out_a, out_b = run(pair.a, pair), run(pair.b, pair)
    dtype = output_dtype(pair.a, out_a, output_dtype(pair.b, out_b, pair.dtype))
    parties = [Party(name, describe(side), side.model, side.gate, out)
               for name, side, out in (("a", pair.a, out_a), ("b", pair.b, out_b))]
    result = search(*parties, pair.xs, tolerance(dtype, rtol, atol), pair.origin, batch_first)
    result.notes += pair.a.notes + pair.b.notes
    return result


def _reference(party: Party, xs) -> LSTMOutput:
    return mistakes.forward(party.model, *xs, gate=party.gate)


def search(a: Party, b: Party, xs, tol: Tolerance, origin: str = "", batch_first: bool = False) -> Diagnosis:
    """The search on outputs already computed; imports no framework (the negative controls call it directly)."""
    spec = (a.model or b.model).spec
    steps, batch = xs[0].shape[:2]
    base = a if a.model is not None else b
    other = b if base is a else a
    reference = {p.name: _reference(p, xs) for p in (a, b) if p.model is not None}
    before = compared(spec, other.outputs, reference[base.name], tol, batch_first)
    faithful = {p.name: compared(p.model.spec, p.outputs, reference[p.name], tol, batch_first)
                for p in (a, b) if p.model is not None}
    result = Diagnosis(a.label, b.label, origin, tol, before, faithful,
                       before_what=f"{other.name} against the oracle on {base.name}'s weights")
    scored, invisible, searched, unexpressed = [], set(), set(), {}
    # A faithful source first: only its predictions can explain; the others only rank the closest.
    order = sorted(((b, a), (a, b)), key=lambda pair: not (pair[1].model is not None and faithful[pair[1].name].ok))
    for maker, source in order:  # the mistake on `maker`, predicted from `source`'s weights
        if source.model is None or (result.agree or any(r <= 1 for r, *_ in scored)) and not faithful[source.name].ok:
            continue
        for m in mistakes.CATALOGUE:
            why = m.expressible(source.model.spec, steps, batch)
            if m.gate is not None and m.gate == source.gate:
                why = f"{source.name}'s gates already use {m.gate}"
            if why:
                unexpressed.setdefault(m.name, why)
                continue
            searched.add(m.name)
            predicted = m.predict(source.model, *xs, gate=source.gate)
            if max(float(np.max(np.abs(p - r))) for p, r in zip(predicted, reference[source.name])) <= 1e-12:
                invisible.add(m.name)
                continue
            ratio = _ratio(maker.outputs, predicted, tol)
            scored.append((ratio if faithful[source.name].ok else np.inf, ratio, m, maker, predicted))
    result.not_searched = {m: why for m, why in unexpressed.items() if m not in searched}
    result.invisible = sorted(invisible)
    if result.agree:
        return result

    def candidate(m, maker, predicted) -> Candidate:
        return Candidate(m, maker.name, compared(spec, maker.outputs, predicted, tol, batch_first))

    result.explained = [candidate(m, maker, p) for r, _, m, maker, p in scored if r <= 1]
    if not result.explained:
        result.closest = [candidate(m, maker, p) for *_, m, maker, p in sorted(scored, key=lambda s: s[1])[:CLOSEST]]
    return result


def _ratio(actual: LSTMOutput, predicted: LSTMOutput, tol: Tolerance) -> float:
    """The worst |actual - predicted| / (atol + rtol |predicted|) over every output (compare()'s verdict, fast)."""
    worst = 0.0
    for act, exp in zip(actual, predicted):
        act = np.asarray(act, dtype=np.float64)
        if act.shape != exp.shape or not np.isfinite(act).all():
            return np.inf
        worst = max(worst, float(np.max(np.abs(act - exp) / tol.allowed(exp))))
    return worst
