"""TensorFlow's fused LSTM ops (BlockLSTM, LSTMBlockCell, BlockLSTMV2): what their attributes do if left
at their defaults, the dtypes they take, their op versions' layouts, and conversions from TF1.

Every catalogue case the ops can express also runs on tf-block, tf-block-cell and tf-block-v2 in
test_agreement.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import harness
from harness import CanonicalLSTM, LSTMSpec, UnsupportedFeature, backends
from harness.catalogue import get_case
from harness.compare import compare, tolerance_for
from harness.runner import oracle_for

# TensorFlow: imported by the fixture below when the first test runs, not when the module is collected.
tf = None


@pytest.fixture(scope="module", autouse=True)
def tensorflow():
    global tf
    reason = backends.get("tf-block").installed()
    if reason:
        pytest.skip(f"not installed: {reason}")
    import tensorflow as tf

OPS = {"tf-block": "BlockLSTM", "tf-block-cell": "LSTMBlockCell", "tf-block-v2": "BlockLSTMV2"}


def agreement(spec, actual, expected):
    return compare(spec, actual, expected, tolerance_for("float32"))


@pytest.mark.parametrize("name", list(OPS))
def test_declared_dtypes_are_the_ones_the_op_takes(name):
    backend = backends.get(name)
    assert backend.capabilities.dtypes == ("float16", "float32")
    assert "float16, float32" in backend.supports(LSTMSpec(input_size=2, hidden_size=3), "float64")
    op, H = getattr(tf.raw_ops, OPS[name]), 3
    for dtype in ("float16", "float32", "float64", "bfloat16"):
        z = lambda *shape: tf.zeros(shape, dtype)  # noqa: E731
        args = dict(x=z(2, 2) if name == "tf-block-cell" else z(1, 2, 2), cs_prev=z(2, H), h_prev=z(2, H),
                    w=z(2 + H, 4 * H), wci=z(H), wcf=z(H), wco=z(H), b=z(4 * H))
        if name != "tf-block-cell":
            args["seq_len_max"] = tf.constant(1, tf.int64)
        if dtype in backend.capabilities.dtypes:
            assert op(**args).h.dtype == dtype
        else:
            with pytest.raises(tf.errors.InvalidArgumentError, match="not in the list of allowed values"):
                op(**args)


@pytest.mark.parametrize("name, attribute, case_name", [
    ("tf-block", "cell_clip", "large-cell-state"),  # the default 3.0 clips |c| > 3
    ("tf-block-cell", "cell_clip", "large-cell-state"),
    ("tf-block", "forget_bias", "plain"),  # the default 1.0 is added to a spec that says 0
    ("tf-block-cell", "forget_bias", "plain"),
])
def test_attributes_left_at_their_defaults_change_the_function(name, attribute, case_name):
    """Negative control: the backend passes these because it sets every attribute; the op's defaults would not."""
    backend, case = backends.get(name), get_case(case_name)
    model, (x, h0, c0), expected = oracle_for(case, "float32")
    prepared = backend.prepare(model, "float32")
    assert agreement(case.spec, backend.run(prepared, x, h0, c0), expected).ok
    del prepared.model["attrs"][attribute]
    defaults_result = agreement(case.spec, backend.run(prepared, x, h0, c0), expected)
    assert not defaults_result.ok, f"leaving {attribute} at its default should have changed the result"


@pytest.mark.parametrize("name", list(OPS))
def test_a_cell_clip_of_zero_is_off_in_the_ops_so_declared_unsupported(name):
    """TF1's LSTMCell clips c to zero at cell_clip=0.0; the fused ops clip only when cell_clip > 0."""
    backend, case = backends.get(name), get_case("plain")
    assert "reads 0 as off" in backend.supports(case.spec.replace(cell_clip=0.0))
    model, (x, h0, c0), unclipped = oracle_for(case, "float32")
    prepared = backend.prepare(model, "float32")
    prepared.model["attrs"]["cell_clip"] = 0.0
    out = backend.run(prepared, x, h0, c0)
    assert agreement(case.spec, out, unclipped).ok and np.all(out.c_n != 0)  # TF1's meaning: all zero


def test_op_versions_are_not_mixed():
    spec = LSTMSpec(input_size=5, hidden_size=7, peephole=True, bias="single")
    model = CanonicalLSTM.random(spec)
    v2 = backends.get("tf-block-v2").export(model)
    assert sorted(v2) == [f"BlockLSTMV2/layer_0/fw/{n}" for n in ("b", "w", "wcf", "wci", "wco")]
    with pytest.raises(ValueError, match=r"BlockLSTMV2's \(gate order ifgo\), not BlockLSTM's \(igfo\)"):
        backends.get("tf-block").import_(v2, spec)
    v1 = backends.get("tf-block").export(model)
    with pytest.raises(ValueError, match=r"BlockLSTM's \(gate order igfo\), not BlockLSTMV2's"):
        backends.get("tf-block-v2").import_(v1, spec)
    # BlockLSTM and LSTMBlockCell take the same inputs in the same layout
    assert backends.get("tf-block-cell").import_(v1, spec) == backends.get("tf-block").import_(v1, spec)


@pytest.mark.parametrize("name", list(OPS))
def test_round_trips_are_exact(name):
    backend = backends.get(name)
    spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True, peephole=True, cell_clip=0.5,
                    bias="single", forget_bias=0.0 if name == "tf-block-v2" else 1.0)
    model = CanonicalLSTM.random(spec, seed=2)
    assert backend.import_(backend.export(model, dtype=np.float64), spec) == model  # canonical -> native -> canonical
    native = backend.export(model)
    again = backend.export(backend.import_(native, spec))  # native -> canonical -> native
    assert list(again) == list(native) and all(np.array_equal(again[k], native[k]) for k in native)


def test_tf1_lstmcell_converts_to_the_fused_ops():
    """A TF1 LSTMCell with peepholes, cell_clip and forget_bias is what LSTMBlockCell/BlockLSTM compute."""
    spec = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, peephole=True, cell_clip=0.5, bias="single",
                    forget_bias=1.0)
    tf1_params = backends.get("tf1").export(CanonicalLSTM.random(spec, seed=4).rounded("float32"))
    x, h0, c0 = (a.astype(np.float32) for a in CanonicalLSTM.random(spec, 1).random_inputs(3, 6, 1))
    expected = backends.get("tf1").import_(tf1_params, spec).forward(x, h0, c0)
    for name in OPS:
        backend = backends.get(name)
        native = harness.convert(tf1_params, "tf1", name, spec)
        assert bool(native.folded) == (name == "tf-block-v2")  # V2 has no forget_bias attribute
        model = backend.import_(native, spec.replace(forget_bias=0.0) if native.folded else spec)
        result = agreement(spec, backend.run(backend.prepare(model), x, h0, c0), expected)
        assert result.ok, result.message(f" ({name} from a TF1 LSTMCell)")
    with pytest.raises(UnsupportedFeature, match="projection"):
        harness.convert(backends.get("tf1").export(CanonicalLSTM.random(spec.replace(proj_size=4))), "tf1", "tf-block",
                        spec.replace(proj_size=4))
