"""The ONNX backends beyond the agreement matrix: every exported model passes onnx.checker, the
native <-> canonical round trip is exact, a torch.onnx.export file is imported and agrees, a node's clip
is the canonical gate_clip (and onnxruntime clips where the oracle does), nodes the canonical LSTM cannot
express are refused by attribute, select= picks one LSTM among several, bad input gets a clear error, and
what each runtime lacks is declared (and still true).
"""

from __future__ import annotations

import contextlib
import signal
import warnings

import numpy as np
import pytest

from harness import backends, catalogue, extras
from harness.backends import UnsupportedFeature
from harness.canonical import CanonicalLSTM
from harness.compare import compare, tolerance_for
from harness.outputs import LSTMOutput
from harness.runner import oracle_for
from harness.spec import LSTMSpec
from misplaced_gate_clip import WRONG_PLACES, forward as misplaced_forward

onnx = pytest.importorskip("onnx", reason=extras.skip_reason("onnx"))
helper = onnx.helper

ORT = backends.get("onnx")
REF = backends.get("onnx-reference")
EXPRESSIBLE = [c for c in catalogue.CASES if REF.supports(c.spec, "float64") is None and c.lengths is None]
SPEC_2BI = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True)


def _ort_or_skip():
    reason = ORT.installed()
    if reason:
        pytest.skip(f"not installed: {reason}")


def _lstm_node(proto, k=0):
    return [n for n in proto.graph.node if n.op_type == "LSTM"][k]


# Export ----------------------------------------------------------------------------------------
def test_onnx_expresses_every_case_but_projection_and_cell_clip():
    """onnxruntime runs the gate clip; ReferenceEvaluator ignores it (test_declared_reference_gaps_still_hold)."""
    for case in catalogue.CASES:
        beyond_onnx = bool(case.spec.proj_size) or case.spec.cell_clip is not None
        reason = ORT.supports(case.spec, "float32")
        assert (reason is not None) == beyond_onnx, (case.name, reason)
        reason = REF.supports(case.spec, "float64")
        assert (reason is not None) == (beyond_onnx or case.spec.gate_clip is not None), (case.name, reason)


@pytest.mark.parametrize("expressible", EXPRESSIBLE, ids=[c.name for c in EXPRESSIBLE])
def test_every_exported_model_passes_the_checker(expressible):
    model = expressible.model()
    for backend in (ORT, REF):
        for dtype in backend.capabilities.dtypes:
            for batch_first in (False, True):
                for initial_state in (True, False):
                    proto = backend.export_model(model, dtype, batch_first=batch_first, initial_state=initial_state)
                    onnx.checker.check_model(proto, full_check=True)
                    layouts = {helper.get_attribute_value(a) for n in proto.graph.node if n.op_type == "LSTM"
                               for a in n.attribute if a.name == "layout"}
                    assert layouts == {1 if batch_first and backend is REF else 0}


def test_export_writes_the_onnx_layout():
    """Gate order i, o, f, c; B = [Wb, Rb]; P in order i, o, f: read back by hand, not by import_."""
    spec = LSTMSpec(input_size=2, hidden_size=3, bidirectional=True, peephole=True)
    model = CanonicalLSTM.random(spec, seed=3)
    native = ORT.export(model, np.float64)
    H = 3
    for d in range(2):
        lw = model.weights[(0, d)]
        canon = dict(zip("ifgo", np.split(lw.W_ih, 4)))
        for j, gate in enumerate("iofg"):
            np.testing.assert_array_equal(native["lstm_0.W"][d, j * H:(j + 1) * H], canon[gate])
        np.testing.assert_array_equal(native["lstm_0.B"][d, 4 * H + H:4 * H + 2 * H], lw.b_hh[3 * H:])  # Rb of o
        np.testing.assert_array_equal(native["lstm_0.P"][d], np.concatenate([lw.w_i, lw.w_o, lw.w_f]))


def test_forget_bias_is_folded_and_clips_refused_with_their_reason():
    spec = SPEC_2BI.replace(forget_bias=0.7)
    native = ORT.export(CanonicalLSTM.random(spec), np.float32)
    assert native.folded and "forget_bias=0.7" in native.folded[0]
    reason = ORT.supports(SPEC_2BI.replace(cell_clip=0.5))
    assert "cell_clip" in reason and "clip attribute" in reason
    reason = REF.supports(SPEC_2BI.replace(gate_clip=0.5), "float64")
    assert "gate_clip=0.5" in reason and "ReferenceEvaluator ignores the LSTM's clip attribute" in reason
    assert "projection" in REF.supports(SPEC_2BI.replace(proj_size=4), "float64")


