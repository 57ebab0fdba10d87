"""Conversion between backends: exact round trips, folding that says so, refusals that name the
feature, and importing real framework objects under any prefix."""

from __future__ import annotations

import numpy as np
import pytest

from harness import CanonicalLSTM, LSTMSpec, UnsupportedFeature, backends, convert
from harness.compare import tolerance_for
from harness.catalogue import CASES, SEED_LAST_H, SEED_SPEC, seed_question_input, seed_question_keras_weights

# The ragged cases are left out: their specs are other cases', and lengths are no parameter.
EXPRESSIBLE = [(c, n) for c in CASES for n in backends.names()
               if not backends.get(n).reference and backends.get(n).supports(c.spec) is None and c.lengths is None]


def _needs(name):
    reason = backends.get(name).installed()
    if reason:
        pytest.skip(f"not installed: {reason}")


def _native_equal(a, b, path="native"):
    """Bit-equality of two native parameter sets: nested dicts and lists, or framework pytrees."""
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _native_equal(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _native_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray) or np.isscalar(a):
        assert np.asarray(a).dtype == np.asarray(b).dtype, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:  # a framework module holding arrays (an equinox cell): compare its leaves
        import jax

        assert type(a) is type(b), path
        la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
        assert len(la) == len(lb), path
        for i, (x, y) in enumerate(zip(la, lb)):
            _native_equal(np.asarray(x), np.asarray(y), f"{path}.leaf{i}")


@pytest.mark.parametrize("conv_case, name", EXPRESSIBLE, ids=[f"{c.name}-{n}" for c, n in EXPRESSIBLE])
def test_native_canonical_native_is_exact(conv_case, name):
    """Conversion is layout only: native -> canonical -> native reproduces every bit (float32 and float64)."""
    backend = backends.get(name)
    _needs(name)
    model = backend.adapt(conv_case.model())
    for dtype in (np.float32, np.float64):
        native = backend.export(model, dtype=dtype)
        back = backend.export(backend.import_(native, model.spec), dtype=dtype)
        _native_equal(native, back)
    assert backend.import_(backend.export(model, dtype=np.float64), model.spec) == model


def test_export_dtype_defaults_to_float32():
    model = CanonicalLSTM.random(LSTMSpec(input_size=5, hidden_size=7))
    assert {v.dtype for v in convert(model, "numpy", "torch", model.spec).values()} == {np.dtype(np.float32)}
    assert {v.dtype for v in convert(model, "numpy", "torch", model.spec, dtype=np.float64).values()} == {
        np.dtype(np.float64)}


def test_convert_names_a_bad_spec_or_dtype():
    spec = LSTMSpec(input_size=5, hidden_size=7)
    model = CanonicalLSTM.random(spec)
    with pytest.raises(TypeError, match=r"spec: expected an LSTMSpec .* got dict .*LSTMSpec\(\*\*that_dict\)"):
        convert(model, "numpy", "torch", spec.to_dict())
    with pytest.raises(TypeError, match="spec: expected an LSTMSpec .* got NoneType None"):
        convert(model, "numpy", "torch", None)
    for dtype in ("int32", "float8", np.int64):  # int32 would round every weight to an integer
        with pytest.raises(ValueError, match="dtype: expected one of"):
            convert(model, "numpy", "keras", spec, dtype=dtype)
        with pytest.raises(ValueError, match="dtype: expected one of"):
            backends.get("numpy").export(model, dtype=dtype)


def test_numpy_backend_is_the_canonical_form():
    model = CanonicalLSTM.random(LSTMSpec(input_size=5, hidden_size=7, bias="single"), 2)
    keras_weights = convert(model, "numpy", "keras", model.spec, dtype=np.float64)
    back = convert(keras_weights, "keras", "numpy", model.spec, dtype=np.float64)
    assert isinstance(back, CanonicalLSTM) and back == model


