"""Errors about the user's weights name the user's own key (with the canonical parameter beside it), for every
backend's import, and NaN or infinite weights are refused, naming the key and the index of the first bad value,
unless allowed (harness/backends/_names.py: take, the one place every import takes a user's tensor in)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pytest

from harness import CanonicalLSTM, LSTMSpec, NonFiniteWeights, backends, convert

SPEC = LSTMSpec(input_size=3, hidden_size=2, bidirectional=True)

# backend -> the user's key of layer 0's backward input weight in that backend's own parameters (flat), and what
# the message says it holds. Mappings get a prefix of the user's own (an enclosing model), which the key keeps.
KEYS = {
    "numpy": ("l0.backward.W_ih", "layer 0, backward, W_ih"),
    "torch": ("encoder.lstm.weight_ih_l0_reverse", "layer 0, backward, W_ih"),
    "keras": ("layer0.3", "layer 0, backward, W_ih transposed (kernel)"),
    "onnx": ("encoder/lstm_0.W", "layer 0, both directions, W_ih, gates i o f c; input W of LSTM node 'lstm_0'"),
    "onnx-reference": ("encoder/lstm_0.W", "layer 0, both directions, W_ih, gates i o f c; input W of LSTM node "
                                           "'lstm_0'"),
    "tf1": ("encoder/bidirectional_rnn/bw/lstm_cell/kernel", "layer 0, backward, [W_ih, W_hh] transposed, gates i j f o"),
    "tf1-basic": ("encoder/bidirectional_rnn/bw/basic_lstm_cell/kernel",
                  "layer 0, backward, [W_ih, W_hh] transposed, gates i j f o"),
    "tf-block": ("encoder/BlockLSTM/layer_0/bw/w", "layer 0, backward, [W_ih, W_hh] transposed, gates i c f o"),
    "tf-block-cell": ("encoder/LSTMBlockCell/layer_0/bw/w", "layer 0, backward, [W_ih, W_hh] transposed, gates i c f o"),
    "tf-block-v2": ("encoder/BlockLSTMV2/layer_0/bw/w", "layer 0, backward, [W_ih, W_hh] transposed, gates i f c o"),
    "jax": ("encoder.l0.backward.W_ih", "layer 0, backward, W_ih"),
    "flax": ("encoder/params/backward_rnn/cell/ii/kernel", "layer 0, backward, W_ih of gate i, transposed"),
    "flax-nnx": ("encoder/backward_rnn/cell/ii/kernel", "layer 0, backward, W_ih of gate i, transposed"),
    "equinox": ("cells[1].weight_ih", "layer 0, backward, W_ih"),
    "jax-cudnn": ("weights", "every W_ih and W_hh, then every b_ih and b_hh, flattened"),
}
KEYS.update({name: KEYS["keras"] for name in ("keras-tensorflow", "keras-jax", "keras-torch")})  # keras's parameters
PREFIX = {"torch": "encoder.lstm.", "jax": "encoder."}  # the others: "encoder/"


def test_every_registered_backend_is_covered():
    assert sorted(KEYS) == sorted(backends.names())


def _flat(name: str, native) -> dict[str, np.ndarray]:
    """A backend's parameters as the user's flat keys (what the import names in its errors)."""
    if isinstance(native, CanonicalLSTM):
        return native.tensors()
    if isinstance(native, np.ndarray):
        return {"weights": np.asarray(native)}
    if (backends.get(name).native_as or name) == "keras":
        return {f"layer{k}.{i}": a for k, layer in enumerate(native) for i, a in enumerate(layer)}
    if name == "equinox":
        return {f"cells[{i}].{f}": np.asarray(getattr(c, f)) for i, c in enumerate(native)
                for f in ("weight_ih", "weight_hh", "bias")}
    from harness.backends._jax import flatten

    return {PREFIX.get(name, "encoder/") + k: np.asarray(v) for k, v in flatten(native, name).items()}


def _rebuild(name: str, native, flat: dict[str, np.ndarray]):
    """`native` with the arrays of `flat` (some of them changed)."""
    if isinstance(native, CanonicalLSTM):
        return CanonicalLSTM.from_tensors(flat, native.metadata())
    if isinstance(native, np.ndarray):
        return flat["weights"]
    if (backends.get(name).native_as or name) == "keras":
        return [[flat[f"layer{k}.{i}"] for i in range(len(layer))] for k, layer in enumerate(native)]
    if name == "equinox":
        import equinox as eqx

        return [eqx.tree_at(lambda c: (c.weight_ih, c.weight_hh, c.bias), cell,
                            tuple(flat[f"cells[{i}].{f}"] for f in ("weight_ih", "weight_hh", "bias")))
                for i, cell in enumerate(native)]
    assert isinstance(native, Mapping)
    return flat  # every mapping import reads flat '/'-joined paths under any prefix too


@pytest.fixture
def exported(request):
    """(backend, spec, its exported parameters) for the backend named by indirect parametrization."""
    name = request.param
    reason = backends.get(name).installed()
    if reason:
        pytest.skip(f"not installed: {reason}")
    model = backends.get(name).adapt(CanonicalLSTM.random(SPEC, seed=1))
    native = backends.get(name).export(model, np.float64)
    return name, model.spec, native


# numpy's parameters are a CanonicalLSTM, which cannot hold a wrong shape (its constructor checks every one)
@pytest.mark.parametrize("exported", [n for n in sorted(KEYS) if n != "numpy"], indirect=True)
def test_a_wrong_shape_names_the_users_key(exported):
    name, spec, native = exported
    key, holds = KEYS[name]
    flat = _flat(name, native)
    good = flat[key].shape
    flat[key] = flat[key][..., :-1]  # one column (one value for a vector) short
    with pytest.raises(ValueError) as caught:
        backends.get(name).import_(_rebuild(name, native, flat), spec)
    message = str(caught.value)
    assert message.startswith(f"{key} ({holds}): expected shape {good}, got {flat[key].shape}"), message


@pytest.mark.parametrize("exported", sorted(KEYS), indirect=True)
@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_nonfinite_weights_are_refused_naming_the_key_and_index(exported, bad):
    name, spec, native = exported
    key, holds = KEYS[name]
    flat = _flat(name, native)
    index = tuple(n - 1 for n in flat[key].shape)  # the last value: the index is the user's, in their layout
    flat[key] = flat[key].copy()
    flat[key][index] = bad
    changed = _rebuild(name, native, flat)
    with pytest.raises(NonFiniteWeights, match=f"^{re.escape(f'{key} ({holds}): {bad} at index {index}')}"):
        convert(changed, name, "numpy", spec, dtype=np.float64)
    with pytest.raises(NonFiniteWeights):
        backends.get(name).import_(changed, spec)  # the import itself refuses, not only convert()
    out = convert(changed, name, "numpy", spec, dtype=np.float64, allow_nonfinite=True)
    assert sum(np.count_nonzero(~np.isfinite(v)) for v in out.tensors().values()) == 1  # as it is, where allowed


def test_keras_variable_paths_and_onnx_initializers_are_named_as_the_user_has_them():
    """The other two native forms: a mapping of Keras variable paths, and an ONNX model's initializers."""
    for name in ("keras", "onnx"):
        if backends.get(name).installed():
            pytest.skip(f"not installed: {backends.get(name).installed()}")
    keras = backends.get("keras")
    spec = SPEC.replace(bias="single")
    lists = keras.export(CanonicalLSTM.random(spec))
    paths = {f"model/bidirectional/{d}_lstm/lstm_cell/{v}": a
             for layer in lists for d, arrays in zip(("forward", "backward"), (layer[:3], layer[3:]))
             for v, a in zip(("kernel", "recurrent_kernel", "bias"), arrays)}
    key = "model/bidirectional/backward_lstm/lstm_cell/recurrent_kernel"
    paths[key] = paths[key][:, :-1]
    with pytest.raises(ValueError, match=f"^{re.escape(key)} " + r"\(layer 0, backward, W_hh transposed "
                                         r"\(recurrent_kernel\)\): expected shape \(2, 8\), got \(2, 7\)$"):
        keras.import_(paths, spec)

    from onnx import numpy_helper

    ort = backends.get("onnx")
    proto = ort.export_model(CanonicalLSTM.random(SPEC))
    r = next(t for t in proto.graph.initializer if t.name == "lstm_0.R")
    value = numpy_helper.to_array(r).copy()
    value[1, 0, 1] = np.inf
    r.CopyFrom(numpy_helper.from_array(value, "lstm_0.R"))
    with pytest.raises(NonFiniteWeights, match=r"^lstm_0.R \(layer 0, both directions, W_hh, gates i o f c; input R "
                                               r"of LSTM node 'lstm_0'\): inf at index \(1, 0, 1\)"):
        ort.import_(proto, SPEC)


