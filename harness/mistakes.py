"""The catalogue of porting mistakes: the shape-preserving ways a port of an LSTM goes wrong, as data.

One catalogue, two users: the negative controls (cases/test_negative_controls.py) plant each mistake between
the oracle and a real framework and show that the comparison *catches* it; `harness.diagnose` predicts what a
port with each mistake computes and *names* the one that explains a disagreement. Imports no framework.

A mistake is planted in one of five places, and `predict(model, x, h0, c0, lengths=None)` gives the outputs of a
port of `model` that makes it (time-major x [T, B, in], float64; per-example lengths of a right-padded batch):

    weights   the port's weights are the canonical ones changed (gate blocks permuted, a bias dropped, ...)
    forward   the port computes another function (Keras's hard_sigmoid gates, the output peephole reading
              the old c): its own forward pass, `forward` below, the oracle's loop with those two knobs
    inputs    the port reads x, h0, c0 otherwise (the states swapped, x taken as batch-major)
    outputs   the port returns its outputs otherwise ((c, h) for (h, c), the backward half in processing order)
    lengths   the port drops or misuses per-example lengths (the padding run as data, the backward direction
              started at T-1, the final states taken after T-1): made of the run with the lengths and the run
              without them; only on a padded batch. A few mistakes that reverse or transpose time are not
              predicted on a padded batch (what they compute there depends on the port's masking): they say so.

`needs(spec, steps, batch)` says why a spec cannot express a mistake (None: it can): a [x, h] swap keeps the
shapes only when the layer's input is as wide as h, a states swap only without a projection, and so on.

Gate activations: the oracle's gates use the logistic sigmoid. Keras 2's hard_sigmoid was clip(0.2 x + 0.5,
0, 1), Keras 3's is clip(x / 6 + 0.5, 0, 1) (measured: keras.activations.hard_sigmoid(1.0) = 0.6667); a model
trained with one and run with another computes another function. They are not LSTMSpec fields: the
canonical LSTM is a sigmoid LSTM, and the readers refuse the others by name. They live here, as the
`gate` of a forward pass, so a diagnosis can name them.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .canonical import GATES, CanonicalLSTM
from .oracle import forward as oracle_forward
from .outputs import LSTMOutput
from .spec import LSTMSpec


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


GATE_FUNCTIONS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "sigmoid": ("the logistic sigmoid", _sigmoid),
    "hard_sigmoid_keras3": ("Keras 3's hard_sigmoid, clip(x / 6 + 0.5, 0, 1)",
                            lambda z: np.clip(z / 6.0 + 0.5, 0.0, 1.0)),
    "hard_sigmoid_keras2": ("Keras 2's hard_sigmoid, clip(0.2 x + 0.5, 0, 1)",
                            lambda z: np.clip(0.2 * z + 0.5, 0.0, 1.0)),
}


def forward(model: CanonicalLSTM, x, h0, c0, *, gate: str = "sigmoid", output_peephole_reads_old_c: bool = False,
            lengths=None, padding: str = "zeros") -> LSTMOutput:
    """The oracle's forward pass (harness.oracle, time-major, states given) with the gates' activation and the
    output peephole's c as parameters. The oracle keeps no such knobs: it is the reference. With the defaults
    this equals the oracle (cases/test_mistakes.py checks it on every catalogue case). lengths and padding: the
    oracle's (per-example lengths of a right-padded batch; y's convention at padded steps)."""
    if gate == "sigmoid" and not output_peephole_reads_old_c:
        return oracle_forward(model, x, h0, c0, lengths=lengths, padding=padding)
    return variant_forward(model, x, h0, c0, GATE_FUNCTIONS[gate][1], output_peephole_reads_old_c, lengths, padding)


def variant_forward(model: CanonicalLSTM, x, h0, c0, act: Callable, old_c: bool, lengths=None,
                    padding: str = "zeros") -> LSTMOutput:
    """The oracle's loop with `act` for the gates' sigmoid and the output peephole on the old c if `old_c`;
    per-example lengths as the oracle runs them (a padded step leaves the state as it was)."""
    spec = model.spec
    D = spec.num_directions
    clip = (lambda z, a: z if a is None else np.clip(z, -a, a))  # noqa: E731
    layer_in, h_n, c_n = np.asarray(x, np.float64), [], []
    T, B = layer_in.shape[:2]
    valid = np.ones((T, B), bool) if lengths is None else np.arange(T)[:, None] < np.asarray(lengths)[None, :]
    for k in range(spec.num_layers):
        outs = []
        for d in range(D):
            w, i = model.weights[(k, d)], k * D + d
            h, c = h0[i], c0[i]
            ys = np.zeros((layer_in.shape[0], layer_in.shape[1], spec.output_size))
            for t in range(layer_in.shape[0] - 1, -1, -1) if d else range(layer_in.shape[0]):
                zi, zf, zg, zo = np.split(layer_in[t] @ w.W_ih.T + w.b_ih + h @ w.W_hh.T + w.b_hh, 4, axis=-1)
                if spec.peephole:
                    zi, zf = zi + w.w_i * c, zf + w.w_f * c
                zi, zf, zg = (clip(z, spec.gate_clip) for z in (zi, zf + spec.forget_bias, zg))
                c_new = clip(act(zf) * c + act(zi) * np.tanh(zg), spec.cell_clip)
                if spec.peephole:
                    zo = zo + w.w_o * (c if old_c else c_new)
                h_new = act(clip(zo, spec.gate_clip)) * np.tanh(c_new)
                if spec.proj_size:
                    h_new = clip(h_new @ w.W_hr.T, spec.proj_clip)
                m = valid[t][:, None]
                h, c = np.where(m, h_new, h), np.where(m, c_new, c)
                ys[t] = h if padding == "carry" else np.where(m, h, 0.0)
            h_n.append(h)
            c_n.append(c)
            outs.append(ys)
        layer_in = np.concatenate(outs, axis=-1)
    return LSTMOutput(layer_in, np.stack(h_n), np.stack(c_n))


@dataclass(frozen=True)
class Mistake:
    name: str
    family: str
    what: str  # what the port did, one line
    where: str  # "weights", "forward", "inputs" or "outputs"
    needs: Callable[[LSTMSpec, int, int], str | None] = field(default=lambda spec, steps, batch: None, repr=False)
    weights: Callable[[CanonicalLSTM], CanonicalLSTM] | None = field(default=None, repr=False)
    inputs: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple] | None = field(default=None, repr=False)
    outputs: Callable[[LSTMOutput, LSTMSpec], LSTMOutput] | None = field(default=None, repr=False)
    gate: str | None = None  # the gates' activation the port computes with (a forward mistake)
    old_c: bool = False  # the output peephole reads the old c (a forward mistake)
    harmless: bool = False  # changes nothing in the function: caught by nothing, listed as such by diagnose
    # A lengths mistake: the port's outputs from the right run (with the lengths) and the full one (every
    # sequence run to T, the padding as data): lengths_use(right, full, spec).
    lengths_use: Callable[[LSTMOutput, LSTMOutput, LSTMSpec], LSTMOutput] | None = field(default=None, repr=False)
    unmodelled_with_lengths: str = ""  # why this mistake is not predicted on a padded batch ("": it is)

    def expressible(self, spec: LSTMSpec, steps: int, batch: int, lengths=None) -> str | None:
        """None when a port of `spec` can make this mistake on inputs [steps, batch, ...] (with per-example
        `lengths`, when the run has them); else why not."""
        padded = lengths is not None and bool(np.any(np.asarray(lengths) < steps))
        if self.lengths_use is not None and not padded:
            return ("the run has no per-example lengths" if lengths is None else
                    "every example runs all T steps: nothing is padded")
        if lengths is not None and self.unmodelled_with_lengths:
            return self.unmodelled_with_lengths
        return self.needs(spec, steps, batch)

    def plant(self, model: CanonicalLSTM) -> CanonicalLSTM:
        """The port's weights (a copy; the model itself for a mistake that is not in the weights)."""
        if not self.weights:
            return model
        planted = copy.copy(model)  # not model.copy(): its checks cost more than a search's oracle run, and a
        planted.weights = {u: lw.copy() for u, lw in model.weights.items()}  # mistake keeps every shape
        return self.weights(planted)

    def plant_outputs(self, out: LSTMOutput, spec: LSTMSpec) -> LSTMOutput:
        return self.outputs(out, spec) if self.outputs else out

    def predict(self, model: CanonicalLSTM, x, h0, c0, *, gate: str = "sigmoid", lengths=None,
                padding: str = "zeros") -> LSTMOutput:
        """The outputs (time-major) of a port of `model` with this mistake, on x, h0, c0 (time-major, states
        given) and per-example `lengths` (None: none); `gate`: the gates' activation the faithful model computes
        with (a forward mistake replaces it); `padding`: the port's convention for y at padded steps."""
        if self.lengths_use is not None:
            right = forward(model, x, h0, c0, gate=gate, lengths=lengths, padding=padding)
            return self.lengths_use(right, forward(model, x, h0, c0, gate=gate), model.spec)
        if self.inputs:
            x, h0, c0 = self.inputs(x, h0, c0)
        out = forward(self.plant(model), x, h0, c0, gate=self.gate or gate, output_peephole_reads_old_c=self.old_c,
                      lengths=lengths, padding=padding)
        return self.plant_outputs(out, model.spec)


