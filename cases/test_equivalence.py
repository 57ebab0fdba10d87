"""assert_equivalent on live objects (harness/equivalence.py, harness/sides/): each pair built by its real
frameworks from one canonical model, passing; the same with a mistake planted, failing with the message a
user needs; refusals by name. Tiny sizes (input 3, hidden 4): size proves nothing here; each framework's
objects are built once per module.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import CanonicalLSTM, LSTMSpec, UnsupportedFeature, assert_equivalent, backends, convert, mistakes
from harness.compare import tolerance_for
from installed import needs, one_torch_thread  # noqa: F401  (an autouse fixture)

SPEC = LSTMSpec(input_size=3, hidden_size=4, num_layers=2, bidirectional=True)



@pytest.fixture(scope="module")
def model():
    return CanonicalLSTM.random(SPEC, seed=5).rounded("float32")


def torch_lstm(model, **kwargs):
    import torch

    spec = model.spec
    lstm = torch.nn.LSTM(spec.input_size, spec.hidden_size, num_layers=spec.num_layers,
                         bidirectional=spec.bidirectional, **kwargs)
    lstm.load_state_dict({k: torch.tensor(v) for k, v in convert(model, "numpy", "torch", spec).items()})
    return lstm


def keras_model(model, **lstm_kwargs):
    """A Sequential: Input, the LSTM layers (Bidirectional when the spec is), a Dense head."""
    import keras

    spec = model.spec

    def lstm(k):
        layer = keras.layers.LSTM(spec.hidden_size, return_sequences=True, **lstm_kwargs)
        return keras.layers.Bidirectional(layer) if spec.bidirectional else layer

    stack = [lstm(k) for k in range(spec.num_layers)]
    seq = keras.Sequential([keras.Input((None, spec.input_size)), *stack, keras.layers.Dense(2)])
    for layer, weights in zip(stack, convert(model, "numpy", "keras", spec)):
        layer.set_weights(weights)
    return seq


@pytest.fixture(scope="module")
def torch_encoder(model):
    needs("torch")
    import torch

    class Encoder(torch.nn.Module):  # a user's module holding the LSTM
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Linear(3, 3)
            self.lstm = torch_lstm(model)

    return Encoder()


@pytest.fixture(scope="module")
def keras_seq(model):
    needs("keras")
    return keras_model(model)


def test_torch_keras(torch_encoder, keras_seq):
    result = assert_equivalent(torch_encoder, keras_seq)
    assert result.ok and result.dtype == "float32" and result.a_vs_b <= 1
    assert "torch.nn.LSTM 'lstm'" in result.a and "keras Sequential" in result.b
    assert result.b_vs_oracle.worst.max_abs > 0  # Keras really ran (float32), it did not echo the oracle


def test_torch_flax():
    """One nn.RNN (a JAX compile per program: the smallest one that shows the pair)."""
    needs("flax", "torch")
    import flax.linen as nn

    one = CanonicalLSTM.random(LSTMSpec(input_size=3, hidden_size=4), seed=4).rounded("float32")
    variables = convert(one, "numpy", "flax", one.spec)
    assert assert_equivalent(torch_lstm(one), (nn.RNN(nn.LSTMCell(4)), variables)).ok


def test_keras_onnx(keras_seq, model, tmp_path):
    needs("onnx")
    import onnx

    path = tmp_path / "lstm.onnx"
    onnx.save(backends.get("onnx").export_model(model), str(path))
    assert assert_equivalent(keras_seq, path).ok  # a path to an ONNX file, run by onnxruntime


@pytest.mark.filterwarnings("ignore:.*(is deprecated|add_variable):UserWarning")
def test_tf1_torch():
    """A TF1 LSTMCell built by dynamic_rnn (forget_bias=1.0, TF1's default) against torch, which has no run-time
    forget_bias: equivalent when the port folds it into the bias, and not when it forgets to."""
    needs("tf1", "torch")
    import importlib

    import tensorflow as tf

    from harness.backends.tf1 import LEGACY_CELLS

    rc = importlib.import_module(LEGACY_CELLS)
    spec = LSTMSpec(input_size=3, hidden_size=4, bias="single", forget_bias=1.0)
    tf1_model = CanonicalLSTM.random(spec, seed=6).rounded("float32")
    cell = rc.LSTMCell(4, forget_bias=1.0)
    tf.compat.v1.nn.dynamic_rnn(cell, tf.zeros((1, 1, 3)), time_major=True, dtype=tf.float32)  # builds its variables
    for var in cell.variables:
        var.assign(convert(tf1_model, "numpy", "tf1", spec)[var.name.removesuffix(":0")])
    folded = tf1_model.fold_forget_bias()
    assert assert_equivalent(cell, torch_lstm(folded)).ok
    with pytest.raises(AssertionError, match="NOT close"):  # forget_bias not folded: torch's forget gate off by 1
        assert_equivalent(cell, torch_lstm(tf1_model.replace_spec(forget_bias=0.0)))


def test_reloaded_keras_model_against_canonical(keras_seq, model, tmp_path):
    import keras

    keras_seq.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    result = assert_equivalent(reloaded, model)
    assert result.ok and "as Keras builds them from the config" in result.a  # its layers return no states


def test_a_permuted_model_fails_naming_both_sides(torch_encoder, keras_seq, model):
    bad = torch_lstm(mistakes.get("gate-order-igfo").plant(model))  # TF1's gate order written into torch
    with pytest.raises(AssertionError) as failure:
        assert_equivalent(keras_seq, bad)
    text = str(failure.value)
    assert "b not within the bound of the float64 oracle on a's weights" in text
    assert "a: keras Sequential 'sequential" in text and "close" in text  # a, the faithful side, passes
    assert "b: torch.nn.LSTM (torch, float32" in text and "NOT close" in text
    for part in ("y[direction=forward] (shape (6, 3, 4), index (t, b, j))", "Mismatched elements: ",
                 "Greatest absolute difference: ", "Greatest relative difference: ", "(up to 2e-06 allowed)",
                 "h_n[layer=1, direction=backward]", "|actual - expected| <= 2e-06 + 2e-06 |expected|"):
        assert part in text, part
    with pytest.raises(AssertionError, match="b not within the bound"):  # the oracle runs on a's weights: with
        assert_equivalent(bad, torch_encoder)  # the mistake on a, the faithful b is the side that differs


def test_batch_first_inputs_and_a_batch_first_module(keras_seq, model):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 5, 3)).astype(np.float32)  # [B, T, in]
    assert assert_equivalent(torch_lstm(model, batch_first=True), keras_seq, x, batch_first=True).ok
    with pytest.raises(ValueError, match=r"x: expected last dimension input_size=3"):
        assert_equivalent(keras_seq, model, x[..., :2], batch_first=True)


def test_selecting_one_lstm_of_several(model):
    needs("torch")
    import torch

    other = CanonicalLSTM.random(SPEC, seed=9).rounded("float32")
    two = torch.nn.ModuleDict({"encoder": torch_lstm(model), "decoder": torch_lstm(other)})
    with pytest.raises(ValueError, match=r"b \(torch.nn.modules.container.ModuleDict\): holds 2 torch.nn.LSTMs, "
                                         r"\['decoder', 'encoder'\]: name one with select_b="):
        assert_equivalent(model, two)
    assert assert_equivalent(model, two, select_b="encoder").ok
    with pytest.raises(AssertionError):
        assert_equivalent(model, two, select_b="decoder")


@pytest.mark.filterwarnings("ignore:.*is deprecated:UserWarning")
def test_refused_by_name(model):
    needs("keras")
    import keras

    hard = keras.layers.LSTM(4, recurrent_activation="hard_sigmoid")
    hard.build((None, None, 3))
    with pytest.raises(UnsupportedFeature, match="recurrent_activation='hard_sigmoid'"):
        assert_equivalent(model, hard)
    if not backends.get("flax").installed():
        import flax.linen as nn
        import jax

        one = CanonicalLSTM.random(LSTMSpec(input_size=3, hidden_size=4))
        hard = nn.RNN(nn.LSTMCell(4, gate_fn=jax.nn.hard_sigmoid))
        with pytest.raises(UnsupportedFeature, match="LSTMCell has gate_fn=hard_sigmoid: the canonical LSTM's gates"):
            assert_equivalent(one, (hard, convert(one, "numpy", "flax", one.spec)))
    if not backends.get("tf1").installed():
        import importlib

        from harness.backends.tf1 import LEGACY_CELLS

        relu = importlib.import_module(LEGACY_CELLS).LSTMCell(4, activation="relu")
        with pytest.raises(UnsupportedFeature, match="LSTMCell has activation=relu: the canonical LSTM uses tanh"):
            assert_equivalent(model, (relu, {}))
    with pytest.raises(TypeError, match=r"b: expected a torch.nn.LSTM .* got builtins.dict"):
        assert_equivalent(model, {"weight_ih_l0": 1})
    with pytest.raises(ValueError, match="a and b are not the same shape of LSTM .*num_layers: a 2, b 1"):
        assert_equivalent(model, CanonicalLSTM.random(SPEC.replace(num_layers=1)))


def test_a_forward_function_and_the_bound(model):
    """b may be the user's own forward function (it holds no weights: a's are the oracle's); rtol/atol replace the
    table's bound, in both directions."""
    def port(x, h0, c0):
        return model.forward(x, h0, c0)

    def swapped_states(x, h0, c0):
        y, h_n, c_n = model.forward(x, h0, c0)
        return y, (c_n, h_n)  # torch's (y, (h, c)) form, with h and c swapped

    assert assert_equivalent(model, port).dtype == "float64"
    with pytest.raises(AssertionError, match=r"h_n\[layer=0, direction=forward\]"):
        assert_equivalent(model, swapped_states)

    def nudged(x, h0, c0):
        y, h_n, c_n = model.forward(x, h0, c0)
        return y + 1e-9, h_n, c_n

    with pytest.raises(AssertionError, match=rf"up to {tolerance_for('float64').atol:g} allowed"):
        assert_equivalent(model, nudged)
    assert assert_equivalent(model, nudged, atol=1e-8).tolerance.evidence == "given by the caller (rtol/atol)"
    with pytest.raises(TypeError, match="a: the oracle runs on a's weights, and a function holds none"):
        assert_equivalent(port, model)


def test_nnx_and_equinox():
    """A list of Equinox cells (the user's cells in the equinox backend's scan) against an nnx module (its own
    object, called with return_carry), both made from one canonical model."""
    needs("flax-nnx", "equinox")
    from flax import nnx

    from harness.backends.flax_nnx import build_model

    one = CanonicalLSTM.random(LSTMSpec(input_size=3, hidden_size=4), seed=4).rounded("float32")
    module = nnx.eval_shape(lambda: build_model(one.spec, "LSTMCell", False, "float32"))  # no random init run
    nnx.update(module, convert(one, "numpy", "flax-nnx", one.spec))
    cells = list(convert(one, "numpy", "equinox", one.spec))
    assert assert_equivalent(cells, module).ok
    with pytest.raises(ValueError, match=r"2 cells of input 4 and hidden 4 are either 2 layers or 1 bidirectional"):
        assert_equivalent(list(convert(CanonicalLSTM.random(LSTMSpec(input_size=4, hidden_size=4, num_layers=2)),
                                       "numpy", "equinox", LSTMSpec(input_size=4, hidden_size=4, num_layers=2))), one)


# Per-example lengths: each side runs a right-padded batch its own framework's way ------------------------------
LENGTHS = [5, 2, 4]  # unsorted: torch packs with enforce_sorted=False and must put the batch back


def ragged_x(spec: LSTMSpec) -> np.ndarray:
    """[T=5, B=3, in]: the padded steps hold random values like the rest, so a side running over them shows."""
    return np.random.default_rng(1).uniform(-1, 1, (5, 3, spec.input_size)).astype(np.float32)


def test_torch_keras_with_lengths(torch_encoder, keras_seq, model):
    """torch packs, Keras masks (Bidirectional zero-fills y at padded steps, as torch does)."""
    result = assert_equivalent(torch_encoder, keras_seq, ragged_x(SPEC), lengths=LENGTHS)
    assert result.ok and "per-example lengths [5, 2, 4]" in result.inputs
    assert result.a_vs_oracle.padding == result.b_vs_oracle.padding == "zeros"


def test_lengths_one_direction_zeros_against_carry():
    """A one-direction Keras LSTM carries its last valid output over the padded steps, torch writes zeros: each is
    held to its own convention, and y at padded steps is not compared between them."""
    needs("torch", "keras")
    one = CanonicalLSTM.random(LSTMSpec(input_size=3, hidden_size=4), seed=2).rounded("float32")
    result = assert_equivalent(torch_lstm(one), keras_model(one), ragged_x(one.spec), lengths=LENGTHS)
    assert (result.a_vs_oracle.padding, result.b_vs_oracle.padding) == ("zeros", "carry")
    assert result.ok and result.a_vs_b <= 1


def test_a_port_that_ignores_the_lengths_fails_on_the_final_states(model):
    """The classic porting bug: the padded batch run as if every sequence were full length. Only the first layer's
    forward direction is right at valid steps: the backward direction starts in the padding, the layer above reads
    it, and the final states come from the padding."""
    needs("torch")
    import torch

    lstm = torch_lstm(model)

    def unpacked(x, h0, c0, lengths=None):  # lengths taken, and not used
        with torch.no_grad():
            y, (h_n, c_n) = lstm(torch.from_numpy(x).float(), (torch.from_numpy(h0).float(),
                                                               torch.from_numpy(c0).float()))
        return y.numpy(), h_n.numpy(), c_n.numpy()

    assert assert_equivalent(lstm, unpacked, ragged_x(SPEC)).ok  # without lengths the two agree
    with pytest.raises(AssertionError, match=r"h_n\[layer=0, direction=forward\]") as failure:
        assert_equivalent(lstm, unpacked, ragged_x(SPEC), lengths=LENGTHS)
    text = str(failure.value)
    assert "unpacked (function; the function itself): NOT close" in text and "per-example lengths [5, 2, 4]" in text
    assert "32 values of y at padded steps not compared" in text  # the function's own convention: unknown


def test_flax_onnx_equinox_tf1_with_lengths(model, tmp_path):
    """Flax's seq_lengths (y at padded steps left undefined), ONNX's sequence_lens, the equinox scan's mask and TF1
    dynamic_rnn's sequence_length, each against torch's packing on one ragged batch (one layer, one direction:
    the smallest programs that show each path)."""
    needs("torch")
    one = CanonicalLSTM.random(LSTMSpec(input_size=3, hidden_size=4), seed=4).rounded("float32")
    x, ran = ragged_x(one.spec), 0
    if not backends.get("flax").installed():
        import flax.linen as nn

        result = assert_equivalent(torch_lstm(one), (nn.RNN(nn.LSTMCell(4)), convert(one, "numpy", "flax", one.spec)),
                                   x, lengths=LENGTHS)
        assert result.ok and result.b_vs_oracle.padding == "undefined"
        assert sum(p.excluded for p in result.b_vs_oracle.paths) == 3 * 4 + 1 * 4  # 3 + 1 padded steps x 4 units
        ran += 1
    if not backends.get("onnx").installed():
        path = tmp_path / "one.onnx"
        import onnx

        onnx.save(backends.get("onnx").export_model(one), str(path))
        assert assert_equivalent(torch_lstm(one), path, x, lengths=LENGTHS).ok
        ran += 1
    if not backends.get("equinox").installed():
        assert assert_equivalent(torch_lstm(one), list(convert(one, "numpy", "equinox", one.spec)), x,
                                 lengths=LENGTHS).ok
        ran += 1
    if not backends.get("tf1").installed():
        import importlib

        import tensorflow as tf

        from harness.backends.tf1 import LEGACY_CELLS

        cell = importlib.import_module(LEGACY_CELLS).LSTMCell(4, forget_bias=0.0)
        tf.compat.v1.nn.dynamic_rnn(cell, tf.zeros((1, 1, 3)), time_major=True, dtype=tf.float32)
        single = one.fold_biases()
        for var in cell.variables:
            var.assign(convert(single, "numpy", "tf1", single.spec)[var.name.removesuffix(":0")])
        assert assert_equivalent(torch_lstm(one), cell, x, lengths=LENGTHS).ok
        ran += 1
    if not ran:
        pytest.skip("not installed: none of flax, onnx, equinox, tf1")


def test_bad_lengths_are_named_and_a_side_that_cannot_run_them_is_refused(model):
    from harness import sides

    with pytest.raises(ValueError, match="lengths"):
        assert_equivalent(model, model, ragged_x(SPEC), lengths=[5, 2])  # one length short of the batch
    with pytest.raises(ValueError, match="lengths"):
        assert_equivalent(model, model, ragged_x(SPEC), lengths=[5, 6, 4])  # past T = 5
    result = assert_equivalent(model, model, lengths=[6, 1])  # random x: one example per length
    assert result.ok and "random x [6, 2, 3]" in result.inputs
    side = sides.read(model, name="b")
    side.no_lengths = "a reason of its own"
    with pytest.raises(UnsupportedFeature, match=r"lengths: b \(CanonicalLSTM .*\) cannot run per-example lengths "
                                                  r"here: a reason of its own"):
        assert_equivalent(model, side, ragged_x(SPEC), lengths=LENGTHS)
    assert assert_equivalent(model, side, ragged_x(SPEC)).ok  # without lengths it runs
