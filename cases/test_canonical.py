"""LSTMSpec validation, CanonicalLSTM construction, random weights, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import CanonicalLSTM, LSTMSpec
from harness.canonical import expected_shapes


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_size=0, hidden_size=3), "input_size must be >= 1, got 0"),
    (dict(input_size=2, hidden_size=3.0), "hidden_size must be an int, got float"),
    (dict(input_size=2, hidden_size=3, num_layers=True), "num_layers must be an int, got bool"),
    (dict(input_size=2, hidden_size=3, proj_size=-1), "proj_size must be >= 0, got -1"),
    (dict(input_size=2, hidden_size=3, bias="two"), "bias must be one of ('double', 'single', 'none'), got 'two'"),
    (dict(input_size=2, hidden_size=3, cell_clip="0.5"), "cell_clip: expected a finite number >= 0, or None (off), "
                                                         "got str '0.5'"),
    (dict(input_size=2, hidden_size=3, cell_clip=float("inf")), "cell_clip: expected a finite number >= 0"),
    (dict(input_size=2, hidden_size=3, cell_clip=-1.0), "got -1.0: TF1's clip_by_value(c, -cell_clip, cell_clip) with "
                                                        "a negative bound sets every value of c to the constant 1.0"),
    (dict(input_size=2, hidden_size=3, proj_size=1, proj_clip=-0.3),
     "every value of the projected h to the constant 0.3"),
    (dict(input_size=2, hidden_size=3, gate_clip=0.0), "gate_clip: expected a positive finite number, or None (off), "
                                                       "got 0.0 (ONNX's clip; onnxruntime refuses clip <= 0"),
    (dict(input_size=2, hidden_size=3, gate_clip=-1), "gate_clip: expected a positive finite number"),
    (dict(input_size=2, hidden_size=3, gate_clip=True), "gate_clip: expected a positive finite number, or None (off), "
                                                        "got bool True"),
    (dict(input_size=2, hidden_size=3, gate_clip=float("nan")), "gate_clip: expected a positive finite number"),
    (dict(input_size=2, hidden_size=3, proj_clip=1.0), "proj_clip=1.0 clips the projection, but proj_size=0"),
    (dict(input_size=2, hidden_size=3, forget_bias=float("nan")), "forget_bias must be a finite number"),
    (dict(input_size=2, hidden_size=3, bidirectional=1), "bidirectional must be a bool"),
])
def test_invalid_spec_is_refused_with_a_clear_message(kwargs, message):
    with pytest.raises((TypeError, ValueError)) as info:
        LSTMSpec(**kwargs)
    assert message in str(info.value)


def test_tf1_clips_of_zero_are_valid_and_clip_to_zero():
    """TF1's LSTMCell clips whenever cell_clip / proj_clip is not None: 0.0 zeroes c (or the projected h)."""
    spec = LSTMSpec(input_size=2, hidden_size=3, proj_size=2, cell_clip=0.0, proj_clip=0, gate_clip=0.5)
    assert spec.features()[-3:] == ["cell_clip=0", "proj_clip=0", "gate_clip=0.5"]
    free = spec.replace(cell_clip=None, proj_clip=None, gate_clip=None)
    model = CanonicalLSTM.random(free)
    x, h0, c0 = model.random_inputs(2, 4, seed=1)
    run = lambda **clips: CanonicalLSTM(free.replace(**clips), model.weights).forward(x, h0, c0)  # noqa: E731
    assert np.all(run().y != 0) and np.all(run().c_n != 0)
    zero_c = run(cell_clip=0.0)
    assert not np.any(zero_c.y) and not np.any(zero_c.c_n)
    zero_h = run(proj_clip=0.0)
    assert not np.any(zero_h.y) and not np.any(zero_h.h_n) and np.all(zero_h.c_n != 0)


def test_positional_construction_is_refused():
    with pytest.raises(TypeError):
        LSTMSpec(2, 3)  # keyword-only: fields can be added later without breaking callers


def test_framework_limits_are_not_spec_errors():
    LSTMSpec(input_size=2, hidden_size=3, proj_size=5)  # torch refuses proj >= hidden; TF1 does not


def test_spec_round_trips_through_dict_and_refuses_unknown_fields():
    spec = LSTMSpec(input_size=2, hidden_size=3, proj_size=1, proj_clip=0.5, peephole=True, gate_clip=2.0)
    assert LSTMSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['hiden_size'\]"):
        LSTMSpec.from_dict({"input_size": 2, "hiden_size": 3})


SPECS = [
    LSTMSpec(input_size=5, hidden_size=7),
    LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True, proj_size=4, peephole=True,
             cell_clip=0.5, proj_clip=0.3, forget_bias=1.0),
    LSTMSpec(input_size=5, hidden_size=7, bias="single"),
    LSTMSpec(input_size=5, hidden_size=7, bias="none"),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(s.features()))
def test_random_is_deterministic_and_shaped(spec):
    a, b = CanonicalLSTM.random(spec, 3), CanonicalLSTM.random(spec, 3)
    assert a == b
    assert a != CanonicalLSTM.random(spec, 4)
    for (k, d), lw in a.weights.items():
        assert {n: v.shape for n, v in lw.items()} == expected_shapes(spec, k)
        assert all(v.dtype == np.float64 for _, v in lw.items())