# The mistakes, by family -------------------------------------------------------------------------------
def _rows(order: str, H: int) -> np.ndarray:
    return np.concatenate([np.arange(H) + GATES.index(g) * H for g in order])


def _each_unit(fn):
    def plant(model: CanonicalLSTM) -> CanonicalLSTM:
        for (k, d), lw in model.weights.items():
            fn(model.spec, k, lw)
        return model
    return plant


KNOWN_ORDERS = {"igfo": "TF1's i, j, f, o and BlockLSTM's i, c, f, o", "iofg": "ONNX's i, o, f, c"}


def _gate_order(order: str) -> Mistake:
    def permute(spec, k, lw):
        rows = _rows(order, spec.hidden_size)
        lw.W_ih, lw.W_hh, lw.b_ih, lw.b_hh = lw.W_ih[rows], lw.W_hh[rows], lw.b_ih[rows], lw.b_hh[rows]

    known = f" ({KNOWN_ORDERS[order]})" if order in KNOWN_ORDERS else ""
    return Mistake(f"gate-order-{order}", "gate order",
                   f"the gate blocks in order {', '.join(order)}{known} where the framework reads i, f, g, o",
                   "weights", weights=_each_unit(permute))


def _has_bias(spec, steps, batch):
    return "the LSTM has no bias (bias='none')" if spec.bias == "none" else None


