"""TF1 LSTMCell / BasicLSTMCell: checkpoints in and out, conversions to and from other frameworks.

"TF1 code" here is what a TF1 user wrote: a tf.Graph, placeholders, the cells, dynamic_rnn (a
MultiRNNCell when stacked) or bidirectional_dynamic_rnn, a Session and tf.compat.v1.train.Saver. Every
catalogue case the cells can express also runs on `tf1` and `tf1-basic` in test_agreement.py.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import harness
from harness import CanonicalLSTM, LSTMSpec, UnsupportedFeature, backends
from harness.compare import compare, tolerance_for
from harness.outputs import LSTMOutput
from clip_counts import record_clips

from harness.backends import tf1

# TensorFlow, its v1 API and TF1's cells: imported by the fixture below when the first test runs, not when the
# module is collected (a plain collection, or a pytest-xdist worker sent no test from here, never loads TF).
tf = v1 = rc = None


@pytest.fixture(scope="module", autouse=True)
def tensorflow():
    global tf, v1, rc
    reason = backends.get("tf1").installed()
    if reason:
        pytest.skip(f"not installed: {reason}")
    import tensorflow as tf

    rc = __import__(tf1.LEGACY_CELLS, fromlist=["LSTMCell"])
    v1 = tf.compat.v1


pytestmark = pytest.mark.filterwarnings("ignore:.*(is deprecated|add_variable):UserWarning")  # the TF1 API says so

FULL = dict(peephole=True, proj_size=4, cell_clip=0.5, proj_clip=0.1)  # clips measured to bind: see the catalogue
SPECS = {
    "stacked-every-feature": LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bias="single", forget_bias=0.7, **FULL),
    "stacked-bidirectional-every-feature": LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True,
                                                    bias="single", forget_bias=1.0, **FULL),
    "bidirectional": LSTMSpec(input_size=5, hidden_size=7, bidirectional=True, bias="single", forget_bias=0.0),
}


def assert_agree(spec, actual, expected, what):
    result = compare(spec, actual, expected, tolerance_for("float32"))
    assert result.ok, result.message(f" ({what})")


def inputs(spec, batch=3, steps=6, seed=1):
    """x, h0, c0 as float32 values (kept in float64 for the oracle)."""
    x, h0, c0 = CanonicalLSTM.random(spec, seed).random_inputs(batch, steps, seed)
    return tuple(a.astype(np.float32).astype(np.float64) for a in (x, h0, c0))


def tf1_graph(spec, *, basic=False, outer="", forget_bias="spec", batch=3, steps=6):
    """TF1 user code for `spec` in a new Graph: returns (graph, x, h0, c0 placeholders, y, final states).

    forget_bias="default" leaves the cell's default (1.0), as most TF1 code did.
    """
    graph = tf.Graph()
    D = spec.num_directions
    with graph.as_default(), (v1.variable_scope(outer) if outer else contextlib.nullcontext()):
        x = v1.placeholder(tf.float32, [steps, batch, spec.input_size])
        h0 = v1.placeholder(tf.float32, [spec.num_layers * D, batch, spec.output_size])
        c0 = v1.placeholder(tf.float32, [spec.num_layers * D, batch, spec.hidden_size])
        args = tf1.cell_arguments(spec, basic=basic)
        if forget_bias == "default":
            del args["forget_bias"]
        new_cell = (lambda: rc.BasicLSTMCell(**args)) if basic else (lambda: rc.LSTMCell(**args))
        state = lambda i: rc.LSTMStateTuple(c0[i], h0[i])  # noqa: E731  (c, m): c first
        if not spec.bidirectional:
            if spec.num_layers == 1:
                y, final = v1.nn.dynamic_rnn(new_cell(), x, initial_state=state(0), time_major=True)
                finals = [final]
            else:
                cell = rc.MultiRNNCell([new_cell() for _ in range(spec.num_layers)])
                init = tuple(state(k) for k in range(spec.num_layers))
                y, finals = v1.nn.dynamic_rnn(cell, x, initial_state=init, time_major=True)
        else:
            def bidirectional(inputs, k):
                (y_fw, y_bw), states = v1.nn.bidirectional_dynamic_rnn(
                    new_cell(), new_cell(), inputs, initial_state_fw=state(2 * k), initial_state_bw=state(2 * k + 1),
                    time_major=True)
                return tf.concat([y_fw, y_bw], -1), list(states)

            if spec.num_layers == 1:
                y, finals = bidirectional(x, 0)
            else:  # contrib's stack_bidirectional_dynamic_rnn, which TF 2 no longer ships
                y, finals = x, []
                with v1.variable_scope("stack_bidirectional_rnn"):
                    for k in range(spec.num_layers):
                        with v1.variable_scope(f"cell_{k}"):
                            y, states = bidirectional(y, k)
                        finals += states
    return graph, (x, h0, c0), y, list(finals)


def session_run(graph, placeholders, y, finals, sess, feed) -> LSTMOutput:
    out_y, states = sess.run([y, finals], dict(zip(placeholders, (a.astype(np.float32) for a in feed))))
    return LSTMOutput(out_y, np.stack([s.h for s in states]), np.stack([s.c for s in states]))


def graph_variable_names(graph):
    with graph.as_default():
        return {v.name.removesuffix(":0") for v in v1.global_variables()}


@pytest.mark.parametrize("name", list(SPECS))
def test_exported_checkpoint_restores_in_tf1_code(name, tmp_path):
    spec = SPECS[name]
    model = CanonicalLSTM.random(spec, seed=3).rounded("float32")
    native = backends.get("tf1").export(model)
    prefix = tf1.save_checkpoint(native, tmp_path / "model.ckpt")
    graph, placeholders, y, finals = tf1_graph(spec)
    assert graph_variable_names(graph) == set(native)  # the names TF1 code gives its variables
    feed = inputs(spec)
    with graph.as_default(), v1.Session(graph=graph) as sess:
        v1.train.Saver().restore(sess, prefix)
        actual = session_run(graph, placeholders, y, finals, sess, feed)
    assert_agree(spec, actual, model.forward(*feed), f"TF1 Session restoring the exported {name}")


def real_tf1_checkpoint(graph, path, rng, *, optimizer=False):
    """Initialize the graph's variables, overwrite them with well-conditioned random values (a trained LSTM's
    biases are not zero), optionally add Adam and take a step (its slots and global_step then sit in the
    checkpoint, as in a real one; zero gradients keep the step cheap and the weights unchanged), save with Saver.
    Returns the open session and the checkpoint path."""
    with graph.as_default():
        variables = v1.global_variables()
        if optimizer:
            step = v1.train.AdamOptimizer(0.01).apply_gradients(
                [(tf.zeros_like(v), v) for v in variables], global_step=v1.train.get_or_create_global_step())
        sess = v1.Session(graph=graph)
        sess.run(v1.global_variables_initializer())
        for v in variables:
            sess.run(v.assign(rng.uniform(-0.4, 0.4, v.shape.as_list()).astype(np.float32)))
        if optimizer:
            sess.run(step)
        return sess, v1.train.Saver().save(sess, str(path))


def test_done_when_a_tf1_checkpoint_with_peepholes_and_projection_converts(tmp_path):
    """The issue's "Done when": TF1 checkpoint variables -> harness.convert(params, "tf1", dst, spec) -> agreement."""
    true_spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bias="single", forget_bias=1.0, **FULL)
    graph, placeholders, y, finals = tf1_graph(true_spec, outer="model/encoder", forget_bias="default")
    feed = inputs(true_spec)
    sess, path = real_tf1_checkpoint(graph, tmp_path / "tf1.ckpt", np.random.default_rng(0), optimizer=True)
    with sess:
        expected_tf1 = session_run(graph, placeholders, y, finals, sess, feed)

    reader = tf.train.load_checkpoint(path)
    params = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    assert {"model/encoder/rnn/multi_rnn_cell/cell_1/lstm_cell/projection/kernel",
            "model/encoder/rnn/multi_rnn_cell/cell_1/lstm_cell/w_f_diag/Adam", "global_step"} <= set(params)
    with pytest.raises(TypeError):
        tf1.spec_from_checkpoint(params)  # forget_bias and the clips are not in a checkpoint: no silent default
    spec = tf1.spec_from_checkpoint(params, forget_bias=1.0, cell_clip=0.5, proj_clip=0.1)
    assert spec == true_spec

    canonical = harness.convert(params, "tf1", "numpy", spec)
    assert_agree(spec, expected_tf1, canonical.forward(*feed), "TF1 Session vs the oracle on the converted weights")
    again = harness.convert(params, "tf1", "tf1", spec)  # and the harness's own TF1 run, from the converted set
    tf1_backend = backends.get("tf1")
    actual = tf1_backend.run(tf1_backend.prepare(tf1_backend.import_(again, spec)), *feed)
    assert_agree(spec, actual, canonical.forward(*feed), "converted TF1 set run eagerly vs the oracle")

    with pytest.raises(UnsupportedFeature, match="peepholes"):
        harness.convert(params, "tf1", "torch", spec)
    with pytest.raises(UnsupportedFeature, match="projection"):
        harness.convert(params, "tf1", "keras", spec)


