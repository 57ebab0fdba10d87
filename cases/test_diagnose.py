"""diagnose on live pairs (harness/diagnosis.py): for torch-keras and tf1-torch, every catalogue mistake that the
pair can carry is planted by the frameworks themselves (in the weights they hold, a Keras layer built with
hard_sigmoid gates or go_backwards, a TF1 cell built with another forget_bias) and must be named, on the side it
was planted, with the error after undoing it within the bound. The catalogue's mistakes that live objects cannot
carry (the states or outputs wired otherwise, x read batch-major: the harness runs every live object the right
way round; peepholes, which neither torch nor Keras has; Keras 2's hard_sigmoid, which no installed framework
computes) are caught and named framework-free in test_negative_controls.py. Plus `python -m harness diagnose`.

The faithful side of each pair is read and run once (its run is memoized); each planted side runs in its own
framework. Sizes: input = hidden = 3 (the [x, h] swap and the input kernel's block transposes keep their shapes),
x [4, 4, 3].
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from harness import CanonicalLSTM, LSTMSpec, convert, diagnose, files, mistakes, sides
from harness.__main__ import main
from installed import needs, one_torch_thread  # noqa: F401  (an autouse fixture)

SPEC = LSTMSpec(input_size=3, hidden_size=3)  # torch's two biases
TF1_SPEC = LSTMSpec(input_size=3, hidden_size=3, bias="single", forget_bias=1.0)  # TF1's default forget_bias



def in_weights(spec) -> list[str]:
    """The catalogue's mistakes a framework's weights can carry for `spec` (harmless ones apart)."""
    return [m.name for m in mistakes.CATALOGUE
            if m.where == "weights" and not m.harmless and m.expressible(spec, 4, 4) is None]


def once(side):
    """The side with its run memoized (diagnose's inputs are the same on every call)."""
    run, seen = side.run, {}

    def memo(x, h0, c0, **lengths):
        key = (x.tobytes(), h0.tobytes(), c0.tobytes(), *(v.tobytes() for v in lengths.values()))
        if key not in seen:
            seen[key] = run(x, h0, c0, **lengths)
        return seen[key]

    side.run = memo
    return side


def named(result, side: str, name: str) -> bool:
    return (side, name) in [(c.side, c.mistake.name) for c in result.explained] and \
        all(c.after.ok for c in result.explained)


def torch_lstm(model):
    import torch

    spec = model.spec
    lstm = torch.nn.LSTM(spec.input_size, spec.hidden_size, num_layers=spec.num_layers,
                         bidirectional=spec.bidirectional)
    lstm.load_state_dict({k: torch.tensor(v) for k, v in convert(model, "numpy", "torch", spec).items()})
    return lstm


def keras_layer(model, **kwargs):
    import keras

    spec = model.spec
    layer = keras.layers.LSTM(spec.hidden_size, return_sequences=True, return_state=True, **kwargs)
    if spec.bidirectional:
        layer = keras.layers.Bidirectional(layer)
    layer.build((None, None, spec.input_size))
    layer.set_weights(convert(model, "numpy", "keras", spec)[0])
    return layer


@pytest.fixture(scope="module")
def model():
    return CanonicalLSTM.random(SPEC, seed=7).rounded("float32")


@pytest.fixture(scope="module")
def keras_a(model):
    needs("keras", "torch")
    return once(sides.read(keras_layer(model), name="a"))


@pytest.fixture(scope="module")
def torch_a(model):
    needs("keras", "torch")
    return once(sides.read(torch_lstm(model), name="a"))


# torch-keras ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in in_weights(SPEC) if not n.startswith("bias-")])
def test_torch_keras_names_a_mistake_in_torchs_weights(name, keras_a, model):
    result = diagnose(keras_a, torch_lstm(mistakes.get(name).plant(model)))
    assert not result.agree and named(result, "b", name), str(result)


@pytest.mark.parametrize("name", [n for n in in_weights(SPEC) if n.startswith("bias-")])
def test_torch_keras_names_a_bias_mistake_in_keras(name, torch_a, model):
    """torch's two biases reach Keras summed: the bias family is planted in the Keras layer's one bias."""
    result = diagnose(torch_a, keras_layer(mistakes.get(name).plant(model)))
    assert not result.agree and named(result, "b", name), str(result)


def test_torch_keras_names_keras_gates_and_go_backwards(torch_a, model):
    hard = diagnose(torch_a, keras_layer(model, recurrent_activation="hard_sigmoid"))
    assert named(hard, "b", "gates-hard_sigmoid_keras3") and named(hard, "a", "gates-sigmoid"), str(hard)
    backwards = diagnose(torch_a, keras_layer(model, go_backwards=True))
    assert named(backwards, "b", "go-backwards"), str(backwards)
    assert "go_backwards=True: read with its weights" in str(backwards)


def test_torch_keras_names_swapped_directions():
    needs("keras", "torch")
    bidirectional = CanonicalLSTM.random(SPEC.replace(bidirectional=True), seed=8).rounded("float32")
    result = diagnose(torch_lstm(bidirectional), keras_layer(mistakes.get("directions-swapped").plant(bidirectional)))
    assert named(result, "b", "directions-swapped"), str(result)


def test_classes_agreement_and_no_single_mistake(torch_a, keras_a, model):
    doubled = diagnose(keras_a, torch_lstm(mistakes.get("bias-doubled").plant(model)))
    assert named(doubled, "b", "bias-doubled") and named(doubled, "a", "bias-halved")  # one class of two
    assert "a class of 2 that these inputs cannot tell apart" in str(doubled)
    permuted = diagnose(keras_a, torch_lstm(mistakes.get("gate-order-fogi").plant(model)))
    assert named(permuted, "b", "gate-order-fogi") and named(permuted, "a", "gate-order-oigf")  # the inverse
    swapped = diagnose(torch_a, torch_lstm(mistakes.get("bias-slots-swapped").plant(model)))
    assert swapped.agree and "bias-slots-swapped" in swapped.invisible
    assert "these inputs could not show (each changes nothing here): " in str(swapped)
    both = mistakes.get("gate-order-igfo").plant(mistakes.get("bias-doubled").plant(model))
    two = diagnose(keras_a, torch_lstm(both))
    assert not two.explained and len(two.closest) == 3 and not any(c.after.ok for c in two.closest)
    assert "no single mistake in the catalogue explains it; the closest:" in str(two)


# tf1-torch ------------------------------------------------------------------------------------------
def _tf1_cell(forget_bias: float, model):
    import tensorflow as tf

    from harness.backends.tf1 import LEGACY_CELLS, _quiet

    rc = importlib.import_module(LEGACY_CELLS)
    with _quiet():
        cell = rc.LSTMCell(model.spec.hidden_size, forget_bias=forget_bias)
        tf.compat.v1.nn.dynamic_rnn(cell, tf.zeros((1, 1, 3)), time_major=True, dtype=tf.float32)
    native = convert(model, "numpy", "tf1", model.spec)
    for var in cell.variables:
        var.assign(native[var.name.removesuffix(":0")])
    return cell


@pytest.fixture(scope="module")
def tf1_model():
    return CanonicalLSTM.random(TF1_SPEC, seed=9).rounded("float32")


@pytest.fixture(scope="module")
def tf1_a(tf1_model):
    needs("tf1", "torch")
    return once(sides.read(_tf1_cell(1.0, tf1_model), name="a"))


@pytest.mark.parametrize("name", in_weights(TF1_SPEC))
def test_tf1_torch_names_a_mistake_in_torchs_weights(name, tf1_a, tf1_model):
    """The port folds TF1's forget_bias into torch's bias (as convert does), with the mistake planted."""
    result = diagnose(tf1_a, torch_lstm(mistakes.get(name).plant(tf1_model)))
    assert not result.agree and named(result, "b", name), str(result)


def test_tf1_torch_names_a_mistake_on_the_tf1_side(tf1_model):
    """A TF1 cell built with forget_bias=0 where the trained model had 1.0, and a bidirectional TF1 checkpoint
    whose fw and bw were swapped, both against the faithful torch port."""
    needs("tf1", "torch")
    from harness.backends.tf1 import LEGACY_CELLS

    torch_b = torch_lstm(tf1_model)
    result = diagnose(_tf1_cell(0.0, tf1_model), torch_b)
    assert named(result, "a", "forget-bias-minus-1") and named(result, "b", "forget-bias-plus-1"), str(result)
    rc = importlib.import_module(LEGACY_CELLS)
    both = CanonicalLSTM.random(TF1_SPEC.replace(bidirectional=True), seed=10).rounded("float32")
    variables = convert(mistakes.get("directions-swapped").plant(both), "numpy", "tf1", both.spec)
    result = diagnose((rc.LSTMCell(3, forget_bias=1.0), dict(variables)), torch_lstm(both))
    assert named(result, "a", "directions-swapped"), str(result)


# Per-example lengths --------------------------------------------------------------------------------
LENGTHS = [4, 2, 3, 1]  # x [4, 4, 3]: every example but the first padded


def _ragged_torch_port(lstm, mistake: str):
    """fn(x, h0, c0, lengths): the torch LSTM, run by a port that misuses the lengths as `mistake` says, written in
    torch's own terms (packing or not), not with harness.mistakes; it zeroes y at padded steps itself, so what a
    misuse leaves there is not what the catalogue's prediction computes (diagnose must not compare it)."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    def port(x, h0, c0, lengths):
        t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        with torch.no_grad():
            packed = pack_padded_sequence(t(x), torch.as_tensor(lengths), enforce_sorted=False)
            y, _ = pad_packed_sequence(lstm(packed, (t(h0), t(c0)))[0], total_length=x.shape[0])
            _, (h, c) = lstm(packed, (t(h0), t(c0)))
            y_all, (h_all, c_all) = lstm(t(x), (t(h0), t(c0)))  # every sequence to T: the padding as data
        if mistake == "padding-processed-as-data":
            y, h, c = y_all, h_all, c_all
        elif mistake == "backward-starts-at-T-1":  # the backward half from the run over the whole padded batch
            H = lstm.hidden_size
            y, h, c = y.clone(), h.clone(), c.clone()
            y[..., H:], h[1::2], c[1::2] = y_all[..., H:], h_all[1::2], c_all[1::2]
        elif mistake == "final-state-at-T-1":
            h, c = h_all, c_all
        valid = torch.arange(x.shape[0])[:, None, None] < torch.as_tensor(lengths)[None, :, None]
        return (y * valid).numpy(), h.numpy(), c.numpy()  # y zero at padded steps, as a port that masks it
    return port


@pytest.mark.parametrize("mistake", [m.name for m in mistakes.CATALOGUE if m.family == "lengths"])
def test_torch_names_each_misuse_of_lengths(mistake):
    """A bidirectional torch LSTM run packed, against a port of it that misuses the lengths: each misuse is named,
    on the port, and no other (on a bidirectional LSTM the three differ at valid steps)."""
    needs("torch")
    model = CanonicalLSTM.random(SPEC.replace(bidirectional=True), seed=8).rounded("float32")
    lstm = torch_lstm(model)
    result = diagnose(lstm, _ragged_torch_port(lstm, mistake), lengths=LENGTHS)
    assert named(result, "b", mistake) and len(result.explained) == 1, str(result)
    assert "per-example lengths [4, 2, 3, 1]" in result.inputs


def test_keras_torch_with_lengths_agree_and_name_a_weight_mistake(torch_a, keras_a, model):
    """Keras masks (a one-direction layer carries its last output on at padded steps), torch packs (zeros there):
    each side is held to its own convention, so the pair agrees, and a mistake in the weights is still named."""
    same = diagnose(torch_a, keras_a, lengths=LENGTHS)
    assert same.agree, str(same)
    result = diagnose(torch_a, keras_layer(mistakes.get("gate-order-igfo").plant(model)), lengths=LENGTHS)
    assert named(result, "b", "gate-order-igfo"), str(result)
    backwards = diagnose(torch_a, keras_layer(model, go_backwards=True), lengths=LENGTHS)
    assert not backwards.agree and "go-backwards" in backwards.not_searched, str(backwards)


# python -m harness diagnose -------------------------------------------------------------------------
def test_cli(tmp_path, tf1_model, capsys):
    needs("tf1", "torch")
    files.write("tf1", tf1_model, tmp_path / "tf1.ckpt", "float32")
    files.write("torch", tf1_model, tmp_path / "good.safetensors", "float32")
    files.write("torch", mistakes.get("kernel-x-h-swapped").plant(tf1_model), tmp_path / "bad.safetensors", "float32")
    tf1_spec = '{"forget_bias": 1.0, "cell_clip": null, "proj_clip": null}'

    def run(b, *extra):
        code = main(["diagnose", str(tmp_path / "tf1.ckpt"), str(tmp_path / b), "--a-from", "tf1", "--b-from", "torch",
                     *extra])
        return code, capsys.readouterr()

    code, out = run("good.safetensors", "--a-spec", tf1_spec)
    assert code == 0 and "a and b agree" in out.out
    code, out = run("bad.safetensors", "--a-spec", tf1_spec)
    assert code == 3 and "b: kernel-x-h-swapped: the [x, h] halves of a concatenated kernel swapped" in out.out
    assert "before: b against the oracle on a's weights: 3 of 3 output parts outside the bound" in out.out
    with pytest.raises(SystemExit) as exit_:
        run("bad.safetensors")
    assert exit_.value.code == 2
    assert "python -m harness diagnose: error: --a-from tf1 needs forget_bias, cell_clip, proj_clip in --a-spec" \
        in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run("bad.safetensors", "--a-spec", "{not json")
    assert "--a-spec: not valid JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run("bad.safetensors", "--a-spec", tf1_spec, "--atol", "-1")
    assert "python -m harness diagnose: error: --atol: expected a number >= 0, got -1.0" in capsys.readouterr().err


def test_cli_with_lengths(tmp_path, model, capsys):
    """--lengths: a Keras file (masked: a one-direction layer carries its last output on) against torch files
    (packed), each run its framework's way; a bad --lengths is a usage error naming it."""
    needs("keras", "torch")
    import keras

    inputs = keras.Input((None, SPEC.input_size))
    keras.Model(inputs, keras_layer(model)(inputs)).save(tmp_path / "model.keras")  # as a user saves one
    files.write("torch", model, tmp_path / "good.safetensors", "float32")
    files.write("torch", mistakes.get("gate-order-ifog").plant(model), tmp_path / "bad.safetensors", "float32")

    def run(b, *extra):
        code = main(["diagnose", str(tmp_path / "model.keras"), str(tmp_path / b), "--a-from", "keras",
                     "--b-from", "torch", *extra])
        return code, capsys.readouterr()

    code, out = run("good.safetensors", "--lengths", "4, 2,3,1")
    assert code == 0 and "a and b agree" in out.out and "per-example lengths [4, 2, 3, 1]" in out.out, out
    code, out = run("bad.safetensors", "--lengths", "4,2,3,1")
    assert code == 3 and "b: gate-order-ifog: the gate blocks in order i, f, o, g" in out.out, out.out
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((5, 2, 3)))
    for lengths, error in (("4,two", ("--lengths: expected whole numbers separated by commas (e.g. 4,2,3), got "
                                      "'4,two'")),
                           ("4,2,3", "--lengths: expected shape (2,), one length per batch element of x, got (3,)"),
                           ("4,0", ("--lengths: expected each length in 1..5 (right padding: the valid steps come "
                                    "first), got 0 at index 1"))):
        with pytest.raises(SystemExit) as exit_:
            run("good.safetensors", "--inputs", str(x), "--lengths", lengths)
        assert exit_.value.code == 2 and f"python -m harness diagnose: error: {error}" in capsys.readouterr().err