def _double_bias(spec, steps, batch):
    return None if spec.bias == "double" else f"the LSTM has one bias (bias={spec.bias!r}), not b_ih and b_hh"


def _scale_bias(factor):
    def scale(spec, k, lw):
        lw.b_ih, lw.b_hh = lw.b_ih * factor, lw.b_hh * factor
    return _each_unit(scale)


def _set(name, value_of):
    def change(spec, k, lw):
        setattr(lw, name, value_of(lw))
    return _each_unit(change)


def _swap_bias_slots(spec, k, lw):
    lw.b_ih, lw.b_hh = lw.b_hh, lw.b_ih


def _blocks(W: np.ndarray, fn) -> np.ndarray:
    H = W.shape[0] // 4
    return np.concatenate([fn(W[g * H:(g + 1) * H]) for g in range(4)])


def _square_recurrent(spec, steps, batch):
    return (f"W_hh's gate blocks are [{spec.hidden_size}, {spec.output_size}]: not square with a projection"
            if spec.proj_size else None)


def _input_as_wide_as_h(what):
    def needs(spec, steps, batch):
        widths = {spec.layer_input_size(k) for k in range(spec.num_layers)}
        if widths != {spec.output_size}:
            return (f"{what} keeps the shapes only where every layer's input is as wide as h "
                    f"({spec.output_size}); the layers read {sorted(widths)}")
        return None
    return needs