def test_convert_cli_refuses_nonfinite_weights_unless_allowed_and_check_blames_src(tmp_path, capsys):
    from safetensors.numpy import save_file

    from harness.__main__ import main
    from harness.cli.convert import OK, USAGE, spec_json

    spec = LSTMSpec(input_size=3, hidden_size=2)
    state = dict(backends.get("torch").export(CanonicalLSTM.random(spec)))
    state["weight_hh_l0"][2, 1] = np.nan
    save_file(state, str(tmp_path / "nan.safetensors"))
    argv = ["convert", "--from", "torch", str(tmp_path / "nan.safetensors"), "--spec", spec_json(spec),
            "--to", "numpy", "-o", str(tmp_path / "out.npz")]
    assert main(argv) == USAGE
    err = capsys.readouterr().err
    assert "weight_hh_l0 (layer 0, forward, W_hh): nan at index (2, 1)" in err and "--allow-nonfinite" in err, err
    assert not (tmp_path / "out.npz").exists()
    assert main([*argv, "--allow-nonfinite", "--check"]) == OK
    out = capsys.readouterr().out
    assert "check: SRC itself is non-finite: l0.forward.W_hh holds nan at index (2, 1)" in out, out
    assert "OUT holds SRC's weights" in out and "not close" not in out  # OUT is not blamed
    assert np.isnan(CanonicalLSTM.load(tmp_path / "out.npz")[(0, 0)].W_hh[2, 1])  # written as it is
