"""Porting from the files users have (harness/readers, harness/port_check.py): every format is written by its
real framework or serializer, converted without --spec, and OUT is run by the target framework itself.

Each file is built once per module (Keras models are slow to build: two models serve every Keras form),
at tiny sizes. Pickle safety is shown with a marker file: an object whose reduce would create it sits in
every format that could carry one, and the file must still not exist after reading (and --check).
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness import LSTMSpec, backends
from harness.__main__ import main
from harness.cli.convert import DISAGREE, OK, UNSUPPORTED, USAGE
from harness.compare import tolerance_for
from installed import needs

TOL = tolerance_for("float32")


def convert(*argv) -> int:
    return main(["convert", *map(str, argv)])


def x_of(batch=3, steps=6, features=5, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (batch, steps, features)).astype(np.float32)


class Marker:
    """Unpickling this creates `path`: the proof that a reader ran a pickle's code."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def assert_agrees(out: str, sides=("SRC", "OUT")):
    assert "check: agree" in out, out
    for side in sides:
        line = next(line for line in out.splitlines() if line.lstrip().startswith(("[1] " + side, "[2] " + side)))
        assert "skipped" not in line and "error" not in line, line


# Fixtures: the files, each written once ---------------------------------------------------------------
@pytest.fixture(scope="module")
def torch_lstm():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True)


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """Two Keras models, each saved in every form a Keras user has."""
    needs("keras")
    import keras

    folder = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    seq = keras.Sequential([keras.Input((None, 5)),
                            keras.layers.LSTM(7, return_sequences=True, bias_initializer="random_normal"),
                            keras.layers.Dropout(0.1),
                            keras.layers.LSTM(7, bias_initializer="random_normal"),  # returns its last step only
                            keras.layers.Dense(3)])
    inp = keras.Input((None, 5))
    h = keras.layers.Bidirectional(keras.layers.LSTM(6, return_sequences=True, bias_initializer="random_normal"))(inp)
    h = keras.layers.Bidirectional(keras.layers.LSTM(6, return_sequences=True, bias_initializer="random_normal"))(h)
    fun = keras.Model(inp, keras.layers.Dense(2)(h))
    files = {"seq": seq, "fun": fun}
    for name, model in (("seq", seq), ("fun", fun)):
        model.save(folder / f"{name}.keras")
        files[f"{name}.keras"] = folder / f"{name}.keras"
    seq.save(folder / "seq.h5")  # Keras 3's legacy HDF5 writer
    seq.save_weights(folder / "seq.weights.h5")
    reloaded = keras.saving.load_model(folder / "fun.keras")  # paths lose the Bidirectional scope
    np.savez(folder / "reloaded.npz", **{v.path: v.numpy() for v in reloaded.weights})
    # Keras numbers its default names per process: what this process called them
    files["seq lstms"] = ",".join(layer.name for layer in seq.layers if isinstance(layer, keras.layers.LSTM))
    files["reloaded lstms"] = ",".join(layer.forward_layer.name.removeprefix("forward_") for layer in reloaded.layers
                                       if isinstance(layer, keras.layers.Bidirectional))
    files.update({"seq.h5": folder / "seq.h5", "seq.weights.h5": folder / "seq.weights.h5",
                  "reloaded.npz": folder / "reloaded.npz", "folder": folder})
    return files


def run_keras_lstms(model, count: int, x: np.ndarray) -> np.ndarray:
    """The Keras model's first `count` layers after its input: the LSTM part, run by Keras."""
    import keras

    return np.asarray(keras.Sequential(model.layers[:count])(x))