def _swap_x_h(spec, k, lw):
    lw.W_ih, lw.W_hh = lw.W_hh, lw.W_ih


def _forget_bias(change):
    def plant(model: CanonicalLSTM) -> CanonicalLSTM:
        return model.replace_spec(forget_bias=change(model.spec.forget_bias))
    return plant


def _needs_forget_bias(spec, steps, batch):
    return None if spec.forget_bias else "forget_bias is 0: applying it twice changes nothing"


def _no_projection(what):
    def needs(spec, steps, batch):
        return f"{what} keeps the shapes only without a projection (proj_size={spec.proj_size})" \
            if spec.proj_size else None
    return needs


def _bidirectional(spec, steps, batch):
    return None if spec.bidirectional else "the LSTM has one direction"


def _unidirectional(spec, steps, batch):
    return "go_backwards is a one-direction LSTM's (a Bidirectional's backward half has it by design)" \
        if spec.bidirectional else None


def _stacked_bidirectional(spec, steps, batch):
    if not spec.bidirectional or spec.num_layers < 2:
        return "h_n's layer and direction orders coincide unless the LSTM is bidirectional with 2+ layers"
    return None


def _peephole(spec, steps, batch):
    return None if spec.peephole else "the LSTM has no peepholes"


def _square_input(spec, steps, batch):
    return None if steps == batch else \
        f"x is [{steps}, {batch}, ...]: read as batch-major it would not fit h0 and c0 [.., {batch}, ..]"


def _swap_directions(model: CanonicalLSTM) -> CanonicalLSTM:
    for k in range(model.spec.num_layers):
        model.weights[(k, 0)], model.weights[(k, 1)] = model.weights[(k, 1)], model.weights[(k, 0)]
    return model


def _swap_peepholes_f_o(spec, k, lw):
    lw.w_f, lw.w_o = lw.w_o, lw.w_f


def _reverse_time(x, h0, c0):
    return x[::-1], h0, c0


def _batch_major(x, h0, c0):
    return x.transpose(1, 0, 2), h0, c0


def _batch_major_outputs(out: LSTMOutput, spec) -> LSTMOutput:
    return LSTMOutput(out.y.transpose(1, 0, 2), out.h_n, out.c_n)


def _swap_states_in(x, h0, c0):
    return x, c0, h0


def _swap_states_out(out: LSTMOutput, spec) -> LSTMOutput:
    return LSTMOutput(out.y, out.c_n, out.h_n)


def _swap_y_halves(out: LSTMOutput, spec) -> LSTMOutput:
    P = out.y.shape[-1] // 2
    return LSTMOutput(np.concatenate([out.y[..., P:], out.y[..., :P]], axis=-1), out.h_n, out.c_n)


def _backward_in_processing_order(out: LSTMOutput, spec) -> LSTMOutput:
    P = out.y.shape[-1] // 2
    y = out.y.copy()
    y[..., P:] = y[::-1, :, P:]
    return LSTMOutput(y, out.h_n, out.c_n)


def _direction_major(out: LSTMOutput, spec) -> LSTMOutput:
    L, D = spec.num_layers, spec.num_directions
    order = [d * L + k for k in range(L) for d in range(D)]  # the port's row k * D + d holds unit d * L + k
    return LSTMOutput(out.y, out.h_n[order], out.c_n[order])


def _halves(right: LSTMOutput, wrong: LSTMOutput, direction: int, spec: LSTMSpec) -> LSTMOutput:
    """right's outputs with one direction's half of y and rows of h_n, c_n taken from wrong."""
    P, D = spec.output_size, spec.num_directions
    y = np.array(right.y, dtype=np.float64)
    y[..., direction * P:(direction + 1) * P] = np.asarray(wrong.y)[..., direction * P:(direction + 1) * P]
    rows = [k * D + direction for k in range(spec.num_layers)]
    h_n, c_n = np.array(right.h_n, dtype=np.float64), np.array(right.c_n, dtype=np.float64)
    h_n[rows], c_n[rows] = np.asarray(wrong.h_n)[rows], np.asarray(wrong.c_n)[rows]
    return LSTMOutput(y, h_n, c_n)