# Round trip ------------------------------------------------------------------------------------
@pytest.mark.parametrize("expressible", EXPRESSIBLE, ids=[c.name for c in EXPRESSIBLE])
def test_round_trip_is_exact(expressible, tmp_path):
    model = expressible.model()
    adapted = ORT.adapt(model)  # forget_bias folded into the bias
    assert ORT.import_(ORT.export(model, np.float64), adapted.spec) == adapted
    assert ORT.import_(REF.export_model(model, "float64", batch_first=True), adapted.spec) == adapted  # layout=1 nodes
    path = tmp_path / "lstm.onnx"
    onnx.save(ORT.export_model(model, "float32", initial_state=False), path)
    rounded = adapted.rounded("float32")
    assert ORT.import_(path, adapted.spec) == rounded
    assert ORT.import_(path.read_bytes(), adapted.spec) == rounded
    native = ORT.export(model, np.float32)
    again = ORT.export(ORT.import_(native, adapted.spec), np.float32)
    assert sorted(again) == sorted(native)
    for key in native:
        assert again[key].dtype == native[key].dtype and np.array_equal(again[key], native[key]), key


def test_import_finds_initializers_under_a_prefix():
    native = ORT.export(CanonicalLSTM.random(SPEC_2BI), np.float64)
    both = {**{f"enc.{k}": v for k, v in native.items()}, **{f"dec.{k}": v for k, v in native.items()}}
    assert ORT.import_(both, SPEC_2BI, select="enc") == CanonicalLSTM.random(SPEC_2BI)
    with pytest.raises(ValueError, match="pass select="):
        ORT.import_(both, SPEC_2BI)


# The gate clip -----------------------------------------------------------------------------------
def _clips(proto):
    return [helper.get_attribute_value(a) for n in proto.graph.node if n.op_type == "LSTM"
            for a in n.attribute if a.name == "clip"]