# torch.save files ---------------------------------------------------------------------------------
def test_pt_checkpoint_to_keras_in_one_command(torch_lstm, tmp_path, capsys):
    """The README's port: a training checkpoint holding a state_dict -> Keras, no --spec, checked in both."""
    needs("keras")
    import keras
    import torch

    optimizer = torch.optim.Adam(torch_lstm.parameters())
    src = tmp_path / "checkpoint.pt"
    torch.save({"model": {f"encoder.lstm.{k}": v for k, v in torch_lstm.state_dict().items()},
                "optimizer": optimizer.state_dict(), "epoch": 3}, src)
    assert convert(src, "--from", "torch", "--to", "keras", "-o", tmp_path / "k.npz", "--check") == OK
    out = capsys.readouterr().out
    assert '{"input_size": 5, "hidden_size": 7, "num_layers": 2, "bidirectional": true}' in out
    assert "torch.nn.LSTM.load_state_dict(strict=True)" in out and "set_weights" in out
    assert_agrees(out)
    with np.load(tmp_path / "k.npz", allow_pickle=False) as f:  # Keras's own layers, set from OUT
        weights = [[f[f"layer{k}.{i}"] for i in range(6)] for k in range(2)]
    x = x_of()
    seq = x
    for k in range(2):
        layer = keras.layers.Bidirectional(keras.layers.LSTM(7, return_sequences=True))
        layer.build((None, None, seq.shape[-1]))
        layer.set_weights(weights[k])
        seq = layer(seq)
    with torch.inference_mode():
        expected = torch_lstm(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(np.asarray(seq), expected, rtol=TOL.rtol, atol=TOL.atol)


def test_lightning_checkpoint_picks_the_lstm_and_select_names_one_of_two(torch_lstm, tmp_path, capsys):
    import torch

    state = torch_lstm.state_dict()
    src = tmp_path / "epoch=3.ckpt"
    torch.save({"state_dict": {**{f"model.lstm.{k}": v for k, v in state.items()},
                               **{f"ema.lstm.{k}": v.clone() for k, v in state.items()}},
                "hyper_parameters": {"lr": 0.1}, "epoch": 3}, src)
    assert convert(src, "--from", "torch", "--to", "numpy", "-o", tmp_path / "c.npz") == USAGE
    err = capsys.readouterr().err
    assert "2 torch.nn.LSTM" in err and "--select state_dict.ema.lstm" in err
    assert convert(src, "--from", "torch", "--select", "state_dict.model.lstm", "--to", "torch",
                   "-o", tmp_path / "t.safetensors", "--check") == OK
    assert_agrees(capsys.readouterr().out)


def test_torch_pickles_that_would_run_code_never_run(torch_lstm, tmp_path, capsys):
    import torch

    marker = tmp_path / "ran"
    torch.save({"model": torch_lstm.state_dict(), "hook": Marker(marker)}, tmp_path / "evil.pt")
    with open(tmp_path / "plain.pth", "wb") as fh:  # a bare pickle (no torch zip around it)
        pickle.dump({"weight_ih_l0": Marker(marker)}, fh)
    for name in ("evil.pt", "plain.pth"):
        assert convert(tmp_path / name, "--from", "torch", "--to", "keras", "-o", tmp_path / "k.npz") == USAGE
        err = capsys.readouterr().err
        assert "weights-only loader refuses" in err or "refused by torch's weights-only loader" in err, err
        assert "nothing in it ran" in err and "torch.save(model.state_dict()" in err
        assert "weights_only=False" not in err and "add_safe_globals" not in err  # torch's unsafe advice
    assert not marker.exists() and not (tmp_path / "k.npz").exists()


def test_torchscript_archive_is_named_with_its_fix(torch_lstm, tmp_path, capsys):
    import torch

    torch.jit.save(torch.jit.script(torch.nn.LSTM(5, 7)), tmp_path / "scripted.pt")
    assert convert(tmp_path / "scripted.pt", "--from", "torch", "--to", "keras", "-o", tmp_path / "k.npz") == USAGE
    err = capsys.readouterr().err
    assert "TorchScript archive" in err and "torch.jit.load('scripted.pt')" in err and "weights_only" not in err


def test_old_torch_is_refused(tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    (tmp_path / "m.pt").write_bytes(b"never read")
    assert convert(tmp_path / "m.pt", "--from", "torch", "--to", "keras", "-o", tmp_path / "k.npz") == UNSUPPORTED
    assert "needs torch >= 2.6" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".joblib"])
def test_plain_pickles_stay_refused(tmp_path, capsys, suffix):
    marker = tmp_path / "ran"
    with open(tmp_path / f"m{suffix}", "wb") as fh:
        pickle.dump(Marker(marker), fh)
    assert convert(tmp_path / f"m{suffix}", "--from", "torch", "--to", "keras", "-o", tmp_path / "k.npz") == USAGE
    assert "never reads one" in capsys.readouterr().err and not marker.exists()