def test_tf1_lstmcell_and_keras_agree_once_forget_bias_is_folded():
    spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True, bias="single", forget_bias=1.0)
    params = backends.get("tf1").export(CanonicalLSTM.random(spec, seed=5).rounded("float32"))
    keras_weights = harness.convert(params, "tf1", "keras", spec)
    assert any("forget_bias=1" in f for f in keras_weights.folded)
    keras_backend, tf1_backend = backends.get("keras"), backends.get("tf1")
    keras_model = keras_backend.import_(keras_weights, spec.replace(forget_bias=0.0))  # Keras has no run-time forget_bias
    feed = inputs(spec)
    from_keras = keras_backend.run(keras_backend.prepare(keras_model), *feed)
    from_tf1 = tf1_backend.run(tf1_backend.prepare(tf1_backend.import_(params, spec)), *feed)
    assert_agree(spec, from_keras, from_tf1, "Keras LSTM vs TF1 LSTMCell")
    assert_agree(spec, from_keras, keras_model.forward(*feed), "Keras LSTM vs the oracle")


def test_basic_lstm_cell_checkpoint_converts_to_torch_and_back(tmp_path):
    import torch

    tf_spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bias="single", forget_bias=1.0)
    graph, placeholders, y, finals = tf1_graph(tf_spec, basic=True, forget_bias="default")
    sess, path = real_tf1_checkpoint(graph, tmp_path / "basic.ckpt", np.random.default_rng(1))
    feed = inputs(tf_spec)
    with sess:
        expected = session_run(graph, placeholders, y, finals, sess, feed)
    reader = tf.train.load_checkpoint(path)
    params = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    assert tf1.spec_from_checkpoint(params, forget_bias=1.0, cell_clip=None, proj_clip=None) == tf_spec

    state_dict = harness.convert(params, "tf1-basic", "torch", tf_spec)
    lstm = torch.nn.LSTM(5, 7, num_layers=2)
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()})
    with torch.no_grad():
        as_t = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
        out, (h_n, c_n) = lstm(as_t(feed[0]), (as_t(feed[1]), as_t(feed[2])))
    assert_agree(tf_spec, LSTMOutput.of(out.numpy(), h_n.numpy(), c_n.numpy()), expected, "torch.nn.LSTM vs TF1 Session")

    torch_spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2)  # what a torch.nn.LSTM is: two biases
    back = harness.convert({k: p.detach() for k, p in lstm.state_dict().items()}, "torch", "tf1-basic", torch_spec)
    kernel = "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel"
    assert set(back) == set(params) and np.array_equal(back[kernel], params[kernel])
    prefix = tf1.save_checkpoint(back, tmp_path / "back.ckpt")
    back_spec = tf_spec.replace(forget_bias=0.0)  # folded into the bias on the way through torch
    graph, placeholders, y, finals = tf1_graph(back_spec, basic=True)
    with graph.as_default(), v1.Session(graph=graph) as sess:
        v1.train.Saver().restore(sess, prefix)
        assert_agree(tf_spec, session_run(graph, placeholders, y, finals, sess, feed), expected,
                     "TF1 BasicLSTMCell(forget_bias=0) restoring the torch weights vs the original TF1 run")