def test_an_onnx_file_with_clip_imports_and_agrees_with_onnxruntime_where_it_clips(tmp_path):
    """onnxruntime clips every gate pre-activation after its peephole term (the output gate's on the new c)
    and after the bias, which holds the folded forget_bias, and never clips c: measured against each misplaced
    clip on the gate-clip case, where the clip binds on 12-62% of each gate's pre-activations."""
    _ort_or_skip()
    import onnxruntime as ort

    case = catalogue.get_case("gate-clip")
    model, (x, h0, c0), expected = oracle_for(case, "float32")
    path = tmp_path / "clipped.onnx"
    onnx.save(ORT.export_model(model), path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert _clips(onnx.load(path)) == [0.5]  # one bidirectional node
    adapted = ORT.adapt(model)
    assert any("forget_bias=-0.5" in f for f in adapted.folded)
    imported = ORT.import_(path, adapted.spec)  # clip -> gate_clip, forget_bias folded inside it
    assert imported.spec.gate_clip == 0.5 and imported == adapted.rounded("float32")

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = LSTMOutput(*session.run(None, {"x": x.astype(np.float32), "h0": h0.astype(np.float32),
                                            "c0": c0.astype(np.float32)}))
    tol = tolerance_for("float32", "exact", "onnx")
    for what, reference in (("the oracle", expected), ("the imported model", imported.forward(x, h0, c0)),
                            ("the clip in its place", misplaced_forward(model, x, h0, c0, None))):
        comparison = compare(case.spec, actual, reference, tol)
        assert comparison.ok, comparison.message(f" (onnxruntime against {what})")
    for where, what in WRONG_PLACES.items():
        assert not compare(case.spec, actual, misplaced_forward(model, x, h0, c0, where), tol).ok, what
    unclipped = CanonicalLSTM(case.spec.replace(gate_clip=None), model.weights).forward(x, h0, c0)
    assert not compare(case.spec, actual, unclipped, tol).ok


def test_import_maps_clip_to_gate_clip_and_names_a_mismatch():
    spec = SPEC_2BI.replace(gate_clip=0.1)
    model = CanonicalLSTM.random(spec)
    proto = ORT.export_model(model)
    assert _clips(proto) == [np.float32(0.1)] * 2  # every node; ONNX attributes are float32
    assert ORT.import_(proto, spec) == model.rounded("float32")
    assert ORT.import_(ORT.export(model), spec) == model.rounded("float32")  # initializers: the spec says the clip
    with pytest.raises(ValueError, match=r"'lstm_0' \(layer 0\): has clip=0.1, but spec.gate_clip=None .*"
                                         r"describe it with gate_clip=0.1"):
        ORT.import_(proto, SPEC_2BI)
    with pytest.raises(ValueError, match="has clip=0.1, but spec.gate_clip=0.2"):
        ORT.import_(proto, SPEC_2BI.replace(gate_clip=0.2))
    with pytest.raises(ValueError, match="has no clip, but spec.gate_clip=0.1 .*describe it with gate_clip=None"):
        ORT.import_(ORT.export_model(CanonicalLSTM.random(SPEC_2BI)), spec)
    next(a for a in _lstm_node(proto, 1).attribute if a.name == "clip").f = 0.3  # layers clipping differently
    with pytest.raises(ValueError, match=r"'lstm_1' \(layer 1\): has clip=0.3, but spec.gate_clip=0.1"):
        ORT.import_(proto, spec)


def test_a_clip_that_never_binds_imports_as_what_it_is():
    """onnxruntime's own tests write clip=9999 on every node: it imports (it used to be refused) and runs
    as the unclipped LSTM, because it never binds."""
    _ort_or_skip()
    spec = LSTMSpec(input_size=5, hidden_size=7, peephole=True, gate_clip=9999.0)
    proto = ORT.export_model(CanonicalLSTM.random(spec.replace(gate_clip=None)))
    _set("clip", 9999.0)(proto)
    model = ORT.import_(proto, spec)
    x, h0, c0 = model.random_inputs(3, 6, seed=1)
    free = CanonicalLSTM(spec.replace(gate_clip=None), model.weights).forward(x, h0, c0)
    assert all(np.array_equal(a, b) for a, b in zip(model.forward(x, h0, c0), free))
    actual = ORT.run(ORT.prepare(model), x.astype(np.float32), h0.astype(np.float32), c0.astype(np.float32))
    assert compare(spec, actual, free, tolerance_for("float32", "exact", "onnx")).ok


# Import from torch.onnx.export ------------------------------------------------------------------
def _export_torch(module, args, path, **kw):
    torch = pytest.importorskip("torch", reason=extras.skip_reason("torch"))
    if kw.get("dynamo", True):
        pytest.importorskip("onnxscript", reason=extras.skip_reason("onnxscript", "torch.onnx.export's current exporter"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and tracing chatter
        with torch.no_grad():
            torch.onnx.export(module.eval(), args, str(path), verbose=False, **kw)
    return path


def _torch_lstm_and_inputs(seed=0):
    torch = pytest.importorskip("torch", reason=extras.skip_reason("torch"))
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True)
    x, h0, c0 = CanonicalLSTM.random(SPEC_2BI).random_inputs(3, 6, seed=1)
    return lstm, tuple(torch.from_numpy(a.astype(np.float32)) for a in (x, h0, c0))


def _with_state(lstm):
    """torch.nn.LSTM called as lstm(x, (h0, c0)): the module torch.onnx.export traces."""
    import torch

    class WithState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstm

        def forward(self, x, h0, c0):
            return self.lstm(x, (h0, c0))

    return WithState()


@pytest.mark.parametrize("exporter", ["dynamo", "legacy-unfolded"])
def test_torch_onnx_export_imports_exactly_and_agrees(exporter, tmp_path):
    """The current exporter, and the legacy one without constant folding (W, R, B as Slice/Concat/Unsqueeze
    of the torch parameters, evaluated on import)."""
    _ort_or_skip()
    torch = pytest.importorskip("torch", reason=extras.skip_reason("torch"))
    lstm, args = _torch_lstm_and_inputs()
    kw = {"dynamo": True} if exporter == "dynamo" else {"dynamo": False, "do_constant_folding": False}
    path = _export_torch(_with_state(lstm), args, tmp_path / "torch.onnx", input_names=["x", "h0", "c0"], **kw)
    if exporter == "legacy-unfolded":
        w_input = _lstm_node(onnx.load(path)).input[1]
        assert w_input not in {t.name for t in onnx.load(path).graph.initializer}  # really a computed W

    imported = ORT.import_(path, SPEC_2BI)
    assert imported == backends.get("torch").import_(lstm.state_dict(), SPEC_2BI)  # exact: same float32 values

    import onnxruntime as ort

    x, h0, c0 = (a.numpy() for a in args)
    y, h_n, c_n = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x, "h0": h0, "c0": c0})
    expected = imported.forward(x, h0, c0)
    tol = tolerance_for("float32", "exact", "onnx")
    with torch.no_grad():
        y_t, (h_t, c_t) = lstm(*args[:1], args[1:])
    runs = {"the file in onnxruntime": LSTMOutput(y, h_n, c_n),
            "the torch.nn.LSTM itself": LSTMOutput.of(y_t, h_t, c_t),
            "the import, re-exported": ORT.run(ORT.prepare(imported), x, h0, c0)}
    for what, actual in runs.items():
        comparison = compare(SPEC_2BI, actual, expected, tol)
        assert comparison.ok, comparison.message(f" ({what}, {exporter} exporter)")


def _several():
    """An encoder (2 layers, bidirectional) whose y feeds a decoder, and a side LSTM on the same x."""
    import torch

    class Several(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True)
            self.dec = torch.nn.LSTM(14, 6)
            self.side = torch.nn.LSTM(5, 3)

        def forward(self, x):
            y, _ = self.enc(x)
            d, _ = self.dec(y)
            s, _ = self.side(x)
            return d, s

    torch.manual_seed(1)
    return Several()


SPEC_DEC = LSTMSpec(input_size=14, hidden_size=6)
SPEC_SIDE = LSTMSpec(input_size=5, hidden_size=3)