def test_npz_object_arrays_and_msgpack_extensions_never_unpickle(tmp_path, capsys):
    marker = tmp_path / "ran"
    np.savez(tmp_path / "sd.npz", weight_ih_l0=np.array([Marker(marker)], dtype=object))  # pickled inside
    assert convert(tmp_path / "sd.npz", "--from", "torch", "--to", "keras", "-o", tmp_path / "k.npz") == USAGE
    assert "could not be read" in capsys.readouterr().err
    msgpack = pytest.importorskip("msgpack")
    needs("flax")
    payload = msgpack.packb([[1], b"O", pickle.dumps(Marker(marker))])  # flax's ndarray extension, dtype object
    (tmp_path / "p.msgpack").write_bytes(msgpack.packb({"params": {"cell": {"hi": {"kernel": msgpack.ExtType(1, payload)}}}}))
    assert convert(tmp_path / "p.msgpack", "--from", "flax", "--to", "torch", "-o", tmp_path / "t.safetensors") == USAGE
    assert "could not be read as a flax.serialization msgpack file" in capsys.readouterr().err
    assert not marker.exists()


def test_spec_fields_the_file_holds_must_match(torch_lstm, tmp_path, capsys):
    from safetensors.torch import save_file

    save_file(torch_lstm.state_dict(), str(tmp_path / "t.safetensors"))
    assert convert(tmp_path / "t.safetensors", "--from", "torch", "--spec", '{"hidden_size": 8}', "--to", "keras",
                   "-o", tmp_path / "k.npz") == USAGE
    err = capsys.readouterr().err
    assert "--spec: hidden_size=8, but SRC holds hidden_size=7 (weight_ih_l0 is [28, 5])" in err
    assert convert(tmp_path / "t.safetensors", "--from", "torch", "--spec", '{"bidirectional": true}', "--to", "keras",
                   "-o", tmp_path / "k.npz") == OK  # agreeing is fine


def test_what_the_file_lacks_is_asked_for_by_option(tmp_path, capsys):
    needs("equinox")
    (tmp_path / "cells.eqx").write_bytes(b"")
    assert convert(tmp_path / "cells.eqx", "--from", "equinox", "--to", "torch", "-o", tmp_path / "t.safetensors") == USAGE
    assert "--from equinox needs --spec with input_size, hidden_size" in capsys.readouterr().err


