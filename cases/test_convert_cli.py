"""`python -m harness convert`: files in, files out, never unpickling (harness/cli/convert.py, harness/files.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import CanonicalLSTM, LSTMSpec, backends, extras, files
from harness.__main__ import main
from harness.compare import tolerance_for
from harness.cli.convert import DISAGREE, OK, UNSUPPORTED, USAGE, spec_json
from installed import needs

SPEC = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True)


def convert(*argv) -> int:
    return main(["convert", *map(str, argv)])


@pytest.fixture
def torch_file(tmp_path):
    """A real torch.nn.LSTM's state_dict, saved with safetensors.torch (what a torch user has)."""
    torch = pytest.importorskip("torch", reason=extras.skip_reason("torch"))
    from safetensors.torch import save_file

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(SPEC.input_size, SPEC.hidden_size, num_layers=SPEC.num_layers, bidirectional=True)
    path = tmp_path / "lstm.safetensors"
    save_file(lstm.state_dict(), str(path))
    return lstm, path


def test_torch_to_keras_to_torch_round_trip_is_exact(torch_file, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    lstm, src = torch_file
    assert convert("--from", "torch", src, "--spec", spec_json(SPEC), "--to", "keras", "-o", tmp_path / "k.npz") == OK
    out = capsys.readouterr().out
    assert "folded: b_ih + b_hh summed into one bias" in out
    keras_spec = SPEC.replace(bias="single")
    assert spec_json(keras_spec) in out  # the --spec that reads the file back
    with np.load(tmp_path / "k.npz", allow_pickle=False) as f:
        assert sorted(f.files) == sorted(f"layer{k}.{i}" for k in range(2) for i in range(6))
        np.testing.assert_array_equal(f["layer0.0"], lstm.weight_ih_l0.detach().numpy().T)  # kernel [in, 4H]
    assert convert("--from", "keras", tmp_path / "k.npz", "--spec", spec_json(keras_spec), "--to", "torch",
                   "-o", tmp_path / "back.safetensors") == OK
    back = load_file(str(tmp_path / "back.safetensors"))
    torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True).load_state_dict(back, strict=True)  # torch's own names
    for name, value in lstm.state_dict().items():
        if name.startswith("weight"):
            assert torch.equal(back[name], value), name
        elif name.startswith("bias_ih"):  # the folded bias: b_ih + b_hh summed in float64, rounded once
            hh = lstm.state_dict()[name.replace("bias_ih", "bias_hh")]
            assert torch.equal(back[name], (value.double() + hh.double()).float()), name
        else:
            assert not back[name].any(), name


def test_torch_to_onnx_file_is_importable_and_agrees(torch_file, tmp_path):
    needs("onnx")
    import onnxruntime as ort
    import torch

    lstm, src = torch_file
    out = tmp_path / "lstm.onnx"
    assert convert("--from", "torch", src, "--spec", spec_json(SPEC), "--to", "onnx", "-o", out) == OK
    model = CanonicalLSTM.random(SPEC)  # for its inputs only
    x, h0, c0 = (a.astype(np.float32) for a in model.random_inputs(batch=3, steps=9, seed=1))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    y, h_n, c_n = session.run(None, {"x": x, "h0": h0, "c0": c0})
    with torch.inference_mode():
        ty, (th, tc) = lstm(*map(torch.from_numpy, (x,)), (torch.from_numpy(h0), torch.from_numpy(c0)))
    tol = tolerance_for("float32")
    for got, want in ((y, ty), (h_n, th), (c_n, tc)):
        np.testing.assert_allclose(got, want.numpy(), rtol=tol.rtol, atol=tol.atol)
    imported = backends.get("onnx").import_(out, SPEC)  # the onnx import reads the file back
    np.testing.assert_array_equal(imported[(1, 1)].W_hh, lstm.weight_hh_l1_reverse.detach().numpy())


def test_tf1_checkpoint_to_torch_folds_forget_bias(tmp_path, capsys):
    needs("tf1")
    from safetensors.numpy import load_file

    from harness.backends import tf1

    spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bias="single", forget_bias=1.0)
    model = CanonicalLSTM.random(spec, seed=3)
    tf1.save_checkpoint(backends.get("tf1").export(model), tmp_path / "tf" / "model.ckpt")
    # A checkpoint does not hold forget_bias: without --spec the cell's arguments are required.
    assert convert("--from", "tf1", tmp_path / "tf" / "model.ckpt", "--to", "torch", "-o", tmp_path / "t.safetensors") == USAGE
    assert "--forget-bias, --cell-clip, --proj-clip" in capsys.readouterr().err
    assert convert("--from", "tf1", tmp_path / "tf", "--forget-bias", "1.0", "--cell-clip", "none",
                   "--proj-clip", "none", "--to", "torch", "-o", tmp_path / "t.safetensors") == OK
    out = capsys.readouterr().out
    assert "folded: run-time forget_bias=1 added into the forget part of the bias" in out
    state = load_file(str(tmp_path / "t.safetensors"))
    H = spec.hidden_size
    expected = model[(1, 0)].b_ih.astype(np.float32).astype(np.float64)  # as the (float32) checkpoint holds it
    expected[H:2 * H] += 1.0  # the forget part, i f g o
    np.testing.assert_array_equal(state["bias_ih_l1"], expected.astype(np.float32))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".pkl"])