@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
def test_select_picks_one_lstm_among_several(exporter, tmp_path):
    torch = pytest.importorskip("torch", reason=extras.skip_reason("torch"))
    module = _several()
    path = _export_torch(module, (torch.zeros(6, 3, 5),), tmp_path / "several.onnx", dynamo=exporter == "dynamo")
    graph = onnx.load(path).graph
    inits = {i.name: tuple(i.dims) for i in graph.initializer}
    by_w = {inits.get(n.input[1]): n.name for n in graph.node if n.op_type == "LSTM"}
    enc, dec, side = by_w[(2, 28, 5)], by_w[(1, 24, 14)], by_w[(1, 12, 5)]
    to_canonical = backends.get("torch").import_

    # Three stacks by dataflow: enc -> dec chain into 3 layers, side alone. Nothing is guessed.
    with pytest.raises(ValueError, match=r"2 stack\(s\): 3 layer\(s\) from .*1 layer\(s\) from .*Pass select="):
        ORT.import_(path, SPEC_2BI)
    assert ORT.import_(path, SPEC_2BI, select=enc) == to_canonical(module.enc.state_dict(), SPEC_2BI)
    assert ORT.import_(path, SPEC_DEC, select=dec) == to_canonical(module.dec.state_dict(), SPEC_DEC)
    assert ORT.import_(path, SPEC_SIDE, select=side) == to_canonical(module.side.state_dict(), SPEC_SIDE)
    with pytest.raises(ValueError, match="names no LSTM node"):
        ORT.import_(path, SPEC_2BI, select="nowhere")
    with pytest.raises(ValueError, match=r"has 1 layer\(s\)"):
        ORT.import_(path, SPEC_2BI, select=side)
    if exporter == "legacy":  # name scopes: /enc/LSTM, /enc/LSTM_1, /dec/LSTM
        assert ORT.import_(path, SPEC_2BI, select="/enc") == to_canonical(module.enc.state_dict(), SPEC_2BI)
        assert ORT.import_(path, SPEC_DEC, select="dec") == to_canonical(module.dec.state_dict(), SPEC_DEC)
        with pytest.raises(ValueError, match="also matches LSTM node"):
            ORT.import_(path, SPEC_2BI.replace(num_layers=1, input_size=5), select="/enc")


# Refusal -----------------------------------------------------------------------------------------
def _set(name, value):
    def edit(proto):
        _lstm_node(proto).attribute.append(helper.make_attribute(name, value))
    return edit


def _sequence_lens(proto):
    node = _lstm_node(proto)
    ins = list(node.input) + [""] * (5 - len(node.input))
    ins[4] = "seq_lens"
    del node.input[:]
    node.input.extend(ins)
    proto.graph.input.append(helper.make_tensor_value_info("seq_lens", onnx.TensorProto.INT32, ["B"]))


def _reverse(proto):
    node = _lstm_node(proto)
    for a in node.attribute:
        if a.name == "direction":
            a.s = b"reverse"


@pytest.mark.parametrize("attribute, edit", [
    ("clip", _set("clip", 0.0)),  # onnxruntime refuses clip <= 0; a positive clip is gate_clip
    ("activations", _set("activations", ["Sigmoid", "Tanh", "Relu"])),
    ("activation_alpha", _set("activation_alpha", [1.0])),
    ("input_forget", _set("input_forget", 1)),
    ("direction='reverse'", _reverse),
])
def test_import_refuses_a_node_the_canonical_lstm_cannot_express(attribute, edit):
    proto = ORT.export_model(CanonicalLSTM.random(LSTMSpec(input_size=5, hidden_size=7)))
    edit(proto)
    onnx.checker.check_model(proto, full_check=True)  # still a valid model: refused for what it means
    with pytest.raises(UnsupportedFeature, match=attribute):
        ORT.import_(proto, LSTMSpec(input_size=5, hidden_size=7))


# sequence_lens: the run's per-example lengths -------------------------------------------------------------
RAGGED = np.array([4, 6, 2])


def _ragged_inputs(model, steps=6):
    x, h0, c0 = model.random_inputs(len(RAGGED), steps, seed=2)
    return tuple(a.astype(np.float32) for a in (x, h0, c0))


def test_sequence_lens_fed_at_run_time_imports_and_runs_as_lengths():
    _ort_or_skip()
    model = CanonicalLSTM.random(SPEC_2BI).rounded("float32")
    proto = ORT.export_model(model, lengths=True)
    onnx.checker.check_model(proto, full_check=True)
    assert [n.input[4] for n in proto.graph.node if n.op_type == "LSTM"] == ["sequence_lens"] * 2
    imported = ORT.import_(proto, SPEC_2BI)
    assert imported == model and imported.fixed_lengths is None
    x, h0, c0 = _ragged_inputs(model)
    y, h_n, c_n = ORT.compile(proto)({"x": x, "h0": h0, "c0": c0, "sequence_lens": RAGGED.astype(np.int32)})
    expected = model.forward(x, h0, c0, lengths=RAGGED)
    comparison = compare(SPEC_2BI, LSTMOutput(y, h_n, c_n), expected, tolerance_for("float32"), lengths=RAGGED)
    assert comparison.ok, comparison.message()


