"""Negative controls: each backend, fed a classic porting mistake, must FAIL agreement.

These mistakes keep every shape right, so only the numbers can catch them. Each control injects
the bug between the oracle and the real framework (in the weights the backend receives, or in
the outputs it returns) and asserts that the comparison fails, at the output the bug touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from harness.canonical import CanonicalLSTM
from harness.catalogue import get_case
from harness.compare import compare, tolerance_for
from harness.outputs import LSTMOutput
from harness.results import NOT_INSTALLED, SKIPPED, UNSUPPORTED
from harness.runner import oracle_for, run_case
from misplaced_gate_clip import WRONG_PLACES, forward as misplaced_forward


def _each_unit(fn):
    def hook(model: CanonicalLSTM) -> CanonicalLSTM:
        for unit, lw in model.weights.items():
            fn(model, unit, lw)
        return model
    return hook


def _permute_gates(model, unit, lw):
    H = model.spec.hidden_size
    order = np.r_[0:H, 2 * H:3 * H, H:2 * H, 3 * H:4 * H]  # i, g, f, o: forget and cell swapped
    lw.W_ih, lw.W_hh, lw.b_ih, lw.b_hh = lw.W_ih[order], lw.W_hh[order], lw.b_ih[order], lw.b_hh[order]


def _drop_b_hh(model, unit, lw):
    lw.b_hh = np.zeros_like(lw.b_hh)


def _forget_bias_twice(model, unit, lw):
    H = model.spec.hidden_size  # folded once by hand, then applied again by the backend
    lw.b_ih[H:2 * H] += model.spec.forget_bias


def _transpose_gate_blocks(model, unit, lw):
    H = model.spec.hidden_size
    lw.W_hh = np.concatenate([lw.W_hh[g * H:(g + 1) * H].T for g in range(4)])


def _swap_directions(model: CanonicalLSTM) -> CanonicalLSTM:
    for k in range(model.spec.num_layers):
        model.weights[(k, 0)], model.weights[(k, 1)] = model.weights[(k, 1)], model.weights[(k, 0)]
    return model


def _swap_h_c(out: LSTMOutput) -> LSTMOutput:
    return LSTMOutput(out.y, out.c_n, out.h_n)


def _swap_y_halves(out: LSTMOutput) -> LSTMOutput:
    P = out.y.shape[-1] // 2
    return LSTMOutput(np.concatenate([out.y[..., P:], out.y[..., :P]], axis=-1), out.h_n, out.c_n)


def _h_n_direction_major(out: LSTMOutput, layers=2, dirs=2) -> LSTMOutput:
    order = [d * layers + k for k in range(layers) for d in range(dirs)]  # d * L + k instead of k * D + d
    return LSTMOutput(out.y, out.h_n[order], out.c_n[order])


def _backward_in_processing_order(out: LSTMOutput) -> LSTMOutput:
    P = out.y.shape[-1] // 2
    y = out.y.copy()
    y[..., P:] = y[::-1, :, P:]  # time-major cases: axis 0 is time
    return LSTMOutput(y, out.h_n, out.c_n)


@dataclass(frozen=True)
class Mistake:
    name: str
    case: str
    caught_at: str  # a prefix of the output path that must be reported as mismatched
    model_hook: Callable | None = None
    output_hook: Callable | None = None


MISTAKES = (
    Mistake("permuted-gate-order", "plain", "y", model_hook=_each_unit(_permute_gates)),
    Mistake("dropped-b_hh", "cudnn-double-bias", "y", model_hook=_each_unit(_drop_b_hh)),
    Mistake("forget-bias-twice", "forget-bias", "y", model_hook=_each_unit(_forget_bias_twice)),
    Mistake("transposed-gate-blocks", "plain", "y", model_hook=_each_unit(_transpose_gate_blocks)),
    Mistake("swapped-directions", "bidirectional", "y[direction=forward]", model_hook=_swap_directions),
    Mistake("swapped-h-c", "plain", "h_n", output_hook=_swap_h_c),
    Mistake("swapped-y-halves", "bidirectional", "y[direction=forward]", output_hook=_swap_y_halves),
    Mistake("h_n-layer-direction-order", "bidirectional-2layer", "h_n[layer=0, direction=backward]",
            output_hook=_h_n_direction_major),
    Mistake("reverse-outputs-in-processing-order", "bidirectional", "y[direction=backward]",
            output_hook=_backward_in_processing_order),
)


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_mistake_is_caught(mistake, backend_name):
    case = get_case(mistake.case)
    outcome = run_case(case, backend_name, "float32", model_hook=mistake.model_hook,
                       output_hook=mistake.output_hook)
    r = outcome.result
    if r.status in (UNSUPPORTED, NOT_INSTALLED, SKIPPED):
        pytest.skip(f"{r.status}: {r.reason}")
    assert r.status == "fail", f"{mistake.name} on {backend_name} was not caught: {r.status} {r.reason}"
    bad = [p.path for p in outcome.comparison.paths if p.mismatched or p.error]
    assert any(p.startswith(mistake.caught_at) for p in bad), (mistake.caught_at, bad)
    # The same run without the mistake passes: the failure is the mistake's, not the case's.
    assert run_case(case, backend_name, "float32").result.status == "pass"


def _passing_run(case_name, backend_name):
    """The case and its float32 run on the backend, which must pass (skipped where it cannot run)."""
    case = get_case(case_name)
    outcome = run_case(case, backend_name, "float32")
    r = outcome.result
    if r.status in (UNSUPPORTED, NOT_INSTALLED, SKIPPED):
        pytest.skip(f"{r.status}: {r.reason}")
    assert r.status == "pass", r.reason
    return case, outcome


def test_output_peephole_reading_old_c_is_caught(backend_name):
    """An output gate that peeks at c_{t-1} instead of c_t: compare each peephole-capable backend
    with an oracle that has that bug; the difference must exceed the float32 tolerance."""
    case, outcome = _passing_run("peephole", backend_name)
    model, (x, h0, c0), _ = oracle_for(case, "float32")
    from harness.oracle import forward

    buggy = forward(model, x, h0, c0, batch_first=case.batch_first, _output_peephole_reads_old_c=True)
    result = compare(case.spec, outcome.actual, buggy, tolerance_for("float32"))
    assert not result.ok
    assert any(p.mismatched for p in result.paths if p.path.startswith("y"))


def test_output_peephole_bug_is_visible_in_the_peephole_cases():
    """Independent of any framework: the cases' peephole data make the old-c bug show in float32."""
    for name in ("peephole", "peephole-projection-clips"):
        case = get_case(name)
        model, (x, h0, c0), good = oracle_for(case, "float32")
        from harness.oracle import forward

        bad = forward(model, x, h0, c0, _output_peephole_reads_old_c=True)
        assert not compare(case.spec, bad, good, tolerance_for("float32")).ok, name


def test_misplaced_gate_clip_is_caught(backend_name):
    """ONNX's clip bounds each gate pre-activation after its peephole term and forget_bias, and never c. Each
    backend that runs the gate-clip case must disagree with every misplaced clip, and with the clip taken for
    TF1's cell_clip (the mix-up the two names invite)."""
    case, outcome = _passing_run("gate-clip", backend_name)
    model, (x, h0, c0), expected = oracle_for(case, "float32")
    in_place = misplaced_forward(model, x, h0, c0, None)  # the variants' own loop, clip in its place: the oracle
    assert all(np.allclose(a, b, rtol=0, atol=1e-14) for a, b in zip(in_place, expected))
    wrong = {where: misplaced_forward(model, x, h0, c0, where) for where in WRONG_PLACES}
    wrong["as-cell-clip"] = CanonicalLSTM(case.spec.replace(gate_clip=None, cell_clip=case.spec.gate_clip),
                                          model.weights).forward(x, h0, c0)
    for where, bad in wrong.items():
        result = compare(case.spec, outcome.actual, bad, tolerance_for("float32"))
        assert not result.ok, f"{backend_name} agrees with the gate clip misplaced: {where}"