def test_multirnncell_inside_bidirectional_dynamic_rnn_is_refused():
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [6, 3, 5])
        stack = lambda: rc.MultiRNNCell([rc.LSTMCell(7), rc.LSTMCell(7)])  # noqa: E731
        v1.nn.bidirectional_dynamic_rnn(stack(), stack(), x, dtype=tf.float32, time_major=True)
        params = {v.name.removesuffix(":0"): np.zeros(v.shape.as_list(), np.float32) for v in v1.global_variables()}
    spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True, bias="single", forget_bias=1.0)
    for attempt in (lambda: harness.convert(params, "tf1", "torch", spec),
                    lambda: tf1.spec_from_checkpoint(params, forget_bias=1.0, cell_clip=None, proj_clip=None)):
        with pytest.raises(UnsupportedFeature, match="MultiRNNCell inside bidirectional_dynamic_rnn.*concatenated"):
            attempt()
    forward_only = tf1.spec_from_checkpoint(params, forget_bias=1.0, cell_clip=None, proj_clip=None,
                                            select="bidirectional_rnn/fw")
    assert (forward_only.num_layers, forward_only.bidirectional) == (2, False)


ROUND_TRIP = {
    "tf1": SPECS["stacked-bidirectional-every-feature"],
    "tf1-basic": LSTMSpec(input_size=5, hidden_size=7, num_layers=3, bias="single", forget_bias=1.0),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_round_trips_are_exact(name):
    backend, spec = backends.get(name), ROUND_TRIP[name]
    model = CanonicalLSTM.random(spec, seed=2)
    assert backend.import_(backend.export(model, dtype=np.float64), spec) == model  # canonical -> native -> canonical
    native = backend.export(model)  # float32
    again = backend.export(backend.import_(native, spec))  # native -> canonical -> native
    assert list(again) == list(native) and all(np.array_equal(again[k], native[k]) for k in native)


def test_import_finds_one_lstm_under_any_scope():
    backend, spec = backends.get("tf1"), SPECS["stacked-every-feature"]
    model = CanonicalLSTM.random(spec, seed=4)
    encoder = backend.export(model, dtype=np.float64)
    checkpoint = {f"model/encoder/{k}": v for k, v in encoder.items()}
    checkpoint.update({f"model/encoder/{k}/Adam": v for k, v in encoder.items()})  # optimizer slots are ignored
    checkpoint["global_step"] = np.array(10)
    assert backend.import_(checkpoint, spec) == model
    assert backend.import_({f"{k}:0": v for k, v in checkpoint.items()}, spec) == model  # tf.Variable.name spelling
    checkpoint.update({f"model/decoder/{k}": v for k, v in encoder.items()})
    with pytest.raises(ValueError, match="found 2 .*'model/decoder/rnn/'.*'model/encoder/rnn/'.*select="):
        backend.import_(checkpoint, spec)
    assert backend.import_(checkpoint, spec, select="model/encoder") == model
    assert backend.import_(checkpoint, spec, select="model/encoder/rnn/") == model


@pytest.mark.parametrize("change, message", [
    (dict(peephole=False), r"w_f_diag.*not part of spec"),
    (dict(bidirectional=True), r"MultiRNNCell, but spec.bidirectional=False|spec.bidirectional=True"),
    (dict(num_layers=3), r"hold layers \[0, 1\].*spec.num_layers=3"),
    (dict(bias="double"), r"one bias; describe it with bias='single'"),
    (dict(input_size=6), r"cell_0/lstm_cell/kernel \(layer 0, forward, \[W_ih, W_hh\] transposed, gates i j f o\): "
                         r"expected shape \(10, 28\), got \(9, 28\)"),
])
def test_import_names_what_does_not_match_the_spec(change, message):
    spec = SPECS["stacked-every-feature"]
    params = backends.get("tf1").export(CanonicalLSTM.random(spec))
    with pytest.raises(ValueError, match=message):
        backends.get("tf1").import_(params, spec.replace(**change))


def test_c_m_state_round_trip():
    """The final (c, m) TF1 returns, fed back as the initial state, continues the sequence exactly."""
    spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, proj_size=4, bias="single", forget_bias=0.7,
                    peephole=True)  # m is 4 wide, c 7 wide: a swapped state tuple cannot pass
    backend = backends.get("tf1")
    model = CanonicalLSTM.random(spec, seed=6).rounded("float32")
    prepared = backend.prepare(model)
    x, h0, c0 = inputs(spec, steps=8)
    first = backend.run(prepared, x[:5], h0, c0)
    second = backend.run(prepared, x[5:], first.h_n, first.c_n)
    whole = LSTMOutput(np.concatenate([first.y, second.y]), second.h_n, second.c_n)
    assert_agree(spec, whole, model.forward(x, h0, c0), "two TF1 runs joined by their (c, m) state vs the oracle")