def test_torch_onnx_export_of_a_packed_sequence_imports_and_agrees_on_a_ragged_batch(tmp_path):
    """torch.onnx.export (the legacy exporter; the current one cannot trace pack_padded_sequence) writes
    sequence_lens computed from the lengths input, after sorting the batch by length. Import takes it as the
    run's lengths; the file in onnxruntime, the import run by the onnx backend and the oracle agree."""
    _ort_or_skip()
    torch = pytest.importorskip("torch", reason="not installed: torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    lstm, _ = _torch_lstm_and_inputs()

    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstm

        def forward(self, x, lengths):
            y, (h, c) = self.lstm(pack_padded_sequence(x, lengths, enforce_sorted=False))
            return pad_packed_sequence(y, total_length=x.shape[0])[0], h, c

    model = backends.get("torch").import_(lstm.state_dict(), SPEC_2BI)
    x = _ragged_inputs(model)[0]
    path = _export_torch(Packed(), (torch.from_numpy(x), torch.from_numpy(RAGGED)), tmp_path / "packed.onnx",
                         dynamo=False, input_names=["x", "lengths"], dynamic_axes={"x": {1: "B"}, "lengths": {0: "B"}})
    assert all(n.input[4] for n in onnx.load(path).graph.node if n.op_type == "LSTM")  # sequence_lens is set
    imported = ORT.import_(path, SPEC_2BI)
    assert imported == model and imported.fixed_lengths is None

    import onnxruntime as ort

    y, h_n, c_n = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x, "lengths": RAGGED})
    expected = imported.forward(x, lengths=RAGGED)
    runs = {"the file in onnxruntime": LSTMOutput(y, h_n, c_n),
            "the import, run by the onnx backend": ORT.run(ORT.prepare(imported), x, lengths=RAGGED)}
    for what, actual in runs.items():
        comparison = compare(SPEC_2BI, actual, expected, tolerance_for("float32"), lengths=RAGGED)
        assert comparison.ok, comparison.message(f" ({what})")
    wrong = compare(SPEC_2BI, runs["the file in onnxruntime"], imported.forward(x), tolerance_for("float32"))
    assert not wrong.ok  # the lengths matter on this batch
    # convert --check (no lengths) runs the file too: its sequence_lens, fed from the lengths input, gets T each
    from harness.__main__ import main

    assert main(["convert", str(path), "--from", "onnx", "--to", "torch", "-o", str(tmp_path / "t.safetensors"),
                 "--check"]) == 0


def _constant_sequence_lens(proto, lengths):
    """The graph input sequence_lens made an initializer (a model exported for one batch)."""
    graph = proto.graph
    graph.input.remove(next(i for i in graph.input if i.name == "sequence_lens"))
    graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(lengths, np.int32), "sequence_lens"))
    return proto


def test_a_constant_sequence_lens_is_carried_and_must_match_the_run():
    _ort_or_skip()
    model = CanonicalLSTM.random(SPEC_2BI).rounded("float32")
    proto = _constant_sequence_lens(ORT.export_model(model, lengths=True), RAGGED)
    onnx.checker.check_model(proto, full_check=True)
    imported = ORT.import_(proto, SPEC_2BI)
    assert imported == model and imported.fixed_lengths == (4, 6, 2)
    x, h0, c0 = _ragged_inputs(model)
    y, h_n, c_n = ORT.compile(proto)({"x": x, "h0": h0, "c0": c0})  # the model's own lengths
    prepared = ORT.prepare(imported)
    for actual in (LSTMOutput(y, h_n, c_n), ORT.run(prepared, x, h0, c0, lengths=RAGGED)):
        comparison = compare(SPEC_2BI, actual, imported.forward(x, h0, c0, lengths=RAGGED), tolerance_for("float32"),
                             lengths=RAGGED)
        assert comparison.ok, comparison.message()
    message = r"lengths: expected \[4, 6, 2\], the lengths the model fixes \(a constant sequence_lens .*\), got "
    for run in (lambda **kw: ORT.run(prepared, x, h0, c0, **kw), lambda **kw: imported.forward(x, h0, c0, **kw)):
        with pytest.raises(ValueError, match=message + "none"):
            run()
        with pytest.raises(ValueError, match=message + r"\[4, 6, 1\]"):
            run(lengths=[4, 6, 1])
    native = backends.convert(proto, "onnx", "torch", SPEC_2BI)  # the weights convert; the lengths are said
    assert any("sequence lengths [4, 6, 2], fixed by the source model" in note for note in native.folded)