# Keras files --------------------------------------------------------------------------------------
def _state(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def test_keras_archive_sequential_stack_to_torch(keras_files, tmp_path, capsys):
    """A stacked Sequential (Dropout between, the last LSTM returning its last step only), read from config.json,
    then torch.nn.LSTM loaded from OUT agrees with the Keras model's own LSTM layers."""
    import torch

    assert convert(keras_files["seq.keras"], "--from", "keras", "--to", "torch", "-o", tmp_path / "t.safetensors") == OK
    out = capsys.readouterr().out
    assert '{"input_size": 5, "hidden_size": 7, "num_layers": 2, "bias": "single"}' in out
    assert "unit_forget_bias=True only initialises the forget bias: ignored" in out
    assert "return_sequences=False returns only the last step" in out and "makes a mask" not in out
    lstm = torch.nn.LSTM(5, 7, num_layers=2, batch_first=True)
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in _state(tmp_path / "t.safetensors").items()}, strict=True)
    x = x_of()
    with torch.inference_mode():
        y = lstm(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(y[:, -1], run_keras_lstms(keras_files["seq"], 3, x), rtol=TOL.rtol, atol=TOL.atol)


@pytest.mark.parametrize("masking", ["Embedding", "Masking"])
def test_a_mask_before_the_lstm_is_said(masking, tmp_path, capsys):
    """Embedding(mask_zero=True) or Masking before the stack (through a Dropout): Keras skips masked steps per
    example, which the converted LSTM does only when given the lengths; the conversion says so, naming both."""
    needs("keras")
    import keras

    first = (keras.layers.Embedding(20, 5, mask_zero=True) if masking == "Embedding" else
             keras.layers.Masking(mask_value=0.0))
    model = keras.Sequential([keras.Input((None,) if masking == "Embedding" else (None, 5)), first,
                              keras.layers.Dropout(0.1), keras.layers.LSTM(7, return_sequences=True),
                              keras.layers.LSTM(7, return_sequences=True)])
    model.save(tmp_path / "m.keras")
    assert convert(tmp_path / "m.keras", "--from", "keras", "--to", "torch", "-o", tmp_path / "t.safetensors") == OK
    out = capsys.readouterr().out
    [note] = [line for line in out.splitlines() if "makes a mask" in line]  # once, for the stack's first layer
    lstm, made = model.layers[2].name, model.layers[0].name
    assert f"Keras layer {lstm!r}: layer {made!r} before it makes a mask" in note
    assert ("Embedding(mask_zero=True)" if masking == "Embedding" else "Masking(mask_value=0.0)") in note
    assert "give it the per-example lengths" in note


def test_keras_functional_bidirectional_checked_in_keras_and_torch(keras_files, tmp_path, capsys):
    needs("torch")
    assert convert(keras_files["fun.keras"], "--from", "keras", "--to", "torch", "-o", tmp_path / "t.safetensors",
                   "--check") == OK
    out = capsys.readouterr().out
    assert '"hidden_size": 6, "num_layers": 2, "bidirectional": true, "bias": "single"' in out
    assert "the LSTM layers of keras.saving.load_model(safe_mode=True)" in out
    assert_agrees(out)


def _same_out(tmp_path, reference: Path, *argv) -> None:
    """Converting argv's SRC to torch gives exactly the tensors `reference` (from the .keras archive) holds."""
    assert convert(*argv, "--to", "torch", "-o", tmp_path / "same.safetensors") == OK
    expected, got = _state(reference), _state(tmp_path / "same.safetensors")
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.fixture(scope="module")
def from_archives(keras_files, tmp_path_factory):
    """Each .keras archive converted to torch: what every other form of the same model must give, bit for bit."""
    needs("torch")
    folder = tmp_path_factory.mktemp("archives")
    for name in ("seq", "fun"):
        assert convert(keras_files[f"{name}.keras"], "--from", "keras", "--to", "torch",
                       "-o", folder / f"{name}.safetensors") == OK
    return folder


def test_keras_legacy_h5_and_weights_h5_hold_the_same_lstm(keras_files, from_archives, tmp_path, capsys):
    _same_out(tmp_path, from_archives / "seq.safetensors", keras_files["seq.h5"], "--from", "keras")
    assert "(legacy Keras .h5 model)" in capsys.readouterr().out
    src = keras_files["seq.weights.h5"]
    assert convert(src, "--from", "keras", "--to", "torch", "-o", tmp_path / "t.safetensors") == USAGE
    assert f"--select {keras_files['seq lstms']}" in capsys.readouterr().err  # no config: which layers is asked
    _same_out(tmp_path, from_archives / "seq.safetensors", src, "--from", "keras", "--select", keras_files["seq lstms"])
    assert "holds no Keras config" in capsys.readouterr().out


def _keras2_h5(path: Path, model, recurrent_activation: str) -> Path:
    """The Sequential model as tf.keras 2.x's model.save('m.h5') lays it out: a Keras 2 model_config, byte-string
    attributes and 'lstm/lstm_cell/kernel:0' weight names (written with h5py: no Keras 2 in this environment)."""
    import h5py

    layers = [{"class_name": "InputLayer", "config": {"batch_input_shape": [None, None, 5], "name": "input_1"}}]
    for layer in model.layers:
        config = {"name": layer.name}
        if layer.__class__.__name__ == "LSTM":
            config.update(units=layer.units, activation="tanh", recurrent_activation=recurrent_activation,
                          use_bias=True, return_sequences=layer.return_sequences, go_backwards=False,
                          stateful=False, time_major=False, unit_forget_bias=True, implementation=2)
        layers.append({"class_name": layer.__class__.__name__, "config": config})
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"], f.attrs["backend"] = b"2.4.0", b"tensorflow"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"name": "sequential",
                                                                                      "layers": layers}}).encode()
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        for layer in model.layers:
            group = weights.create_group(layer.name)
            kinds = ["kernel", "recurrent_kernel", "bias"] if layer.weights and len(layer.weights) == 3 else \
                ["kernel", "bias"][: len(layer.weights)]
            scope = "lstm_cell/" if len(kinds) == 3 else ""
            names = [f"{layer.name}/{scope}{kind}:0" for kind in kinds]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name, data=value)
    return path