def test_pickle_files_are_refused(tmp_path, capsys, suffix):
    """.pkl is never read; a torch.save suffix goes to torch's weights-only loader, which refuses a non-torch pickle."""
    src = tmp_path / f"model{suffix}"
    src.write_bytes(b"\x80\x04not really a pickle")
    assert convert("--from", "torch", src, "--to", "keras", "-o", tmp_path / "k.npz") == USAGE
    err = capsys.readouterr().err
    if suffix == ".pkl":
        assert "pickle" in err and "never reads one" in err
        assert "save_file(model.state_dict(), 'lstm.safetensors')" in err
    else:
        assert "refused by torch's weights-only loader" in err and "nothing in it ran" in err
        assert "weights_only=False" not in err
    assert not (tmp_path / "k.npz").exists()


def test_pickle_output_is_refused(tmp_path, capsys):
    src = CanonicalLSTM.random(SPEC).save(tmp_path / "m.npz")
    assert convert("--from", "numpy", src, "--to", "torch", "-o", tmp_path / "out.pt") == USAGE
    assert "pickle" in capsys.readouterr().err and not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("spec, words", [
    ('{"input_size": 5, "hidden_size": "7"}', ["hidden_size", "'7'", "int"]),
    ('{"input_size": 5, "hiden_size": 7}', ["unknown", "'hiden_size'"]),
    ('{"input_size": 5, "hidden_size": 7, "bias": "two"}', ["bias", "'two'", "double"]),
    ('{"input_size": 5, "hidden_size": 7, "num_layer": 2}', ["unknown", "num_layer"]),
    ('{"input_size": 5, hidden_size: 7}', ["--spec", "not valid JSON"]),
    ("[5, 7]", ["--spec", "expected a JSON object"]),
])
def test_bad_spec_names_the_field(tmp_path, capsys, spec, words):
    src = tmp_path / "lstm.safetensors"
    src.write_bytes(b"")  # never read: the spec is checked first
    assert convert("--from", "torch", src, "--spec", spec, "--to", "keras", "-o", tmp_path / "k.npz") == USAGE
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)


def test_spec_from_a_json_file(torch_file, tmp_path):
    _, src = torch_file
    (tmp_path / "spec.json").write_text(json.dumps(SPEC.to_dict()))
    assert convert("--from", "torch", src, "--spec", tmp_path / "spec.json", "--to", "numpy", "-o", tmp_path / "c.npz") == OK
    assert CanonicalLSTM.load(tmp_path / "c.npz").spec == SPEC


def test_peephole_spec_to_torch_is_unsupported(tmp_path, capsys):
    spec = LSTMSpec(input_size=5, hidden_size=7, peephole=True)
    src = CanonicalLSTM.random(spec).save(tmp_path / "peep.safetensors")
    assert convert("--from", "numpy", src, "--to", "torch", "-o", tmp_path / "t.safetensors") == UNSUPPORTED
    err = capsys.readouterr().err
    assert "unsupported" in err and "peepholes" in err
    assert not (tmp_path / "t.safetensors").exists()


def test_check_prints_agreement(tmp_path, capsys):
    needs("torch")
    src = CanonicalLSTM.random(SPEC, seed=5).save(tmp_path / "c.npz")
    assert convert("--from", "numpy", src, "--to", "torch", "-o", tmp_path / "t.safetensors", "--check") == OK
    out = capsys.readouterr().out
    assert "[1] SRC: a canonical file -- skipped: the oracle is its own framework" in out
    assert "[2] OUT: torch.nn.LSTM.load_state_dict(strict=True)" in out
    assert "check: agree: OUT, oracle(OUT) compared; skipped: SRC" in out