def test_double_bias_to_keras_folds_and_says_so():
    spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True)
    model = CanonicalLSTM.random(spec, 1)
    sd = convert(model, "numpy", "torch", spec)
    kw = convert(sd, "torch", "keras", spec)
    assert kw.folded == ("b_ih + b_hh summed into one bias",)
    assert len(kw) == 2 and len(kw[0]) == 6 and kw[1][0].shape == (14, 28)  # [fk, frk, fb, bk, brk, bb]
    lw = model[(1, 1)]
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731  (the float32 state_dict's values)
    np.testing.assert_array_equal(kw[1][5], (f32(lw.b_ih) + f32(lw.b_hh)).astype(np.float32))  # summed, rounded once
    assert convert(model, "numpy", "torch", spec).folded == ()


def test_forget_bias_folds_into_the_forget_gate():
    spec = LSTMSpec(input_size=5, hidden_size=7, forget_bias=1.0)
    model = CanonicalLSTM.random(spec, 1)
    sd = convert(model, "numpy", "torch", spec, dtype=np.float64)
    assert "run-time forget_bias=1 added into the forget part of the bias" in sd.folded
    np.testing.assert_allclose(sd["bias_ih_l0"][7:14], model[(0, 0)].b_ih[7:14] + 1.0)
    np.testing.assert_array_equal(sd["bias_ih_l0"][:7], model[(0, 0)].b_ih[:7])


@pytest.mark.parametrize("dst, spec, feature", [
    ("torch", LSTMSpec(input_size=5, hidden_size=7, peephole=True), "peepholes"),
    ("keras", LSTMSpec(input_size=5, hidden_size=7, proj_size=3), "a projection (proj_size=3)"),
    ("torch", LSTMSpec(input_size=5, hidden_size=7, cell_clip=1.0), "cell_clip=1.0"),
    ("torch", LSTMSpec(input_size=5, hidden_size=7, proj_size=7), "proj_size < hidden_size"),
])
def test_inexpressible_features_are_refused_by_name(dst, spec, feature):
    model = CanonicalLSTM.random(spec)
    with pytest.raises(UnsupportedFeature, match=feature.replace("(", r"\(").replace(")", r"\)")):
        convert(model, "numpy", dst, spec)


def test_real_torch_state_dict_imports_under_a_prefix_with_select():
    _needs("torch")
    import torch

    torch.manual_seed(0)
    spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True, proj_size=3)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, proj_size=3)
            self.decoder = torch.nn.LSTM(6, 4)

    net = Net().double()
    sd = net.state_dict()  # tensors, keys like 'encoder.weight_ih_l0'
    with pytest.raises(ValueError, match=r"found 2 torch.nn.LSTM LSTMs, under prefixes \['decoder.', 'encoder.'\]"):
        backends.get("torch").import_(sd, spec)
    with pytest.raises(ValueError, match=r"select='enc' matches none"):
        backends.get("torch").import_(sd, spec, select="enc")
    model = backends.get("torch").import_(sd, spec, select="encoder")
    x = np.random.default_rng(0).uniform(-1, 1, (6, 2, 5))
    with torch.no_grad():
        y, (h, c) = net.encoder(torch.from_numpy(x))
    ref = model.forward(x)
    tol = tolerance_for("float64")
    np.testing.assert_allclose(y.numpy(), ref.y, rtol=tol.rtol, atol=tol.atol)
    np.testing.assert_allclose(c.numpy(), ref.c_n, rtol=tol.rtol, atol=tol.atol)


def test_torch_import_errors_name_the_parameter():
    spec = LSTMSpec(input_size=5, hidden_size=7)
    sd = convert(CanonicalLSTM.random(spec), "numpy", "torch", spec)
    bad = dict(sd, weight_hh_l0=sd["weight_hh_l0"][:, :6])
    with pytest.raises(ValueError, match=r"^weight_hh_l0 \(layer 0, forward, W_hh\): expected shape \(28, 7\), got \(28, 6\)$"):
        backends.get("torch").import_(bad, spec)
    with pytest.raises(ValueError, match="missing parameter 'bias_hh_l0'"):
        backends.get("torch").import_({k: v for k, v in sd.items() if k != "bias_hh_l0"}, spec)
    with pytest.raises(ValueError, match=r"parameters \['weight_ih_l1'\] are not part of spec"):
        backends.get("torch").import_(dict(sd, weight_ih_l1=sd["weight_ih_l0"]), spec)