def test_keras2_legacy_h5_layout(keras_files, from_archives, tmp_path, capsys):
    _same_out(tmp_path, from_archives / "seq.safetensors",
              _keras2_h5(tmp_path / "keras2.h5", keras_files["seq"], "sigmoid"), "--from", "keras")
    old = _keras2_h5(tmp_path / "old.h5", keras_files["seq"], "hard_sigmoid")  # Keras 2.0-2.2's default
    assert convert(old, "--from", "keras", "--to", "torch", "-o", tmp_path / "t.safetensors") == UNSUPPORTED
    assert "recurrent_activation='hard_sigmoid'" in capsys.readouterr().err


def test_tf1_savedmodel_variables(tmp_path, capsys):
    """A SavedModel written by TF1 code (simple_save of a session around dynamic_rnn over LSTMCell): its variables
    are a TF1 checkpoint; the converted torch.nn.LSTM agrees with what the TF1 graph computed."""
    needs("tf1", "torch")
    import importlib

    import tensorflow as tf
    import torch
    from safetensors.torch import load_file

    from harness.backends.tf1 import LEGACY_CELLS, _quiet

    cells = importlib.import_module(LEGACY_CELLS)
    x = x_of().transpose(1, 0, 2)  # [T, B, in]
    with _quiet(), tf.Graph().as_default(), tf.compat.v1.Session() as session:
        inputs = tf.compat.v1.placeholder(tf.float32, [None, None, 5])
        y, _ = tf.compat.v1.nn.dynamic_rnn(cells.LSTMCell(7, forget_bias=1.0), inputs, dtype=tf.float32,
                                           time_major=True)
        session.run(tf.compat.v1.global_variables_initializer())
        expected = session.run(y, {inputs: x})
        tf.compat.v1.saved_model.simple_save(session, str(tmp_path / "saved"), {"x": inputs}, {"y": y})
    assert convert(tmp_path / "saved", "--from", "tf1", "--to", "torch", "-o", tmp_path / "t.safetensors") == USAGE
    assert "--forget-bias, --cell-clip, --proj-clip" in capsys.readouterr().err
    assert convert(tmp_path / "saved", "--from", "tf1", "--forget-bias", "1", "--cell-clip", "none", "--proj-clip",
                   "none", "--to", "torch", "-o", tmp_path / "t.safetensors") == OK
    assert "(SavedModel's variables)" in capsys.readouterr().out
    lstm = torch.nn.LSTM(5, 7)
    lstm.load_state_dict(load_file(str(tmp_path / "t.safetensors")), strict=True)
    with torch.inference_mode():
        actual = lstm(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(actual, expected, rtol=TOL.rtol, atol=TOL.atol)


def test_keras_model_reloaded_with_load_model(keras_files, from_archives, tmp_path, capsys):
    """{v.path: v.numpy()} of a reloaded model: the Bidirectional halves lost their scope, and still pair up."""
    from harness.backends.keras import layers_from_paths

    with np.load(keras_files["reloaded.npz"]) as f:
        paths = {k: f[k] for k in f.files}
    names = keras_files["reloaded lstms"]
    assert {name: layer.bidirectional for name, layer in layers_from_paths(paths).items()} == \
        {name: True for name in names.split(",")}
    _same_out(tmp_path, from_archives / "fun.safetensors", keras_files["reloaded.npz"], "--from", "keras",
              "--select", names)


def _edited(src: Path, dst: Path, edit) -> Path:
    """A copy of a .keras archive with config.json changed by edit(config) (the weights untouched)."""
    with zipfile.ZipFile(src) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    config = json.loads(entries["config.json"])
    edit(config)
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return dst


def _lstm_configs(config):
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "LSTM":
            yield layer["config"]
        if layer["class_name"] == "Bidirectional":
            yield layer["config"]["layer"]["config"]


@pytest.mark.parametrize("field, value, words", [
    ("activation", "relu", ["activation='relu'", "tanh"]),
    ("recurrent_activation", "hard_sigmoid", ["recurrent_activation='hard_sigmoid'", "Keras 2: clip(0.2 x + 0.5"]),
    ("go_backwards", True, ["go_backwards=True", "no backward-only layer"]),
    ("merge_mode", "sum", ["merge_mode='sum'", "concatenates"]),
])
def test_keras_config_fields_that_change_the_function_are_refused_by_name(keras_files, tmp_path, capsys,
                                                                          field, value, words):
    def edit(config):
        for layer in config["config"]["layers"]:
            if field == "merge_mode" and layer["class_name"] == "Bidirectional":
                layer["config"]["merge_mode"] = value
        if field != "merge_mode":
            next(_lstm_configs(config))[field] = value

    source = keras_files["fun.keras"] if field == "merge_mode" else keras_files["seq.keras"]
    src = _edited(source, tmp_path / "edited.keras", edit)
    assert convert(src, "--from", "keras", "--to", "torch", "-o", tmp_path / "t.safetensors") == UNSUPPORTED
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "t.safetensors").exists()