def test_fixed_lengths_are_kept_said_and_checked_around(tmp_path, capsys):
    """A model whose source fixed its lengths (an ONNX constant sequence_lens) keeps them in a canonical file; a
    conversion says they are no parameter, and --check runs full-length sequences on SRC's weights."""
    needs("torch")
    model = CanonicalLSTM.random(SPEC, seed=5)
    model.fixed_lengths = (4, 6, 2)
    src = model.save(tmp_path / "c.npz")
    assert CanonicalLSTM.load(src).fixed_lengths == (4, 6, 2)
    assert convert("--from", "numpy", src, "--to", "torch", "-o", tmp_path / "t.safetensors", "--check") == OK
    out = capsys.readouterr().out
    assert "sequence lengths [4, 6, 2], fixed by the source model (a constant sequence_lens), are no parameter" in out
    assert "check: SRC fixes its sequence lengths to [4, 6, 2]" in out
    assert "[2] OUT: torch.nn.LSTM.load_state_dict(strict=True)" in out
    assert "check: agree: OUT, oracle(OUT) compared" in out


def test_check_catches_a_wrong_file(tmp_path, capsys, monkeypatch):
    """--check fails when the file does not hold SRC's function (here: torch's i and f gate blocks swapped)."""
    needs("torch")
    from harness.backends.torch import TorchBackend

    to_native = TorchBackend.to_native

    def swapped(self, model, dtype):
        native = to_native(self, model, dtype)
        H = model.spec.hidden_size
        for name, value in native.items():
            if name.startswith(("weight_ih", "weight_hh", "bias")):
                native[name] = np.concatenate([value[H:2 * H], value[:H], value[2 * H:]])
        return native

    monkeypatch.setattr(TorchBackend, "to_native", swapped)
    src = CanonicalLSTM.random(SPEC, seed=5).save(tmp_path / "c.npz")
    assert convert("--from", "numpy", src, "--to", "torch", "-o", tmp_path / "t.safetensors", "--check") == DISAGREE
    out = capsys.readouterr().out
    assert "check: DISAGREE" in out and "outputs are not close to the oracle (OUT)" in out


def test_torch_to_a_keras_model_file_that_keras_loads(torch_file, tmp_path, capsys):
    """-o lstm.keras: a Keras model archive, written by Keras; keras.saving.load_model gives a model whose y is
    torch's, and --check runs the layers Keras loaded from it."""
    needs("keras")
    import keras
    import torch

    lstm, src = torch_file
    out = tmp_path / "lstm.keras"
    assert convert("--from", "torch", src, "--to", "keras", "-o", out, "--check") == OK
    assert "OUT: keras.layers.LSTM (keras); the LSTM layers of keras.saving.load_model(safe_mode=True)" in \
        capsys.readouterr().out
    loaded = keras.saving.load_model(out)
    assert [type(layer).__name__ for layer in loaded.layers] == ["Bidirectional", "Bidirectional"]
    x = np.random.default_rng(0).uniform(-1, 1, (3, 6, SPEC.input_size)).astype(np.float32)
    with torch.no_grad():
        expected = lstm(torch.from_numpy(x.transpose(1, 0, 2)))[0].numpy().transpose(1, 0, 2)
    tol = tolerance_for("float32")  # the float32 table's bound, as for any Keras run; measured here: 8.9e-8 worst
    np.testing.assert_allclose(np.asarray(loaded(x)), expected, rtol=tol.rtol, atol=tol.atol)


def _users_flax_target(name: str, spec: LSTMSpec):
    """What a Flax user restores into: linen's variables of nn.Sequential([nn.Bidirectional(nn.RNN(..)), ...]) (their
    shapes, from jax.eval_shape of its init: from_bytes takes only the tree from its target), or an nnx model's
    parameter state as a pure dict; and a jitted function giving that model's y (one program: eager Flax compiles
    every step's operations one by one)."""
    import jax
    import jax.numpy as jnp

    x = jnp.zeros((2, 4, spec.input_size))
    if name == "flax":
        import flax.linen as nn

        rnn = lambda: nn.RNN(nn.LSTMCell(spec.hidden_size))  # noqa: E731
        model = nn.Sequential([nn.Bidirectional(rnn(), rnn()) for _ in range(spec.num_layers)])
        return jax.eval_shape(model.init, jax.random.key(0), x), jax.jit(model.apply)
    from flax import nnx

    rngs = nnx.Rngs(0)
    rnn = lambda k: nnx.RNN(nnx.LSTMCell(spec.layer_input_size(k), spec.hidden_size, rngs=rngs))  # noqa: E731
    model = nnx.Sequential(*[nnx.Bidirectional(rnn(k), rnn(k)) for k in range(spec.num_layers)])

    @nnx.jit
    def forward(model, x):
        return model(x)

    def run(pure, x):
        state = nnx.state(model, nnx.Param)
        nnx.replace_by_pure_dict(state, pure)
        nnx.update(model, state)
        return forward(model, x)
    return nnx.to_pure_dict(nnx.state(model, nnx.Param)), run