def test_a_stack_whose_nodes_differ_in_sequence_lens_is_refused():
    proto = ORT.export_model(CanonicalLSTM.random(SPEC_2BI), lengths=True)
    node = _lstm_node(proto, 1)
    node.input[4] = ""  # layer 1 runs over layer 0's padding
    with pytest.raises(UnsupportedFeature, match=r"differ in sequence_lens \('lstm_0': fed at run time; 'lstm_1': none\)"):
        ORT.import_(proto, SPEC_2BI)


def test_import_accepts_default_attributes_stated_explicitly():
    spec = LSTMSpec(input_size=5, hidden_size=7)
    proto = ORT.export_model(CanonicalLSTM.random(spec))
    for name, value in (("activations", ["Sigmoid", "Tanh", "Tanh"]), ("input_forget", 0)):
        _set(name, value)(proto)
    assert ORT.import_(proto, spec) == CanonicalLSTM.random(spec).rounded("float32")


# Bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (dict(hidden_size=6), "hidden_size=7, but spec.hidden_size=6"),
    (dict(input_size=4), r"lstm_0.W \(layer 0, both directions, W_ih, gates i o f c; input W of LSTM node 'lstm_0'\): "
                            r"expected shape \(2, 28, 4\), got \(2, 28, 5\)"),
    (dict(bidirectional=False), "direction='bidirectional', but spec.bidirectional=False"),
    (dict(num_layers=3), r"1 stack\(s\): 2 layer\(s\)"),
    (dict(peephole=True), "no peepholes P, but spec.peephole=True"),
    (dict(bias="none"), "nonzero bias B, but spec.bias='none'"),
    (dict(bias="single"), "Rb = B"),
    (dict(forget_bias=1.0), "no run-time forget_bias"),
    (dict(proj_size=4), "projection"),
])
def test_import_names_what_does_not_match_the_spec(change, message):
    proto = ORT.export_model(CanonicalLSTM.random(SPEC_2BI))
    with pytest.raises(ValueError, match=message):
        ORT.import_(proto, SPEC_2BI.replace(**change))


def test_import_of_bad_sources_names_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ONNX file at"):
        ORT.import_(tmp_path / "missing.onnx", SPEC_2BI)
    with pytest.raises(TypeError, match="got int"):
        ORT.import_(3, SPEC_2BI)
    native = ORT.export(CanonicalLSTM.random(SPEC_2BI), np.float64)
    del native["lstm_1.W"], native["lstm_1.R"], native["lstm_1.B"]
    with pytest.raises(ValueError, match=r"layers \[0\], but spec.num_layers=2"):
        ORT.import_(native, SPEC_2BI)
    # W fed at run time is not a stored weight
    proto = ORT.export_model(CanonicalLSTM.random(SPEC_2BI))
    w = next(i for i in proto.graph.initializer if i.name == "lstm_0.W")
    proto.graph.initializer.remove(w)
    proto.graph.input.append(helper.make_tensor_value_info("lstm_0.W", w.data_type, list(w.dims)))
    with pytest.raises(ValueError, match="input W: 'lstm_0.W' depends on the graph input 'lstm_0.W'"):
        ORT.import_(proto, SPEC_2BI)
    empty = helper.make_model(helper.make_graph([], "empty", [], []))
    with pytest.raises(ValueError, match="no LSTM node"):
        ORT.import_(empty, SPEC_2BI)


@contextlib.contextmanager
def _deadline(seconds: float):
    """TimeoutError if the block runs longer than `seconds` (a hang is a failure, not a stuck test run)."""
    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s: the graph walk does not end")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _cyclic(kind: str):
    """A 2-layer model made malformed with onnx.helper: layer 1's own Y fed back into what it reads."""
    spec = LSTMSpec(input_size=3, hidden_size=3, num_layers=2)
    proto = ORT.export_model(CanonicalLSTM.random(spec))
    second = _lstm_node(proto, 1)
    if kind == "redefinition":  # an Identity re-defines the tensor layer 1 reads (the reported hang)
        proto.graph.node.append(helper.make_node("Identity", ["lstm_1.Y"], [second.input[0]], name="again"))
    else:  # layer 1 reads z = Identity(Identity(its own Y)): a cycle with every tensor defined once
        second.input[0] = "z"
        proto.graph.node.extend([helper.make_node("Identity", ["lstm_1.Y"], ["w"], name="loop_a"),
                                 helper.make_node("Identity", ["w"], ["z"], name="loop_b")])
    return proto, spec