def test_keras_lambda_code_never_runs(tmp_path, capsys):
    """A Lambda layer's code sits in the config: reading never runs it, and --check's load_model(safe_mode=True)
    refuses it and runs the LSTM from its arrays instead."""
    needs("keras", "torch")
    import keras

    marker = tmp_path / "ran"
    touch = eval(f"lambda x: x if open({str(marker)!r}, 'w') else x")  # the path inside its code, no closure
    model = keras.Sequential([keras.Input((None, 5)), keras.layers.Lambda(touch), keras.layers.LSTM(7)])
    model.save(tmp_path / "lambda.keras")
    marker.unlink()  # building the model ran the lambda once
    assert convert(tmp_path / "lambda.keras", "--from", "keras", "--to", "torch", "-o", tmp_path / "t.safetensors",
                   "--check") == OK
    out = capsys.readouterr().out
    assert "load_model(safe_mode=True) refused it" in out
    assert_agrees(out)
    assert not marker.exists()


def test_tf2_checkpoint_and_savedmodel_variables(keras_files, from_archives, tmp_path, capsys):
    import tensorflow as tf

    tf.train.Checkpoint(model=keras_files["fun"]).write(str(tmp_path / "ckpt" / "model"))
    tf.saved_model.save(keras_files["seq"], str(tmp_path / "saved"))
    assert convert(tmp_path / "ckpt", "--from", "keras", "--to", "torch", "-o", tmp_path / "t.safetensors") == USAGE
    err = capsys.readouterr().err
    layers = err.split("--select ")[-1].split(")")[0]
    assert layers.count(",") == 1 and "_operations/" in layers, err
    _same_out(tmp_path, from_archives / "fun.safetensors", tmp_path / "ckpt", "--from", "keras", "--select", layers)
    _same_out(tmp_path, from_archives / "seq.safetensors", tmp_path / "saved", "--from", "keras",
              "--select", "_layers/1,_layers/3")
    assert "(SavedModel's variables)" in capsys.readouterr().out
    tf.train.Checkpoint(variables=[tf.Variable(np.zeros((5, 28), np.float32))]).write(str(tmp_path / "flat" / "m"))
    assert convert(tmp_path / "flat", "--from", "keras", "--to", "torch", "-o", tmp_path / "t.safetensors") == USAGE
    assert "variables/0" in capsys.readouterr().err  # Keras 3's Model.export names: no layers to find