@pytest.mark.parametrize("name", ["flax", "flax-nnx"])
def test_a_flax_msgpack_restores_into_a_users_model(name, tmp_path, capsys):
    """-o params.msgpack: what serialization.to_bytes writes, which serialization.from_bytes restores into a user's
    own variables (linen) or nnx state; the model then computes the oracle's y. --check runs it with Flax too."""
    needs(name)
    from flax import serialization

    model = CanonicalLSTM.random(SPEC, seed=4)
    src = model.save(tmp_path / "c.npz")
    assert convert("--from", "numpy", src, "--to", name, "-o", tmp_path / "params.msgpack", "--check") == OK
    assert "RNN / Bidirectional over the restored tree" in capsys.readouterr().out
    target, run = _users_flax_target(name, SPEC.replace(bias="single"))
    restored = serialization.from_bytes(target, (tmp_path / "params.msgpack").read_bytes())
    x = np.random.default_rng(0).uniform(-1, 1, (2, 4, SPEC.input_size)).astype(np.float32)
    tol = tolerance_for("float32")  # the float32 table's bound, as for any Flax run; measured here: 3.1e-8 worst
    expected = model.forward(x, batch_first=True).y  # zero initial states, as the module's own
    np.testing.assert_allclose(np.asarray(run(restored, x)), expected, rtol=tol.rtol, atol=tol.atol)


def test_bad_inputs_are_refused_before_out_is_written(tmp_path, capsys):
    """--inputs are --check's: without --check, a file that is not there, lengths (diagnose's: --check runs every
    sequence in full) or an x of the wrong width are each a usage error naming --inputs, and no OUT is written."""
    src = CanonicalLSTM.random(SPEC, seed=4).save(tmp_path / "c.npz")
    x = np.zeros((4, 2, SPEC.input_size))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "narrow.npy", x[..., :3])
    np.savez(tmp_path / "ragged.npz", x=x, lengths=np.array([4, 2]))
    cases = ((("--inputs", tmp_path / "x.npy"), "--inputs: the inputs of --check's run, which was not asked for: "
                                                "add --check"),
             (("--check", "--inputs", tmp_path / "none.npy"), f"--inputs: {tmp_path / 'none.npy'} does not exist"),
             (("--check", "--inputs", tmp_path), f"--inputs: {tmp_path} is a folder; expected a file"),
             (("--check", "--inputs", tmp_path / "ragged.npz"), "--inputs: ragged.npz must hold x (and optionally h0, c0); "
                                                                "holds ['x', 'lengths']; per-example lengths are "
                                                                "diagnose's (its --lengths, or lengths in its --inputs)"),
             (("--check", "--inputs", tmp_path / "narrow.npy"), "--inputs: x: expected last dimension input_size=5"))
    for extra, error in cases:
        assert convert("--from", "numpy", src, "--to", "numpy", "-o", tmp_path / "o.npz", *extra) == USAGE, extra
        assert f"python -m harness convert: error: {error}" in capsys.readouterr().err
        assert not (tmp_path / "o.npz").exists(), extra
    assert convert("--from", "numpy", src, "--to", "numpy", "-o", tmp_path / "o.npz", "--check", "--inputs",
                   tmp_path / "x.npy") == OK
    assert "x [4, 2, 5] (from x.npy, zero h0 and c0)" in capsys.readouterr().out


def test_convert_keeps_framework_chatter_off_the_terminal(tmp_path, capfd, monkeypatch):
    """What a framework writes to fd 2 while it loads (absl's notice, oneDNN's) is filtered out, as in `run`; any
    other line (an error) still reaches stderr."""
    write = files.write

    def chatty(*args, **kwargs):
        import os

        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                    b"E0000 00:00:1796036014.859010    3838 util.cc:131] a real error\n")
        return write(*args, **kwargs)

    monkeypatch.setattr(files, "write", chatty)
    src = CanonicalLSTM.random(SPEC, seed=4).save(tmp_path / "c.npz")
    assert convert("--from", "numpy", src, "--to", "numpy", "-o", tmp_path / "o.npz") == OK
    err = capfd.readouterr().err
    assert "absl::InitializeLog" not in err and "a real error" in err


