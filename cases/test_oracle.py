"""The oracle against independent facts: hand-written scalar steps, published numbers, and the
structural identities (reverse direction, stacking, batch_first) it must satisfy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import CanonicalLSTM, LSTMSpec
from harness.catalogue import SEED_LAST_H, get_case, seed_question_input, seed_question_model
from harness.canonical import LayerWeights
from clip_counts import record_clips


def _sig(z):
    return 1 / (1 + math.exp(-z))


def test_seed_question_matches_the_published_hidden_state():
    """'Order of LSTM weights in Keras': Keras prints the last hidden state to 5 decimals."""
    out = seed_question_model().forward(seed_question_input())
    np.testing.assert_allclose(out.h_n[0, 0], SEED_LAST_H, rtol=0, atol=5e-6)  # 5 printed decimals
    np.testing.assert_array_equal(out.y[-1, 0], out.h_n[0, 0])


def test_one_scalar_step_with_every_feature_by_hand():
    """H = P = 1, one step, written out with math.*: peepholes (output reads the new, clipped c),
    forget_bias, cell_clip, projection, proj_clip, both biases."""
    spec = LSTMSpec(input_size=1, hidden_size=1, proj_size=1, peephole=True, forget_bias=0.7,
                    cell_clip=0.4, proj_clip=0.3)
    Wi, Wh = [0.5, -0.3, 0.8, 0.2], [0.1, 0.4, -0.6, 0.3]
    bi, bh = [0.05, 0.1, -0.2, 0.15], [-0.1, 0.02, 0.3, 0.05]
    pi, pf, po, proj = 0.3, -0.2, 0.9, 1.7
    lw = LayerWeights(W_ih=np.array(Wi)[:, None], W_hh=np.array(Wh)[:, None], b_ih=np.array(bi), b_hh=np.array(bh),
                      w_i=np.array([pi]), w_f=np.array([pf]), w_o=np.array([po]), W_hr=np.array([[proj]]))
    model = CanonicalLSTM(spec, {(0, 0): lw})
    x, h, c = 0.9, -0.2, 0.6
    z = [Wi[g] * x + Wh[g] * h + bi[g] + bh[g] for g in range(4)]
    i = _sig(z[0] + pi * c)
    f = _sig(z[1] + pf * c + 0.7)
    c_new = max(-0.4, min(0.4, f * c + i * math.tanh(z[2])))
    o = _sig(z[3] + po * c_new)
    h_new = max(-0.3, min(0.3, proj * o * math.tanh(c_new)))
    out = model.forward(np.array([[[x]]]), np.array([[[h]]]), np.array([[[c]]]))
    assert out.c_n[0, 0, 0] == pytest.approx(c_new, abs=1e-15)
    assert out.h_n[0, 0, 0] == pytest.approx(h_new, abs=1e-15)


def test_one_scalar_step_with_the_gate_clip_by_hand():
    """ONNX's clip, H = 1, one step, with math.*: each gate's pre-activation reaches the clip only with the term
    the clip must include (i: its peephole; f: the run-time forget_bias; o: its peephole on the NEW c; g alone)."""
    spec = LSTMSpec(input_size=1, hidden_size=1, peephole=True, forget_bias=1.0, gate_clip=0.5)
    Wi, Wh = [0.5, -0.3, 0.8, 0.2], [0.1, 0.4, -0.6, 0.3]
    bi, bh = [0.05, 0.1, -0.2, 0.15], [-0.1, 0.02, 0.3, 0.05]
    pi, pf, po = 0.3, -0.2, 0.9
    lw = LayerWeights(W_ih=np.array(Wi)[:, None], W_hh=np.array(Wh)[:, None], b_ih=np.array(bi), b_hh=np.array(bh),
                      w_i=np.array([pi]), w_f=np.array([pf]), w_o=np.array([po]))
    x, h, c = 0.9, -0.2, 0.6
    z = [Wi[g] * x + Wh[g] * h + bi[g] + bh[g] for g in range(4)]
    clip = lambda v: max(-0.5, min(0.5, v))  # noqa: E731
    assert abs(z[0]) < 0.5 < z[0] + pi * c and abs(z[1] + pf * c) < 0.5 < z[1] + pf * c + 1.0 and z[2] > 0.5
    i, f = _sig(clip(z[0] + pi * c)), _sig(clip(z[1] + pf * c + 1.0))
    c_new = f * c + i * math.tanh(clip(z[2]))
    assert c_new > 0.5  # c itself is not clipped: a clip of c would move it
    assert abs(z[3]) < 0.5 < z[3] + po * c_new
    h_new = _sig(clip(z[3] + po * c_new)) * math.tanh(c_new)
    out = CanonicalLSTM(spec, {(0, 0): lw}).forward(np.array([[[x]]]), np.array([[[h]]]), np.array([[[c]]]))
    assert out.c_n[0, 0, 0] == pytest.approx(c_new, abs=1e-15)
    assert out.h_n[0, 0, 0] == pytest.approx(h_new, abs=1e-15)


def test_the_gate_clip_binds_on_every_gate_in_its_case(monkeypatch):
    """Guard for the gate-clip case: a clip that never binds on some gate would prove nothing about it there."""
    calls = record_clips(monkeypatch)
    case = get_case("gate-clip")
    for seed in range(8):
        calls.clear()
        model = case.model(seed)
        model.forward(*case.inputs(model, seed))
        moved = np.reshape([hits / total for _, hits, total in calls], (-1, 4))  # i, f, g, then o, each step
        per_gate = moved.mean(axis=0)
        assert np.all(per_gate > 0.1), (seed, per_gate)  # measured: i 27-40%, f 12-32%, g 17-29%, o 40-62%


def test_clips_bind_in_the_clip_case():
    case = get_case("peephole-projection-clips")
    model = case.model()
    x, h0, c0 = case.inputs(model)
    out = model.forward(x, h0, c0)
    for seed in range(8):  # both clips bind on a real share of the values, for every seed measured
        model = case.model(seed)
        out = model.forward(*case.inputs(model, seed))
        assert np.mean(np.abs(out.y) == case.spec.proj_clip) > 0.08, seed  # measured 10-31%
        assert np.mean(np.abs(out.c_n) == case.spec.cell_clip) > 0.08, seed  # measured 14-48%


def test_reverse_direction_is_a_forward_lstm_on_reversed_time():
    spec = LSTMSpec(input_size=5, hidden_size=7, bidirectional=True)
    model = CanonicalLSTM.random(spec, 2)
    x, h0, c0 = model.random_inputs(3, 6, 4)
    out = model.forward(x, h0, c0)
    uni = CanonicalLSTM(LSTMSpec(input_size=5, hidden_size=7), {(0, 0): model[(0, 1)]})
    back = uni.forward(x[::-1], h0[1:], c0[1:])
    np.testing.assert_array_equal(out.y[..., 7:], back.y[::-1])  # original time order
    np.testing.assert_array_equal(out.h_n[1], back.h_n[0])


def test_layer_two_reads_both_directions_of_layer_one():
    spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True, proj_size=3)
    model = CanonicalLSTM.random(spec, 3)
    x, h0, c0 = model.random_inputs(2, 5, 1)
    out = model.forward(x, h0, c0)
    one = LSTMSpec(input_size=5, hidden_size=7, bidirectional=True, proj_size=3)
    first = CanonicalLSTM(one, {(0, d): model[(0, d)] for d in (0, 1)}).forward(x, h0[:2], c0[:2])
    top = CanonicalLSTM(one.replace(input_size=6), {(0, d): model[(1, d)] for d in (0, 1)})
    second = top.forward(first.y, h0[2:], c0[2:])
    np.testing.assert_array_equal(out.y, second.y)
    np.testing.assert_array_equal(out.h_n, np.concatenate([first.h_n, second.h_n]))


def test_batch_first_is_a_transpose():
    model = CanonicalLSTM.random(LSTMSpec(input_size=5, hidden_size=7, num_layers=2), 0)
    x, h0, c0 = model.random_inputs(3, 4)
    tm = model.forward(x, h0, c0)
    bf = model.forward(x.transpose(1, 0, 2), h0, c0, batch_first=True)
    np.testing.assert_array_equal(bf.y, tm.y.transpose(1, 0, 2))
    np.testing.assert_array_equal(bf.h_n, tm.h_n)


@pytest.mark.parametrize("bad, message", [
    (dict(x=np.zeros((4, 5))), r"x: expected a 3-D array \[T, B, input_size\], got shape \(4, 5\)"),
    (dict(x=np.zeros((4, 2, 6))), r"x: expected last dimension input_size=5, got shape \(4, 2, 6\)"),
    (dict(x=np.zeros((4, 2, 5)), h0=np.zeros((1, 3, 7))), r"h0: expected shape \(1, 2, 7\)"),
    (dict(x=np.zeros((4, 2, 5)), c0=np.zeros((2, 7))), r"c0: expected shape \(1, 2, 7\)"),
    (dict(x=np.zeros((0, 2, 5))), r"at least one time step"),
])
def test_bad_inputs_are_refused(bad, message):
    model = CanonicalLSTM.random(LSTMSpec(input_size=5, hidden_size=7))
    with pytest.raises(ValueError, match=message):
        model.forward(**bad)