def test_real_keras_layer_weights_import_and_agree():
    _needs("keras")
    import keras

    spec = LSTMSpec(input_size=5, hidden_size=7, bidirectional=True, bias="single")
    layer = keras.layers.Bidirectional(keras.layers.LSTM(7, return_sequences=True, bias_initializer="random_uniform"))
    x = np.random.default_rng(1).uniform(-1, 1, (2, 6, 5)).astype(np.float32)
    y = keras.ops.convert_to_numpy(layer(x))
    model = backends.get("keras").import_([layer.get_weights()], spec)
    ref = model.forward(x, batch_first=True)
    tol = tolerance_for("float32")
    np.testing.assert_allclose(y, ref.y, rtol=tol.rtol, atol=tol.atol)


def test_keras_variable_paths_import_with_select():
    _needs("keras")
    import keras

    model = keras.Sequential([keras.Input((None, 5)), keras.layers.LSTM(7, return_sequences=True, name="lstm"),
                              keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True),
                                                         name="bidirectional"),
                              keras.layers.LSTM(4, name="lstm_2")], name="sequential")  # names fixed: Keras
    # would otherwise number them by what the process created before
    paths = {v.path: v.numpy() for v in model.weights}
    stack = LSTMSpec(input_size=5, hidden_size=7, bias="single")
    with pytest.raises(ValueError, match=r"holds LSTM layers \['sequential/lstm', 'sequential/bidirectional', "
                                         r"'sequential/lstm_2'\], but spec.num_layers=1"):
        backends.get("keras").import_(paths, stack)
    first = backends.get("keras").import_(paths, stack, select="sequential/lstm")
    w = model.layers[0].get_weights()
    np.testing.assert_array_equal(first[(0, 0)].W_ih, w[0].T)
    bidi = backends.get("keras").import_(paths, LSTMSpec(input_size=7, hidden_size=3, bidirectional=True,
                                                         bias="single"), select=["sequential/bidirectional"])
    np.testing.assert_array_equal(bidi[(0, 1)].W_hh, model.layers[1].get_weights()[4].T)
    with pytest.raises(ValueError, match="'sequential/lstm' is not a Bidirectional layer"):
        backends.get("keras").import_(paths, LSTMSpec(input_size=5, hidden_size=7, bidirectional=True,
                                                      bias="single"), select="sequential/lstm")


def test_keras_import_errors_are_clear():
    keras_b = backends.get("keras")
    with pytest.raises(ValueError, match="a Keras LSTM has one bias; describe it with bias='single'"):
        keras_b.import_(seed_question_keras_weights(), SEED_SPEC.replace(bias="double"))
    with pytest.raises(ValueError, match=r"layer 0: expected 3 arrays"):
        keras_b.import_([seed_question_keras_weights()[0][:2]], SEED_SPEC)
    with pytest.raises(ValueError, match=r"^layer0\.0 \(layer 0, forward, W_ih transposed \(kernel\)\): expected shape \(1, 12\), got \(12, 1\)$"):
        w = seed_question_keras_weights()[0]
        keras_b.import_([[w[0].T, w[1], w[2]]], SEED_SPEC)


def test_seed_question_from_keras_layout_to_torch():
    """The question's Keras weights, converted to PyTorch, give the published hidden state."""
    _needs("torch")
    sd = convert(seed_question_keras_weights(), "keras", "torch", SEED_SPEC, dtype=np.float64)
    assert set(sd) == {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}
    torch_b = backends.get("torch")
    model = torch_b.import_(sd, SEED_SPEC.replace(bias="double"))
    out = torch_b.run(torch_b.prepare(model, "float64"), seed_question_input(), None, None)
    np.testing.assert_allclose(out.h_n[0, 0], SEED_LAST_H, rtol=0, atol=5e-6)  # published to 5 decimals