@pytest.mark.parametrize("name", ["keras-jax", "keras-torch"])
def test_a_keras_file_loads_under_another_keras_backend(name, tmp_path, capsys):
    """-o model.keras is written by this process's Keras (TensorFlow here); --to keras-jax / keras-torch --check loads
    it with keras.saving.load_model in a process of that Keras backend, as a user of it would, and runs its layers
    there (not with this process's Keras under that backend's name)."""
    needs(name)
    src = CanonicalLSTM.random(SPEC, seed=3).save(tmp_path / "c.npz")
    assert convert("--from", "numpy", src, "--to", name, "-o", tmp_path / "m.keras", "--check") == OK
    out = capsys.readouterr().out
    assert (f"OUT: keras.layers.LSTM ({name}); the LSTM layers of keras.saving.load_model(safe_mode=True), as Keras "
            f"loaded them; Keras on {name.split('-')[1]}, in the {name} worker process") in out  # said by that Keras
    assert "check: agree: OUT, oracle(OUT) compared; skipped: SRC" in out  # OUT ran there (a canonical SRC has no
    # framework of its own to run in)


# keras-<b> write Keras's parameters (files._own): their rows take its other forms, so each form is written once
# (and a keras-<b> row does not make this process import Keras to write a .keras it already tests).
OTHER_FORM = {"keras-jax": 1, "keras-torch": 2}


@pytest.mark.parametrize("name", [n for n in backends.names() if n != "numpy"])
def test_every_backend_file_form_round_trips(tmp_path, capsys, name):
    """canonical file -> NAME's natural file -> canonical file gives the (folded) weights bit for bit, in float64."""
    needs(name)
    model = CanonicalLSTM.random(SPEC, seed=2)
    target_spec = backends.get(name).adapt(model).spec
    src = model.save(tmp_path / "c.npz")
    form = files.forms(name)[OTHER_FORM.get(name, 0)]
    out = tmp_path / ("out.ckpt" if form == files.CHECKPOINT else f"out{form}")
    assert convert("--from", "numpy", src, "--to", name, "-o", out, "--dtype", "float64") == OK, capsys.readouterr().err
    explicit = ("forget_bias", "cell_clip", "proj_clip") if name.startswith("tf1") else ()  # not in a checkpoint
    assert spec_json(target_spec, explicit) in capsys.readouterr().out
    assert convert("--from", name, out, "--spec", spec_json(target_spec, explicit), "--to", "numpy",
                   "-o", tmp_path / "back.npz", "--dtype", "float64") == OK, capsys.readouterr().err
    assert CanonicalLSTM.load(tmp_path / "back.npz") == backends.get(name).adapt(model)


def test_keras_variable_paths_to_torch_agree_with_keras(tmp_path):
    """A Keras model's {v.path: v.numpy()} saved as .npz (the other documented keras input) -> torch, run in both."""
    needs("keras", "torch")
    import keras
    import torch
    from safetensors.torch import load_file

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, 5)), keras.layers.LSTM(7, return_sequences=True),
                              keras.layers.LSTM(7, return_sequences=True, bias_initializer="random_normal"),
                              keras.layers.Dense(3)])
    np.savez(tmp_path / "k.npz", **{v.path: v.numpy() for v in model.weights})
    spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bias="single")
    layers = ",".join(layer.path for layer in model.layers[:2])  # the Dense is not part of the LSTM
    assert convert("--from", "keras", tmp_path / "k.npz", "--select", layers, "--spec", spec_json(spec),
                   "--to", "torch", "-o", tmp_path / "t.safetensors") == OK
    lstm = torch.nn.LSTM(5, 7, num_layers=2, batch_first=True)
    lstm.load_state_dict(load_file(str(tmp_path / "t.safetensors")))
    x = np.random.default_rng(0).uniform(-1, 1, (3, 8, 5)).astype(np.float32)
    expected = keras.Sequential(model.layers[:2])(x).numpy()
    with torch.inference_mode():
        actual = lstm(torch.from_numpy(x))[0].numpy()
    tol = tolerance_for("float32")
    np.testing.assert_allclose(actual, expected, rtol=tol.rtol, atol=tol.atol)


@pytest.mark.parametrize("source, name", [("torch", "bad.safetensors"), ("torch", "bad.npz"), ("onnx", "bad.onnx"),
                                          ("numpy", "bad.npz")])
def test_a_corrupt_file_is_named_not_a_traceback(tmp_path, capsys, source, name):
    if source == "onnx":
        needs("onnx")
    (tmp_path / name).write_bytes(b"garbage, not a parameter file")
    spec = [] if source == "numpy" else ["--spec", spec_json(SPEC)]  # a numpy file holds its spec
    assert convert("--from", source, tmp_path / name, *spec, "--to", "keras", "-o", tmp_path / "k.npz") == USAGE
    assert f"SRC: {tmp_path / name} could not be read as" in capsys.readouterr().err