@pytest.mark.parametrize("kind, message", [
    ("redefinition", r"node 'again' \(Identity\) re-defines tensor 'lstm_0.out', already the output of node "
                     r"<unnamed Reshape>"),
    ("cycle", r"node 'lstm_1' \(LSTM\) reads its own output through a cycle \('lstm_1' \(LSTM\) -> 'loop_a' "
              r"\(Identity\) -> 'loop_b' \(Identity\) -> 'lstm_1' \(LSTM\)\)"),
])
def test_a_cyclic_graph_is_a_named_error_not_a_hang(kind, message):
    proto, spec = _cyclic(kind)
    with _deadline(10), pytest.raises(ValueError, match=message):
        ORT.import_(proto, spec)
    with _deadline(10), pytest.raises(ValueError, match=message):
        ORT.import_(proto.SerializeToString(), spec, select="lstm_0")  # select= walks the same chain


def _w_computed_by(kind: str):
    """A real export (input 3, hidden 3) whose LSTM node's W is computed, not stored, by a crafted expression."""
    from onnx import numpy_helper

    spec = LSTMSpec(input_size=3, hidden_size=3)
    proto = ORT.export_model(CanonicalLSTM.random(spec))

    def const(name, value):
        return helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(np.asarray(value)))

    if kind == "ConstantOfShape":  # 12e12 float32 zeros
        nodes = [const("shape", np.array([1, 12, 10**12], np.int64)),
                 helper.make_node("ConstantOfShape", ["shape"], ["big"], name="big")]
    elif kind == "Identity chain":  # each step within bounds, 20 steps of 960k elements together past them
        nodes = [const("one", np.ones((1, 1, 1), np.float32)), const("shape", np.array([1, 12, 80000], np.int64)),
                 helper.make_node("Expand", ["one", "shape"], ["e0"], name="expand")]
        nodes += [helper.make_node("Identity", [f"e{i}"], [f"e{i + 1}"], name=f"copy{i}") for i in range(20)]
    else:  # NonZero: its output's size depends on the values
        nodes = [const("values", np.ones((1, 12, 3), np.float32)),
                 helper.make_node("NonZero", ["values"], ["where"], name="where"),
                 helper.make_node("Cast", ["where"], ["w"], name="cast", to=onnx.TensorProto.FLOAT)]
    _lstm_node(proto).input[1] = nodes[-1].output[0]
    for n in reversed(nodes):
        proto.graph.node.insert(0, n)
    return proto, spec


@pytest.mark.parametrize("kind, message", [
    ("ConstantOfShape", (r"LSTM node 'lstm_0' input W: 'big' is computed by node 'big' \(ConstantOfShape\), whose "
                         r"output 'big' would hold 12000000000000 elements \[1, 12, 1000000000000\], more than the "
                         r"\d+ the whole file stores \(\+1048576\): not evaluated")),
    ("Identity chain", (r"input W: 'e20' is computed by node 'copy16' \(Identity\), whose output 'e17' takes the "
                        r"expression past \d+ elements in all \(16 x what the file stores\)")),
    ("NonZero", (r"input W: 'w' is computed by node 'where' \(NonZero\), whose output 'where' has a size ONNX's "
                 r"shape inference cannot tell before running it")),
])
def test_a_computed_weight_is_bounded_before_it_is_evaluated(kind, message):
    """A crafted file cannot make the import allocate without bound: every step of a weight's constant expression
    is sized by ONNX's shape inference first, within what the file stores (legit expressions: test above)."""
    proto, spec = _w_computed_by(kind)
    with _deadline(20), pytest.raises(ValueError, match=message):
        ORT.import_(proto, spec)


def test_the_fold_bound_counts_what_the_file_stores():
    """Initializers by their shape; Constant nodes by the values they hold: a tensor by its shape, a list by its
    length, a scalar as one, a sparse tensor by its stored values (not its dense shape, which costs nothing to
    claim)."""
    from onnx import numpy_helper

    from harness.backends.onnx import _Graph

    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.ones(2, np.float32), "v"),
                                       numpy_helper.from_array(np.array([1, 7], np.int64), "i"), [10**6])
    nodes = [helper.make_node("Constant", [], ["t"], value=numpy_helper.from_array(np.ones((2, 2), np.float32))),
             helper.make_node("Constant", [], ["l"], value_ints=[1, 2, 3]),
             helper.make_node("Constant", [], ["f"], value_float=0.5),
             helper.make_node("Constant", [], ["s"], sparse_value=sparse)]
    graph = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info("t", onnx.TensorProto.FLOAT, [2, 2])],
                              [numpy_helper.from_array(np.zeros((3, 4), np.float32), "w")])
    assert _Graph(helper.make_model(graph)).stored_elements() == 12 + 4 + 3 + 1 + 2


@pytest.mark.parametrize("backend", [ORT, REF], ids=["onnx", "onnx-reference"])
def test_run_names_a_bad_input(backend):
    if backend.installed():
        pytest.skip(f"not installed: {backend.installed()}")
    model = CanonicalLSTM.random(SPEC_2BI)
    prepared = backend.prepare(model)
    x, h0, c0 = model.random_inputs(3, 4)
    with pytest.raises(ValueError, match=r"x: expected last dimension input_size=5, got shape \(4, 3, 6\)"):
        backend.run(prepared, np.zeros((4, 3, 6)), h0, c0)
    with pytest.raises(ValueError, match=r"h0: expected shape \(4, 3, 7\)"):
        backend.run(prepared, x, h0[:2], c0)