def test_random_weights_expose_porting_bugs():
    spec = LSTMSpec(input_size=5, hidden_size=7, peephole=True, proj_size=4)
    lw = CanonicalLSTM.random(spec, 0)[(0, 0)]
    H = 7
    assert np.all(lw.b_ih != 0) and np.all(lw.b_hh != 0)  # both bias slots carry values
    means = [lw.b_ih[g * H:(g + 1) * H].mean() + lw.b_hh[g * H:(g + 1) * H].mean() for g in range(4)]
    assert len({round(m, 2) for m in means}) == 4  # each gate has its own offset
    scales = [np.abs(lw.W_ih[g * H:(g + 1) * H]).mean() for g in range(4)]
    assert len({round(s, 2) for s in scales}) == 4  # ... and its own scale
    assert np.all(lw.w_i) and np.all(lw.w_f) and np.all(lw.w_o) and np.any(lw.W_hr)


def test_random_inputs_have_nonzero_initial_states_and_layouts():
    m = CanonicalLSTM.random(LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True, proj_size=4))
    x, h0, c0 = m.random_inputs(batch=3, steps=6)
    assert x.shape == (6, 3, 5) and h0.shape == (4, 3, 4) and c0.shape == (4, 3, 7)
    assert np.all(h0 != 0) and np.all(c0 != 0)
    xb, _, _ = m.random_inputs(batch=3, steps=6, batch_first=True)
    np.testing.assert_array_equal(xb, x.transpose(1, 0, 2))


def test_weights_are_checked_against_the_spec():
    spec = LSTMSpec(input_size=5, hidden_size=7)
    lw = CanonicalLSTM.random(spec)[(0, 0)]
    lw.W_ih = lw.W_ih.T
    with pytest.raises(ValueError, match=r"weights\[layer=0, direction=forward\]\.W_ih: expected shape \(28, 5\), got \(5, 28\)"):
        CanonicalLSTM(spec, {(0, 0): lw})
    with pytest.raises(ValueError, match="expected \\(layer, direction\\) keys"):
        CanonicalLSTM(spec, {})
    single = LSTMSpec(input_size=5, hidden_size=7, bias="single")
    with pytest.raises(ValueError, match="b_hh: must be zero for bias='single'"):
        CanonicalLSTM(single, {(0, 0): CanonicalLSTM.random(spec)[(0, 0)]})


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(s.features()))
def test_save_load_round_trip(tmp_path, suffix, spec):
    model = CanonicalLSTM.random(spec, 5)
    path = model.save(tmp_path / f"m{suffix}")
    loaded = CanonicalLSTM.load(path)
    assert loaded == model and loaded.spec == spec


def test_load_checks_shapes_and_schema(tmp_path):
    model = CanonicalLSTM.random(LSTMSpec(input_size=5, hidden_size=7), 0)
    arrays = dict(model.tensors())
    meta = model.metadata()
    arrays["l0.forward.W_hh"] = arrays["l0.forward.W_hh"][:, :6]
    np.savez(tmp_path / "bad.npz", __metadata__=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(ValueError, match=r"l0.forward.W_hh: expected shape \(28, 7\), got \(28, 6\)"):
        CanonicalLSTM.load(tmp_path / "bad.npz")
    meta2 = dict(meta, schema_version="99")
    np.savez(tmp_path / "future.npz", __metadata__=np.array(json.dumps(meta2)), **model.tensors())
    with pytest.raises(ValueError, match="schema_version '99' is not supported"):
        CanonicalLSTM.load(tmp_path / "future.npz")
    np.savez(tmp_path / "extra.npz", __metadata__=np.array(json.dumps(meta)), extra=np.zeros(3), **model.tensors())
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        CanonicalLSTM.load(tmp_path / "extra.npz")
    with pytest.raises(ValueError, match="expected a .npz or .safetensors suffix"):
        model.save(tmp_path / "m.pt")


def test_load_never_unpickles(tmp_path):
    model = CanonicalLSTM.random(LSTMSpec(input_size=5, hidden_size=7), 0)
    arrays = dict(model.tensors())
    arrays["l0.forward.b_ih"] = np.array([object()] * 28, dtype=object)  # needs pickle to store
    np.savez(tmp_path / "pickled.npz", __metadata__=np.array(json.dumps(model.metadata())), **arrays)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        CanonicalLSTM.load(tmp_path / "pickled.npz")


def test_folding_keeps_the_function():
    spec = LSTMSpec(input_size=5, hidden_size=7, forget_bias=0.7)
    model = CanonicalLSTM.random(spec, 1)
    x, h0, c0 = model.random_inputs(2, 5)
    ref = model.forward(x, h0, c0)
    folded = model.fold_forget_bias().fold_biases()
    assert folded.spec.forget_bias == 0 and folded.spec.bias == "single"
    assert len(folded.folded) == 2 and "forget_bias=0.7" in folded.folded[0]
    for a, b in zip(folded.forward(x, h0, c0), ref):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)  # float64 re-association only: measured 4.4e-16 over 20 seeds
