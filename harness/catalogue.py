"""The agreement cases, as data: a name, a spec, sizes, input layout and a seed.

Sizes keep input != hidden != proj (5, 7, 4) so a transposed matrix cannot pass by accident, and
are small where size proves nothing. `Case.model()` gives the weights (CanonicalLSTM.random unless
the case brings its own, as the seed question does), `Case.inputs()` the x, h0, c0, and `Case.lengths`
the per-example lengths of a right-padded batch (None: every sequence runs all `steps`). The padded steps
of x hold random values like the rest, so a backend that runs over them as data cannot pass by luck.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .canonical import CanonicalLSTM
from .spec import LSTMSpec

DTYPES = ("float32", "float64")

IN, HID, PROJ = 5, 7, 4


@dataclass(frozen=True)
class Case:
    name: str
    spec: LSTMSpec
    batch: int = 3
    steps: int = 6
    batch_first: bool = False
    initial_state: bool = True  # nonzero h0, c0; False: the frameworks' default zero state
    seed: int = 0
    about: str = ""
    weights: Callable[[], CanonicalLSTM] | None = field(default=None, compare=False)
    fixed_input: Callable[[], np.ndarray] | None = field(default=None, compare=False)
    lengths: tuple[int, ...] | None = None  # valid steps per example (right padding); None: all `steps`

    def __post_init__(self) -> None:
        if self.lengths is not None:  # the one check of lengths, at definition time
            from .inputs import check_lengths

            check_lengths(self.lengths, self.steps, self.batch)

    @property
    def length_array(self) -> np.ndarray | None:
        """lengths as the int64 array Backend.run and the oracle take."""
        return None if self.lengths is None else np.array(self.lengths, dtype=np.int64)

    def model(self, seed: int | None = None) -> CanonicalLSTM:
        if self.weights is not None:
            return self.weights()
        return CanonicalLSTM.random(self.spec, self.seed if seed is None else seed)

    def inputs(self, model: CanonicalLSTM, seed: int | None = None):
        """x, h0, c0 as float64 (h0 = c0 = None for the zero-state cases)."""
        seed = self.seed if seed is None else seed
        x, h0, c0 = model.random_inputs(self.batch, self.steps, seed + 1, batch_first=self.batch_first)
        if self.fixed_input is not None:
            x = self.fixed_input()
        return (x, h0, c0) if self.initial_state else (x, None, None)


def _spec(**kw) -> LSTMSpec:
    return LSTMSpec(**{"input_size": IN, "hidden_size": HID, **kw})


# The seed question, "Order of LSTM weights in Keras": a Keras LSTM with 3 units on 1 input feature.
SEED_KERNEL = [[-0.40927699, -0.53539848, 0.40065038, -0.07722378, 0.30405849, 0.54959822,
                -0.23097005, 0.4720422, 0.05197877, -0.52746099, -0.5856396, -0.43691438]]
SEED_RECURRENT = [
    [-0.25504839, -0.0823682, 0.11609183, 0.41123426, 0.03409858, -0.0647027,
     -0.59183347, -0.15359771, 0.21647622, 0.24863823, 0.46169096, -0.21100986],
    [0.29160395, 0.46513283, 0.33996364, -0.31195125, -0.24458826, -0.09762905,
     0.16202784, -0.01602131, 0.34460208, 0.39724654, 0.31806156, 0.1102117],
    [-0.15919448, -0.33053166, -0.22857222, -0.04912394, -0.21862955, 0.55346996,
     0.38505834, 0.18110731, 0.270677, -0.02759281, 0.42814475, -0.13496138],
]
SEED_BIAS = [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]
SEED_INPUT = [0.725323664, 0.7671179, 0.805884672]
SEED_SPEC = LSTMSpec(input_size=1, hidden_size=3, bias="single")
# The last hidden state the question's Keras (sigmoid recurrent activation) prints.
SEED_LAST_H = [-0.05508, 0.12672, 0.03343]


def seed_question_keras_weights() -> list[list[np.ndarray]]:
    """The question's weights in Keras's own layout: one get_weights() list for the one layer."""
    return [[np.array(SEED_KERNEL), np.array(SEED_RECURRENT), np.array(SEED_BIAS, dtype=np.float64)]]


def seed_question_model() -> CanonicalLSTM:
    from .backends import get

    return get("keras").import_(seed_question_keras_weights(), SEED_SPEC)  # import needs no Keras install


def seed_question_input() -> np.ndarray:
    return np.array(SEED_INPUT).reshape(3, 1, 1)  # [T, B, 1]


CASES: tuple[Case, ...] = (
    Case("plain", _spec(), about="one layer, both biases, nonzero initial state, time-major"),
    Case("bidirectional", _spec(bidirectional=True)),
    Case("2layer", _spec(num_layers=2)),
    Case("3layer", _spec(num_layers=3)),
    Case("bidirectional-2layer", _spec(num_layers=2, bidirectional=True)),
    Case("projection", _spec(proj_size=PROJ), about="LSTMP: h projected from 7 to 4"),
    Case("projection-bidirectional-2layer", _spec(proj_size=PROJ, num_layers=2, bidirectional=True)),
    Case("cudnn-double-bias", _spec(num_layers=2, bidirectional=True, bias="double"), seed=11,
         about="cuDNN's b_ih and b_hh, both nonzero: a target with one bias must sum them"),
    Case("single-bias", _spec(bias="single")),
    Case("no-bias", _spec(bias="none")),
    Case("zero-initial-state", _spec(num_layers=2), initial_state=False),
    Case("batch-first", _spec(bidirectional=True), batch_first=True),
    Case("seq-len-1", _spec(bidirectional=True), steps=1),
    Case("batch-1", _spec(num_layers=2), batch=1),
    Case("long-200", _spec(bidirectional=True), batch=2, steps=200, about="200 steps: error accumulation"),
    Case("forget-bias", _spec(forget_bias=0.7), about="a TF1-style run-time forget_bias; folded elsewhere"),
    Case("peephole", _spec(peephole=True), about="input/forget peepholes read c_{t-1}, output reads c_t"),
    Case("peephole-projection-clips", _spec(peephole=True, proj_size=PROJ, cell_clip=0.5, proj_clip=0.1,
                                           forget_bias=1.0),
         about="TF1 LSTMCell with every feature; both clips bind on a real share of values "
               "(8 seeds: proj_clip on 10-31% of y, cell_clip on 14-48% of c_n)"),
    Case("cell-clip", _spec(cell_clip=0.5, num_layers=2)),
    Case("peephole-projection-clips-bidirectional-2layer",
         _spec(num_layers=2, bidirectional=True, peephole=True, proj_size=PROJ, cell_clip=0.5, proj_clip=0.1,
               forget_bias=0.7),
         about="every TF1 feature, stacked bidirectional (stack_bidirectional_dynamic_rnn); over seeds 0-7 the "
               "cell clip binds on 15-25% of c values, the projection clip on 21-39% of projected h values"),
    Case("forget-bias-1-stacked", _spec(num_layers=2, bias="single", forget_bias=1.0),
         about="TF1's default forget_bias=1.0 in a MultiRNNCell; folded into the bias elsewhere"),
    Case("cell-clip-0", _spec(cell_clip=0.0, num_layers=2),
         about="TF1 LSTMCell's cell_clip=0.0 clips c to zero, so every output is zero (TF1's own testCellClipping); "
               "BlockLSTM, which reads 0 as off, is unsupported. The cell-clip case's sizes: one JAX program"),
    Case("gate-clip", _spec(bidirectional=True, peephole=True, forget_bias=-0.5, gate_clip=0.5),
         about="ONNX's clip of every gate pre-activation, peepholes and forget_bias included; over seeds 0-7 it "
               "binds on 27-40% of i, 12-32% of f, 17-29% of g and 40-62% of o pre-activations"),
    Case("large-cell-state", _spec(forget_bias=3.0), batch=2, steps=40,
         about="forget_bias=3 over 40 steps: 9-21% of |c| exceed 3 (seeds 0-7), where BlockLSTM's default "
               "cell_clip=3.0 would clip"),
    # Per-example lengths (right padding). Each reuses a case's spec, sizes and layout above, so a JAX backend
    # runs the program it compiled for that case (lengths are data). The order is not sorted: torch packs with
    # enforce_sorted=False, and a backend that sorts must put the batch back.
    Case("ragged", _spec(num_layers=2), lengths=(4, 6, 1),
         about="a right-padded batch, stacked, with a one-step example: each sequence stops at its length"),
    Case("ragged-full-length", _spec(), lengths=(6, 6, 6),
         about="every length is T: the same numbers as without lengths (an ONNX node with sequence_lens = T)"),
    Case("ragged-bidirectional", _spec(bidirectional=True), batch_first=True, lengths=(3, 6, 1),
         about="the backward direction starts at each example's last valid step, from h0"),
    Case("ragged-bidirectional-2layer", _spec(num_layers=2, bidirectional=True), lengths=(5, 2, 6),
         about="layer 2 reads layer 1's outputs; only valid steps reach a state in either layer"),
    Case("seed-question", SEED_SPEC, batch=1, steps=3, initial_state=False, weights=seed_question_model,
         fixed_input=seed_question_input, about="Keras units=3, input 1: 'Order of LSTM weights in Keras'"),
)

# Larger and oddly shaped sizes, for the tolerance measurements and a size sweep in the tests:
# the float32 bound must hold across sizes, not only on the small catalogue shapes.
SIZE_SWEEP: tuple[Case, ...] = (
    Case("wide-64", LSTMSpec(input_size=32, hidden_size=64), batch=4, steps=50, seed=101),
    Case("deep-narrow", LSTMSpec(input_size=64, hidden_size=16, num_layers=3, bidirectional=True), batch=2,
         steps=20, seed=102),
    Case("projection-128", LSTMSpec(input_size=3, hidden_size=128, proj_size=32), batch=2, steps=30, seed=103),
    Case("long-300-single", LSTMSpec(input_size=9, hidden_size=24, bias="single"), batch=1, steps=300, seed=104),
)

# Long sequences and large cell states, where float32 rounding errors grow: the evidence behind the bound's
# growth with the work (harness.compare.growth; `python -m harness measure --case large-cell-state-1000,...`)
# and the long-sequence tests (cases/test_long_sequences.py). large-cell-state's spec (forget_bias 3: |c| ~ 10).
LONG_SEQUENCES: tuple[Case, ...] = tuple(
    Case(f"large-cell-state-{steps}", _spec(forget_bias=3.0), batch=2, steps=steps,
         about=f"large-cell-state over {steps} steps: float32 errors grow with the length where |c| ~ 10")
    for steps in (1000, 2000, 5000)
) + (
    Case("larger-cell-state-300", _spec(forget_bias=5.0), batch=2, steps=300,
         about="forget_bias=5: |c| 30-110, float32 errors grow with |c|"),
)

BY_NAME = {c.name: c for c in CASES + SIZE_SWEEP + LONG_SEQUENCES}


def get_case(name: str) -> Case:
    if name not in BY_NAME:
        raise KeyError(f"unknown case {name!r}; known cases: {', '.join(BY_NAME)}")
    return BY_NAME[name]