_NOT_WITH_LENGTHS = "on a padded batch what it computes depends on how the port masks; not modelled here"


def _transposed_blocks(W):
    return _blocks(W, lambda b: b.T)


def _reshaped(W):
    return W.T.reshape(W.shape)  # a [in, 4H] kernel reshaped to [4H, in] instead of transposed


CATALOGUE: tuple[Mistake, ...] = (
    *(_gate_order("".join(p)) for p in itertools.permutations(GATES) if "".join(p) != "".join(GATES)),
    Mistake("bias-dropped", "bias", "the bias left out (use_bias=False, or never copied)", "weights",
            needs=_has_bias, weights=_scale_bias(0.0)),
    Mistake("bias-b_hh-dropped", "bias", "b_hh left out where the framework sums b_ih + b_hh into one bias",
            "weights", needs=_double_bias, weights=_set("b_hh", lambda lw: np.zeros_like(lw.b_hh))),
    Mistake("bias-b_ih-dropped", "bias", "b_ih left out where the framework sums b_ih + b_hh into one bias",
            "weights", needs=_double_bias, weights=_set("b_ih", lambda lw: np.zeros_like(lw.b_ih))),
    Mistake("bias-doubled", "bias", "the bias doubled (one bias copied into both b_ih and b_hh)", "weights",
            needs=_has_bias, weights=_scale_bias(2.0)),
    Mistake("bias-halved", "bias", "the bias halved (a sum split evenly, then one half dropped)", "weights",
            needs=_has_bias, weights=_scale_bias(0.5)),
    Mistake("bias-slots-swapped", "bias", "b_ih and b_hh in each other's slot (the function sees only the sum)",
            "weights", needs=_double_bias, weights=_each_unit(_swap_bias_slots), harmless=True),
    Mistake("kernel-recurrent-blocks-transposed", "kernel", "each gate block of the recurrent kernel transposed",
            "weights", needs=_square_recurrent, weights=_set("W_hh", lambda lw: _transposed_blocks(lw.W_hh))),
    Mistake("kernel-input-blocks-transposed", "kernel", "each gate block of the input kernel transposed",
            "weights", needs=_input_as_wide_as_h("transposing the input kernel's gate blocks"),
            weights=_set("W_ih", lambda lw: _transposed_blocks(lw.W_ih))),
    Mistake("kernel-input-reshaped", "kernel", "the input kernel reshaped to its transposed shape instead of "
            "transposed ([in, 4H].reshape(4H, in))", "weights", weights=_set("W_ih", lambda lw: _reshaped(lw.W_ih))),
    Mistake("kernel-recurrent-reshaped", "kernel", "the recurrent kernel reshaped to its transposed shape instead "
            "of transposed", "weights", weights=_set("W_hh", lambda lw: _reshaped(lw.W_hh))),
    Mistake("kernel-x-h-swapped", "kernel", "the [x, h] halves of a concatenated kernel swapped (TF1's "
            "concat([x, h]) kernel read with h first)", "weights",
            needs=_input_as_wide_as_h("swapping the [x, h] halves"), weights=_each_unit(_swap_x_h)),
    Mistake("forget-bias-plus-1", "forget_bias", "forget_bias off by +1.0 (TF1's default 1.0 folded into a bias "
            "that already held it, or applied where it was not)", "weights",
            weights=_forget_bias(lambda fb: fb + 1.0)),
    Mistake("forget-bias-minus-1", "forget_bias", "forget_bias off by -1.0 (TF1's default 1.0 left out: not folded "
            "into the bias of a framework that has no forget_bias)", "weights",
            weights=_forget_bias(lambda fb: fb - 1.0)),
    Mistake("forget-bias-twice", "forget_bias", "forget_bias applied twice (folded into the bias and added at run "
            "time too)", "weights", needs=_needs_forget_bias, weights=_forget_bias(lambda fb: 2.0 * fb)),
    *(Mistake(f"gates-{name}", "gate activation", f"the gates computed with {about}", "forward", gate=name)
      for name, (about, _) in GATE_FUNCTIONS.items()),
    Mistake("states-swapped-in", "states", "h0 and c0 given in each other's place ((c, h) for (h, c), as "
            "TF1's LSTMStateTuple(c, h) orders them)", "inputs",
            needs=_no_projection("swapping h0 and c0"), inputs=_swap_states_in),
    Mistake("states-swapped-out", "states", "h_n and c_n returned in each other's place", "outputs",
            needs=_no_projection("swapping h_n and c_n"), outputs=_swap_states_out),
    Mistake("backward-in-processing-order", "directions", "the backward direction's outputs left in processing "
            "order (last step first) instead of the input's time order", "outputs", needs=_bidirectional,
            outputs=_backward_in_processing_order, unmodelled_with_lengths=_NOT_WITH_LENGTHS),
    Mistake("go-backwards", "directions", "the sequence read last step first, outputs in that order (Keras's "
            "go_backwards=True)", "inputs", needs=_unidirectional, inputs=_reverse_time,
            unmodelled_with_lengths=_NOT_WITH_LENGTHS),
    Mistake("directions-swapped", "directions", "the forward and backward directions' weights swapped",
            "weights", needs=_bidirectional, weights=_swap_directions),
    Mistake("y-halves-swapped", "directions", "y's forward and backward halves swapped", "outputs",
            needs=_bidirectional, outputs=_swap_y_halves),
    Mistake("h_n-direction-major", "directions", "h_n and c_n in direction-major order (d * L + k) instead of "
            "layer-major (k * D + d)", "outputs", needs=_stacked_bidirectional, outputs=_direction_major),
    Mistake("peephole-order-ifo", "peepholes", "the peepholes read as i, f, o where they are i, o, f (ONNX's P), "
            "so w_f and w_o swapped", "weights", needs=_peephole, weights=_each_unit(_swap_peepholes_f_o)),
    Mistake("peephole-output-reads-old-c", "peepholes", "the output gate's peephole reading the old c (c_{t-1}) "
            "instead of the new one", "forward", needs=_peephole, old_c=True),
    Mistake("batch-major-as-time-major", "layout", "x read batch-major where it is time-major (or the other way "
            "round): [T, B, in] taken as [B, T, in]", "inputs", needs=_square_input, inputs=_batch_major,
            outputs=_batch_major_outputs, unmodelled_with_lengths="lengths count each example's steps: read "
            "batch-major, steps and examples trade places; not modelled here"),
    # Per-example lengths (a right-padded batch): what a port that drops or misuses them returns, made of the
    # right run and the full one (every sequence to T). y at padded steps is then the port's own business.
    Mistake("padding-processed-as-data", "lengths", "the lengths dropped: every sequence run to T, the padding "
            "processed as data (no pack_padded_sequence, mask or sequence_length)", "lengths",
            lengths_use=lambda right, full, spec: full),
    Mistake("backward-starts-at-T-1", "lengths", "the backward direction started at step T-1, in the padding (the "
            "whole padded sequence reversed), where it starts at each example's last valid step", "lengths",
            needs=_bidirectional, lengths_use=lambda right, full, spec: _halves(right, full, 1, spec)),
    Mistake("final-state-at-T-1", "lengths", "y right, but h_n and c_n taken after step T-1 (the padding run "
            "through) instead of after each example's last valid step", "lengths",
            lengths_use=lambda right, full, spec: LSTMOutput(right.y, full.h_n, full.c_n)),
)
# A batch-major-as-time-major port returns its y in the layout it believes in, which is y's layout again.

BY_NAME: dict[str, Mistake] = {m.name: m for m in CATALOGUE}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(m.family for m in CATALOGUE))


def get(name: str) -> Mistake:
    if name not in BY_NAME:
        raise KeyError(f"unknown mistake {name!r}; the catalogue's families: {', '.join(FAMILIES)} "
                       f"({len(CATALOGUE)} mistakes: harness.mistakes.CATALOGUE)")
    return BY_NAME[name]