def test_build_model_refuses_a_bad_layout():
    from harness.backends.onnx import build_model

    native = ORT.export(CanonicalLSTM.random(SPEC_2BI), np.float32)
    with pytest.raises(ValueError, match="layout must be 0"):
        build_model(native, layout=2)
    with pytest.raises(ValueError, match="layout=1 .* needs batch_first=True"):
        build_model(native, layout=1)


# Running ---------------------------------------------------------------------------------------
def test_a_prepared_model_builds_each_session_once(monkeypatch):
    _ort_or_skip()
    built = []
    compile_ = ORT.compile
    monkeypatch.setattr(ORT, "compile", lambda proto, device="cpu": built.append(proto) or compile_(proto, device))
    model = CanonicalLSTM.random(SPEC_2BI)
    prepared = ORT.prepare(model)
    x, h0, c0 = model.random_inputs(3, 4)
    first = ORT.run(prepared, x.astype(np.float32), h0, c0)
    second = ORT.run(prepared, x.astype(np.float32), h0, c0)
    assert len(built) == 1 and all(np.array_equal(a, b) for a, b in zip(first, second))
    ORT.run(prepared, x.transpose(1, 0, 2), None, None, batch_first=True)
    assert len(built) == 2


# What each runtime lacks: declared, and still true ---------------------------------------------
def test_onnxruntime_gaps_are_declared_not_crashed_into():
    assert "float64" in ORT.supports(SPEC_2BI, "float64")
    assert REF.supports(SPEC_2BI, "float64") is None
    assert ORT.layout_for_batch_first == 0 and REF.layout_for_batch_first == 1


def test_declared_onnxruntime_gaps_still_hold():
    """If this fails, onnxruntime gained float64 or layout=1 LSTMs: update OnnxBackend.lacks and capabilities."""
    _ort_or_skip()
    model = CanonicalLSTM.random(SPEC_2BI)
    x, h0, c0 = model.random_inputs(3, 4)
    run64 = ORT.compile(REF.export_model(model, "float64"))  # the session builds ...
    with pytest.raises(Exception, match="does not support double"):  # ... and running it fails
        run64({"x": x, "h0": h0, "c0": c0})
    with pytest.raises(Exception, match="layout"):
        ORT.compile(REF.export_model(model, "float32", batch_first=True))


@pytest.mark.parametrize("attribute, edit", [
    ("clip", _set("clip", 0.05)),
    ("activations", _set("activations", ["Sigmoid", "Relu", "Tanh"])),
    ("input_forget", _set("input_forget", 1)),
    ("sequence_lens", _sequence_lens),
])
def test_declared_reference_gaps_still_hold(attribute, edit):
    """ReferenceEvaluator ignores these (onnxruntime applies them). If this fails, it implements one now:
    update OnnxReferenceBackend.lacks."""
    assert attribute in REF.lacks
    model = CanonicalLSTM.random(LSTMSpec(input_size=5, hidden_size=7))
    feeds = {"x": np.random.default_rng(0).uniform(-3, 3, (6, 2, 5)).astype(np.float32)}
    plain = REF.export_model(model, initial_state=False)
    edited = REF.export_model(model, initial_state=False)
    edit(edited)
    edited_feeds = {**feeds, "seq_lens": np.array([3, 6], np.int32)} if attribute == "sequence_lens" else feeds
    assert np.array_equal(REF.compile(plain)(feeds)[0], REF.compile(edited)(edited_feeds)[0])
    if not ORT.installed():
        assert not np.allclose(ORT.compile(plain)(feeds)[0], ORT.compile(edited)(edited_feeds)[0])


def test_the_cuda_provider_is_asked_for_and_a_silent_cpu_fallback_is_refused(monkeypatch):
    """onnxruntime builds a session on the CPU without a word when the CUDA provider cannot load:
    the backend must notice instead of reporting CPU numbers as GPU ones."""
    _ort_or_skip()
    import onnxruntime as ort

    asked = []

    class FallsBack:
        def __init__(self, data, options, providers):
            asked.append(providers)

        def get_providers(self):
            return ["CPUExecutionProvider"]

    monkeypatch.setattr(ort, "InferenceSession", FallsBack)
    proto = ORT.export_model(CanonicalLSTM.random(SPEC_2BI))
    with pytest.raises(RuntimeError, match=r"built the session on \['CPUExecutionProvider'\], not CUDAExecutionProvider"):
        ORT.compile(proto, device="cuda")
    assert asked[0][0][0] == "CUDAExecutionProvider" and asked[0][0][1]["use_tf32"] == "0"  # exact mode
    assert ORT.device_missing("cuda") is None or "CUDAExecutionProvider" in ORT.device_missing("cuda")