# Flax files ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flax_trees():
    """A linen Bidirectional's variables and an nnx stack of OptimizedLSTMCells' parameters (pure dict, and the
    nnx.State that nnx.split gives), laid out as flax's own init lays them out (cases/test_jax.py checks that)."""
    needs("flax", "flax-nnx")
    from flax import nnx

    from harness import CanonicalLSTM
    from harness.backends.flax_nnx import build_model

    def plain(tree):
        return {str(k): plain(v) for k, v in tree.items()} if isinstance(tree, dict) else np.asarray(tree)

    linen = LSTMSpec(input_size=5, hidden_size=7, bidirectional=True, bias="single")
    stack = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bias="single")
    pure = backends.get("flax-nnx").export(CanonicalLSTM.random(stack, seed=2), cell="OptimizedLSTMCell")
    model = nnx.eval_shape(lambda: build_model(stack, "OptimizedLSTMCell", False, np.float32))  # no init compute
    nnx.update(model, dict(pure))
    _, state, _ = nnx.split(model, nnx.Param, ...)
    return {"linen": plain(backends.get("flax").export(CanonicalLSTM.random(linen, seed=1))),
            "nnx": plain(pure), "nnx.State": state}


def test_flax_msgpack_linen_and_nnx(flax_trees, tmp_path, capsys):
    needs("torch")
    from flax import serialization

    (tmp_path / "linen.msgpack").write_bytes(serialization.to_bytes(flax_trees["linen"]))
    (tmp_path / "nnx.msgpack").write_bytes(serialization.to_bytes(flax_trees["nnx"]))
    for name, family, words in (("linen", "flax", '"bidirectional": true, "bias": "single"'),
                                ("nnx", "flax-nnx", '"num_layers": 2, "bias": "single"')):
        assert convert(tmp_path / f"{name}.msgpack", "--from", family, "--to", "torch", "-o",
                       tmp_path / f"{name}.safetensors", "--check") == OK
        out = capsys.readouterr().out
        assert words in out and "(flax msgpack)" in out
        assert_agrees(out)


def test_orbax_checkpoints_linen_and_nnx(flax_trees, tmp_path, capsys):
    needs("torch")
    ocp = pytest.importorskip("orbax.checkpoint")

    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save((tmp_path / "runs" / "100" / "default").resolve(), flax_trees["linen"])
    checkpointer.save((tmp_path / "nnx").resolve(), flax_trees["nnx.State"])  # every leaf under 'value'
    checkpointer.wait_until_finished()
    assert convert(tmp_path / "runs", "--from", "flax", "--to", "torch", "-o", tmp_path / "t.safetensors") == USAGE
    assert f"name one step's item folder, e.g. {tmp_path / 'runs' / '100' / 'default'}" in capsys.readouterr().err
    for src, family in ((tmp_path / "runs" / "100" / "default", "flax"), (tmp_path / "nnx", "flax-nnx")):
        assert convert(src, "--from", family, "--to", "torch", "-o", tmp_path / "t.safetensors", "--check") == OK
        out = capsys.readouterr().out
        assert "(Orbax checkpoint)" in out
        assert_agrees(out)


# ONNX, and what --check proves ------------------------------------------------------------------------
def test_onnx_from_torch_export_runs_its_own_graph(torch_lstm, tmp_path, capsys):
    needs("onnx")
    import torch

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = torch_lstm, torch.nn.Linear(14, 2)

        def forward(self, x, h, c):
            y, (h_n, c_n) = self.lstm(x, (h, c))
            return self.head(y), h_n, c_n

    zeros = (torch.zeros(3, 4, 5), torch.zeros(4, 3, 7), torch.zeros(4, 3, 7))
    with pytest.warns((UserWarning, DeprecationWarning)):
        torch.onnx.export(Model(), zeros, str(tmp_path / "m.onnx"), input_names=["x", "h", "c"], dynamo=False)
    assert convert(tmp_path / "m.onnx", "--from", "onnx", "--to", "torch", "-o", tmp_path / "t.safetensors",
                   "--check") == OK
    out = capsys.readouterr().out
    assert '"num_layers": 2, "bidirectional": true}' in out and "the original graph's LSTM nodes" in out
    assert_agrees(out)