def test_cli_takes_lengths_from_the_inputs_file(tmp_path, capsys):
    """An --inputs .npz holding lengths beside x runs as --lengths does (canonical files: the oracle, no framework);
    lengths given both ways, or stored as floats or out of range, are a usage error naming the file or option."""
    model = CanonicalLSTM.random(SPEC.replace(bidirectional=True), seed=2)
    model.save(tmp_path / "a.npz")
    mistakes.get("gate-order-ifog").plant(model).save(tmp_path / "b.npz")
    x = np.random.default_rng(0).uniform(-1, 1, (5, 2, SPEC.input_size))
    np.save(tmp_path / "x.npy", x)
    for name, lengths in (("batch", [5, 2]), ("floats", [5.0, 2.0]), ("long", [6, 2])):
        np.savez(tmp_path / f"{name}.npz", x=x, lengths=np.array(lengths))

    def run(*extra):
        code = main(["diagnose", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--a-from", "numpy", "--b-from",
                     "numpy", *map(str, extra)])
        return code, capsys.readouterr().out

    stored = run("--inputs", tmp_path / "batch.npz")
    assert stored == run("--inputs", tmp_path / "x.npy", "--lengths", "5,2")
    assert stored[0] == 3 and "per-example lengths [5, 2]" in stored[1] and "b: gate-order-ifog" in stored[1]
    assert run("--inputs", tmp_path / "x.npy")[1] != stored[1]  # the lengths changed the run
    for extra, error in (((tmp_path / "batch.npz", "--lengths", "5,2"),
                          f"--lengths: {tmp_path / 'batch.npz'} holds lengths too ([5, 2]); give them once"),
                         ((tmp_path / "floats.npz",), f"--inputs: lengths in {tmp_path / 'floats.npz'}: expected "
                                                      "integers (one step count per batch element), got dtype float64"),
                         ((tmp_path / "long.npz",), f"--inputs: lengths in {tmp_path / 'long.npz'}: expected each "
                                                    "length in 1..5 (right padding: the valid steps come first), got 6")):
        with pytest.raises(SystemExit) as exit_:
            run("--inputs", *extra)
        assert exit_.value.code == 2 and f"python -m harness diagnose: error: {error}" in capsys.readouterr().err


def test_cli_keeps_framework_chatter_off_the_terminal(tmp_path, capfd, monkeypatch):
    """What a framework writes to fd 2 while it loads is filtered out, as in `run`; an error line still shows."""
    import harness.diagnosis

    search = harness.diagnosis.diagnose

    def chatty(*args, **kwargs):
        import os

        os.write(2, b"I0000 00:00:1796036014.859010    3838 port.cc:153] oneDNN custom operations are on.\n"
                    b"E0000 00:00:1796036014.859010    3838 util.cc:131] a real error\n")
        return search(*args, **kwargs)

    monkeypatch.setattr(harness.diagnosis, "diagnose", chatty)
    model = CanonicalLSTM.random(SPEC, seed=2)
    model.save(tmp_path / "a.npz")
    assert main(["diagnose", str(tmp_path / "a.npz"), str(tmp_path / "a.npz"), "--a-from", "numpy",
                 "--b-from", "numpy"]) == 0
    err = capfd.readouterr().err
    assert "oneDNN" not in err and "a real error" in err