@pytest.mark.parametrize("case_name", ["peephole-projection-clips", "peephole-projection-clips-bidirectional-2layer"])
def test_both_clips_bind_on_a_real_share_of_values(case_name, monkeypatch):
    """Guard for the clip cases: an agreement case whose clips never bind would prove nothing about them."""
    from harness.catalogue import get_case

    calls = record_clips(monkeypatch)
    case = get_case(case_name)
    model = case.model()
    model.forward(*case.inputs(model))
    moved: dict[float, list[int]] = {}
    for bound, hits, total in calls:
        counts = moved.setdefault(bound, [0, 0])
        counts[0] += hits
        counts[1] += total
    shares = {bound: hits / total for bound, (hits, total) in moved.items()}
    assert set(shares) == {case.spec.cell_clip, case.spec.proj_clip}
    assert min(shares.values()) >= 0.1, f"clipped shares {shares}"


def test_clips_of_zero_and_below_are_what_tf1_does():
    """TF1's LSTMCell clips whenever cell_clip / proj_clip is not None. proj_clip=0.0 zeroes m while c runs on
    (cell_clip=0.0, all zero, is the catalogue's cell-clip-0 case); a negative bound sets every value to the
    constant -bound, which LSTMSpec refuses, saying so."""
    backend = backends.get("tf1")
    spec = LSTMSpec(input_size=5, hidden_size=7, proj_size=4, proj_clip=0.0, bias="single")
    model = CanonicalLSTM.random(spec, seed=2).rounded("float32")
    x, h0, c0 = inputs(spec)
    prepared = backend.prepare(model)
    out = backend.run(prepared, x, h0, c0)
    assert_agree(spec, out, model.forward(x, h0, c0), "proj_clip=0.0")
    assert not np.any(out.y) and np.all(out.c_n != 0)
    cell = prepared.model["cells"][(0, 0)]
    cell._cell_clip, cell._proj_clip = -0.5, -0.3  # what LSTMSpec refuses, in the TF1 cell itself
    out = backend.run(prepared, x, h0, c0)
    assert np.all(out.c_n == np.float32(0.5)) and np.all(out.y == np.float32(0.3))
    for field, what in (("cell_clip", "c"), ("proj_clip", "the projected h")):
        with pytest.raises(ValueError, match=f"sets every value of {what} to the constant 0.5"):
            spec.replace(**{field: -0.5})