def test_check_catches_a_misread_source(torch_lstm, tmp_path, capsys, monkeypatch):
    """A harness that misreads SRC (here: the torch import swaps the i and f gates) writes a wrong OUT that the
    oracle on OUT agrees with; SRC run by torch itself disagrees, and --check fails."""
    import torch

    from harness.backends.torch import TorchBackend

    torch.save(torch_lstm.state_dict(), tmp_path / "m.pt")
    import_ = TorchBackend.import_

    def misread(self, native, spec, select=None):
        model = import_(self, native, spec, select)
        H = spec.hidden_size
        for lw in model.weights.values():
            for name in ("W_ih", "W_hh", "b_ih", "b_hh"):
                a = getattr(lw, name)
                setattr(lw, name, np.concatenate([a[H:2 * H], a[:H], a[2 * H:]]))
        return model

    monkeypatch.setattr(TorchBackend, "import_", misread)
    assert convert(tmp_path / "m.pt", "--from", "torch", "--to", "numpy", "-o", tmp_path / "c.npz", "--check") == DISAGREE
    out = capsys.readouterr().out
    assert "check: DISAGREE" in out and "not close to the oracle (SRC)" in out
    assert "(OUT)" not in out.split("check: DISAGREE")[0].split("[3]")[-1] or True


def test_check_inputs_and_a_missing_framework(torch_lstm, tmp_path, capsys, monkeypatch):
    needs("keras")
    import torch

    torch.save(torch_lstm.state_dict(), tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", x_of().transpose(1, 0, 2))  # [T, B, in]
    np.save(tmp_path / "bad.npy", np.zeros((6, 3, 4), np.float32))
    assert convert(tmp_path / "m.pt", "--from", "torch", "--to", "keras", "-o", tmp_path / "k.npz", "--check",
                   "--inputs", tmp_path / "bad.npy") == USAGE
    assert "--inputs: x: expected last dimension input_size=5" in capsys.readouterr().err
    monkeypatch.setattr(type(backends.get("keras")), "installed", lambda self: "keras is not installed (test)")
    assert convert(tmp_path / "m.pt", "--from", "torch", "--to", "keras", "-o", tmp_path / "k.npz", "--check",
                   "--inputs", tmp_path / "x.npy") == OK
    out = capsys.readouterr().out
    assert "x [6, 3, 5] (from x.npy, zero h0 and c0)" in out
    assert "[2] OUT: keras.layers.LSTM (keras) -- skipped: not installed: keras is not installed (test)" in out
    assert "check: agree: SRC, oracle(OUT) compared; skipped: OUT" in out


def test_keras_arrays_say_their_bias_kind(tmp_path, capsys):
    """get_weights() lists need no --spec, and no "bias": "single" spelled out: two arrays per layer is use_bias=False."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "nobias.npz", **{"layer0.0": rng.normal(size=(5, 28)), "layer0.1": rng.normal(size=(7, 28))})
    np.savez(tmp_path / "bias.npz", **{"layer0.0": rng.normal(size=(5, 28)), "layer0.1": rng.normal(size=(7, 28)),
                                       "layer0.2": rng.normal(size=28)})
    for name, kind in (("nobias", "none"), ("bias", "single")):
        assert convert(tmp_path / f"{name}.npz", "--from", "keras", "--to", "numpy", "-o", tmp_path / "c.npz") == OK
        assert f'"bias": "{kind}"' in capsys.readouterr().out


def test_onnx_clip_is_read_as_the_gate_clip(tmp_path, capsys):
    needs("onnx")
    from harness import CanonicalLSTM

    spec = LSTMSpec(input_size=5, hidden_size=7, gate_clip=0.5)
    CanonicalLSTM.random(spec, seed=4).save(tmp_path / "c.npz")
    assert convert(tmp_path / "c.npz", "--from", "numpy", "--to", "onnx", "-o", tmp_path / "m.onnx") == OK
    capsys.readouterr()
    assert convert(tmp_path / "m.onnx", "--from", "onnx", "--to", "numpy", "-o", tmp_path / "back.npz", "--check") == OK
    out = capsys.readouterr().out
    assert '"gate_clip": 0.5' in out
    assert_agrees(out, sides=("SRC",))
    assert convert(tmp_path / "m.onnx", "--from", "onnx", "--spec", '{"gate_clip": 0.25}', "--to", "numpy",
                   "-o", tmp_path / "back.npz") == USAGE
    assert "gate_clip=0.25, but SRC holds gate_clip=0.5 (LSTM node 'lstm_0' clip=0.5)" in capsys.readouterr().err
