"""`convert --check`'s verdict (harness.port_check.check): OUT is held to the float64 oracle on SRC, never to
itself, by the oracle on OUT and by each framework that runs a file; here the frameworks are framework-free
stand-ins (verdict_fakes.Recording, and a runner of its own for a file family).
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import backends, conditioning, port_check
from harness.canonical import CanonicalLSTM
from harness.port_check import Side, check, inputs_for
from harness.readers import Source
from harness.spec import LSTMSpec
from verdict_fakes import Recording, shift

SPEC = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, forget_bias=0.5)


@pytest.fixture
def source() -> CanonicalLSTM:
    return CanonicalLSTM.random(SPEC, 6)


def wrong(model: CanonicalLSTM) -> CanonicalLSTM:
    """OUT that does not hold SRC's function: one recurrent weight of the last layer off by 0.05."""
    model = model.copy()
    model.weights[(1, 0)].W_hh[3, 2] += 0.05
    return model


def canonical(model: CanonicalLSTM) -> Source:
    return Source(model, ".npz")


def run_check(source_model, out_model, target="numpy", out_dtype="float32", src_name="numpy", src=None, **kw):
    lines = []
    ok = check(src or canonical(source_model), source_model, src_name, canonical(out_model), out_model, target,
               out_dtype, echo=lines.append, **kw)
    return ok, "\n".join(lines)


@pytest.fixture
def target(monkeypatch):
    """Register a stand-in under the name 'stand-in' (no runner of its own: OUT runs through the backend)."""
    def use(backend: Recording) -> str:
        monkeypatch.setitem(backends._REGISTRY, "stand-in", "verdict_fakes:Recording")
        monkeypatch.setitem(backends._INSTANCES, "stand-in", backend)
        return "stand-in"
    return use


@pytest.fixture
def comparisons(monkeypatch):
    """Every Comparison check() makes, in order: SRC's and OUT's sides (where they ran), then the oracle on OUT's."""
    made, real = [], port_check.compare

    def spy(*args, **kw):
        made.append(real(*args, **kw))
        return made[-1]
    monkeypatch.setattr(port_check, "compare", spy)
    return made


def test_an_out_that_holds_src_passes_exactly(source, comparisons):
    ok, text = run_check(source, source.rounded("float32"))
    assert ok is True and "check: agree" in text
    (by_oracle,) = comparisons  # both sides are canonical files: the oracle itself, not run again
    assert by_oracle.ok and max(p.max_abs for p in by_oracle.paths) > 0  # float32 OUT vs float64 SRC: close
    ok, _ = run_check(source, source, out_dtype="float64")  # float64 throughout: the same numbers
    assert ok is True and max(p.max_abs for p in comparisons[-1].paths) == 0.0


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_an_out_that_differs_from_src_fails(source, dt):
    """The expected outputs come from SRC: computed from OUT, a wrong OUT would agree with itself."""
    ok, text = run_check(source, wrong(source.rounded(dt)), out_dtype=dt)
    assert ok is False and "check: DISAGREE" in text


def test_float64_is_judged_in_float64_only_when_every_side_is(source):
    out = source.rounded("float32")
    assert run_check(source, out, out_dtype="float32")[0] is True  # within float32's bound
    assert run_check(source, out, out_dtype="float64")[0] is False  # float32 weights are not float64's
    stored32 = Source({"w": np.zeros(2, np.float32)}, ".npz")  # SRC stored in float32: judged in float32
    assert run_check(source, out, out_dtype="float64", src=stored32)[0] is True


def test_the_target_runs_outs_weights_and_is_held_to_src(source, target):
    out = source.rounded("float32").fold_forget_bias()  # the same function, other weights: OUT's are run
    stand_in = Recording()
    ok, text = run_check(source, out, target(stand_in))
    assert ok is True and "oracle(OUT)" in text
    (ran, dtype, device), = stand_in.prepared
    assert ran == out and ran != source.rounded("float32") and (dtype, device) == ("float32", "cpu")
    (x, h0, c0, batch_first), = stand_in.inputs
    assert x.shape == (6, 3, SPEC.input_size) and x.dtype == np.float32 and not batch_first
    assert np.abs(h0).max() > 0 and np.abs(c0).max() > 0


def test_a_target_disagreeing_with_src_fails_even_when_out_is_right(source, target):
    ok, text = run_check(source, source.rounded("float32"), target(Recording(shift("c_n", 1e-3, index=(1, 2, 3)))))
    assert ok is False and "[2] OUT" in text


def test_a_target_running_a_wrong_out_fails(source, target):
    assert run_check(source, wrong(source.rounded("float32")), target(Recording()))[0] is False


def test_a_raising_target_fails(source, target):
    ok, text = run_check(source, source.rounded("float32"), target(Recording(raises=RuntimeError("boom"))))
    assert ok is False and "error: RuntimeError: boom" in text


@pytest.mark.parametrize("kw", [{"unsupported": "cannot"}, {"not_installed": "gone"}])
def test_a_target_that_cannot_run_leaves_the_oracles_verdict(source, target, kw):
    assert run_check(source, source.rounded("float32"), target(Recording(**kw)))[0] is True
    ok, text = run_check(source, wrong(source.rounded("float32")), target(Recording(**kw)))
    assert ok is False and "skipped: SRC, OUT" in text


def test_a_file_runner_runs_src_and_out_from_their_files(source, target, monkeypatch, comparisons):
    """A family with a runner of its own (torch, keras, onnx, flax): SRC and OUT each run from their file."""
    seen = []

    def runner(src, spec, xs, dtype, backend):
        seen.append((src.native, dtype))
        return src.native.forward(*xs), "ran from the file"
    monkeypatch.setitem(port_check.RUNNERS, "stand-in", ("the stand-in's loader", runner))
    out = source.rounded("float32")
    ok, text = run_check(source, out, target(Recording()), src_name=target(Recording()))
    assert ok is True and [n for n, _ in seen] == [source, out] and {d for _, d in seen} == {"float32"}
    assert len(comparisons) == 3 and "the stand-in's loader (stand-in); ran from the file" in text

    def broken(src, spec, xs, dtype, backend):
        return src.native.forward(*xs)._replace(h_n=src.native.forward(*xs).h_n + 1e-3), ""
    monkeypatch.setitem(port_check.RUNNERS, "stand-in", ("the stand-in's loader", broken))
    assert run_check(source, out, "stand-in", src_name="stand-in")[0] is False

    def missing(src, spec, xs, dtype, backend):
        raise ImportError("no stand-in here")
    monkeypatch.setitem(port_check.RUNNERS, "stand-in", ("the stand-in's loader", missing))
    ok, text = run_check(source, out, "stand-in", src_name="stand-in")
    assert ok is True and "skipped: not installed: ImportError: no stand-in here" in text
    assert run_check(source, wrong(out), "stand-in", src_name="stand-in")[0] is False


def test_a_src_without_a_loader_of_its_own_is_seen_through_the_harness_only(source, target):
    ok, text = run_check(source, source.rounded("float32"), "numpy", src_name=target(Recording()))
    assert ok is True and "no loader of stand-in's own is wired here" in text


def test_the_oracles_sensitivity_on_src_widens_every_comparison(source, target, comparisons, monkeypatch):
    asked = []

    def sensitivity(model, inputs, expected, dtype, *, batch_first=False):
        asked.append((model, inputs, expected, dtype))
        return 1e-3
    monkeypatch.setattr(conditioning, "sensitivity", sensitivity)
    run_check(source, source.rounded("float32"), target(Recording()))
    (model, (x, h0, c0), expected, dtype), = asked
    assert model is source and dtype == "float32" and x.shape == (6, 3, SPEC.input_size)
    assert all(np.array_equal(a, a.astype(np.float32)) for a in (x, h0, c0))
    assert [c.tolerance.atol for c in comparisons] == [10 * 1e-3, 10 * 1e-3]


def test_a_non_finite_src_compares_the_weights_instead(source):
    nan = source.copy()
    nan.weights[(0, 0)].W_ih[0, 0] = np.nan
    ok, text = run_check(nan, nan.rounded("float32"))
    assert ok is True and "SRC itself is non-finite" in text and "OUT holds SRC's weights" in text
    assert run_check(nan, wrong(nan.rounded("float32")))[0] is False


def test_the_inputs_are_random_with_a_nonzero_state_or_the_users_rounded(tmp_path):
    (x, h0, c0), origin = inputs_for(SPEC, None, "float32")
    assert x.shape == (6, 3, 5) and origin == "random, nonzero h0 and c0" and np.abs(c0).max() > 0
    assert all(a.dtype == np.float64 and np.array_equal(a, a.astype(np.float32)) for a in (x, h0, c0))
    np.save(tmp_path / "x.npy", np.full((4, 2, 5), 0.1))
    (x, h0, c0), origin = inputs_for(SPEC, str(tmp_path / "x.npy"), "float32")
    assert x.shape == (4, 2, 5) and x[0, 0, 0] == np.float32(0.1) and not h0.any() and not c0.any()
    assert origin == "from x.npy, zero h0 and c0"
    (x64, _, _), _ = inputs_for(SPEC, str(tmp_path / "x.npy"), "float64")
    assert x64[0, 0, 0] == 0.1
    np.savez(tmp_path / "in.npz", x=np.ones((3, 1, 5)), h0=np.ones((2, 1, 7)), c0=np.ones((2, 1, 7)))
    (x, h0, c0), origin = inputs_for(SPEC, str(tmp_path / "in.npz"), "float32")
    assert origin == "from in.npz" and h0.all() and c0.all()
    for bad in ("in.txt",):
        with pytest.raises(ValueError, match="--inputs"):
            inputs_for(SPEC, str(tmp_path / bad), "float32")
    np.savez(tmp_path / "odd.npz", y=np.ones((3, 1, 5)))
    with pytest.raises(ValueError, match="must hold x"):
        inputs_for(SPEC, str(tmp_path / "odd.npz"), "float32")


def test_a_side_is_ok_unless_it_failed_or_raised():
    assert Side("a", "b").ok and not Side("a", "b", error="boom").ok and Side("a", "b", skipped="why").ok


class Payload:
    """Unpickling this creates `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (self.marker,))


def test_the_users_inputs_are_read_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled-here"
    evil = np.empty(1, dtype=object)
    evil[0] = Payload(marker)
    np.save(tmp_path / "x.npy", evil, allow_pickle=True)
    np.savez(tmp_path / "x.npz", x=evil)
    for name in ("x.npy", "x.npz"):
        with pytest.raises(ValueError):
            inputs_for(SPEC, str(tmp_path / name), "float32")
    np.savez(tmp_path / "lengths.npz", x=np.ones((4, 1, 5)), lengths=evil)  # diagnose's lengths beside x
    with pytest.raises(ValueError, match="allow_pickle"):
        port_check.stored_lengths(str(tmp_path / "lengths.npz"))
    assert not marker.exists()


def test_the_users_inputs_are_what_the_framework_runs(source, target, tmp_path):
    np.savez(tmp_path / "in.npz", x=np.full((4, 2, 5), 0.25))
    stand_in = Recording()
    ok, text = run_check(source, source.rounded("float32"), target(stand_in), inputs=str(tmp_path / "in.npz"))
    assert ok is True and "from in.npz, zero h0 and c0" in text
    (x, h0, c0, _), = stand_in.inputs
    assert x.shape == (4, 2, 5) and (x == np.float32(0.25)).all()
    assert h0.shape == (2, 2, 7) and c0.shape == (2, 2, 7) and not h0.any() and not c0.any()


def test_an_inputs_file_with_other_arrays_or_only_x(tmp_path):
    np.savez(tmp_path / "extra.npz", x=np.ones((3, 2, 5)), mask=np.ones(3))
    with pytest.raises(ValueError, match=r"must hold x \(and optionally h0, c0\); holds \['x', 'mask'\]"):
        inputs_for(SPEC, str(tmp_path / "extra.npz"), "float32")
    np.savez(tmp_path / "only.npz", x=np.ones((3, 2, 5)))
    (x, h0, c0), origin = inputs_for(SPEC, str(tmp_path / "only.npz"), "float32")
    assert origin == "from only.npz, zero h0 and c0" and h0.shape == (2, 2, 7) and c0.shape == (2, 2, 7)


def test_lengths_in_an_inputs_file_are_diagnoses_only(tmp_path):
    """An .npz holding lengths beside x: read with lengths_key (diagnose, through stored_lengths), otherwise refused
    naming where lengths go (convert --check runs every sequence in full)."""
    x = np.ones((4, 2, 5))
    np.savez(tmp_path / "ragged.npz", x=x, lengths=np.array([4, 2]))
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ValueError, match=r"^--inputs: ragged.npz must hold x \(and optionally h0, c0\); holds "
                                         r"\['x', 'lengths'\]; per-example lengths are diagnose's \(its --lengths, "
                                         r"or lengths in its --inputs\): --check runs every sequence in full"):
        inputs_for(SPEC, str(tmp_path / "ragged.npz"), "float32")
    (got, h0, c0), origin = inputs_for(SPEC, str(tmp_path / "ragged.npz"), "float32", lengths_key=True)
    assert np.array_equal(got, x) and origin == "from ragged.npz, zero h0 and c0" and h0.shape == (2, 2, 7)
    np.savez(tmp_path / "extra.npz", x=x, lengths=np.array([4, 2]), mask=np.ones(4))
    with pytest.raises(ValueError, match=r"must hold x \(and optionally h0, c0, lengths\); holds \['x', 'lengths', "
                                         r"'mask'\]$"):
        inputs_for(SPEC, str(tmp_path / "extra.npz"), "float32", lengths_key=True)
    stored = port_check.stored_lengths(str(tmp_path / "ragged.npz"))
    assert stored.tolist() == [4, 2] and stored.dtype.kind == "i"
    assert port_check.stored_lengths(str(tmp_path / "x.npy")) is None and port_check.stored_lengths(None) is None
    np.savez(tmp_path / "plain.npz", x=x)
    assert port_check.stored_lengths(str(tmp_path / "plain.npz")) is None


@pytest.fixture
def runner(monkeypatch):
    """A file runner of its own for the stand-in's family; `calls` records what it was given."""
    calls = []

    def use(behaviour=None):
        def run(src, spec, xs, dtype, backend):
            calls.append((src.native, spec, dtype, backend))
            out = src.native.forward(*xs)
            return (behaviour(out) if behaviour else out), "ran from the file"
        monkeypatch.setitem(port_check.RUNNERS, "stand-in", ("the stand-in's loader", run))
        return calls
    return use


def test_a_file_runner_is_handed_the_spec_dtype_and_backend(source, target, runner):
    calls = runner()
    out = source.rounded("float32")
    assert run_check(source, out, target(Recording()), src_name="stand-in")[0] is True
    assert [(n, s, d, b) for n, s, d, b in calls] == [(source, SPEC, "float32", "stand-in"),
                                                      (out, out.spec, "float32", "stand-in")]


def test_a_framework_that_is_not_installed_is_a_skip_never_a_run(source, target, runner):
    calls = runner()
    ok, text = run_check(source, source.rounded("float32"), target(Recording(not_installed="gone")),
                         src_name="stand-in")
    assert ok is True and not calls and text.count("skipped: not installed: gone") == 2


def test_a_raising_file_runner_fails_naming_the_error(source, target, monkeypatch):
    def boom(src, spec, xs, dtype, backend):
        raise RuntimeError("x" * 400 + "\nsecond line")
    monkeypatch.setitem(port_check.RUNNERS, "stand-in", ("the stand-in's loader", boom))
    ok, text = run_check(source, source.rounded("float32"), target(Recording()), src_name="stand-in")
    assert ok is False and "error: RuntimeError: " + "x" * 286 + "\n" in text + "\n"  # the first line, 300 characters
    assert "second line" not in text


def test_a_raising_backend_error_is_cut_to_300_characters(source, target):
    ok, text = run_check(source, source.rounded("float32"), target(Recording(raises=RuntimeError("y" * 400))))
    assert ok is False and "error: RuntimeError: " + "y" * 286 + "\n" in text + "\n"


def test_a_dtype_the_target_lacks_is_a_skip(source, target):
    from harness.backends import Capabilities

    stand_in = Recording(capabilities=Capabilities(dtypes=("float64",)))
    ok, text = run_check(source, source.rounded("float32"), target(stand_in))
    assert ok is True and not stand_in.prepared and "does not support dtype float32" in text


def test_the_sensitivity_widens_the_file_runners_comparisons_too(source, target, runner, comparisons, monkeypatch):
    runner()
    monkeypatch.setattr(conditioning, "sensitivity", lambda *a, **kw: 1e-3)
    run_check(source, source.rounded("float32"), target(Recording()), src_name="stand-in")
    assert [c.tolerance.atol for c in comparisons] == [10 * 1e-3] * 3  # SRC's, OUT's and the oracle on OUT's


def test_a_src_with_fixed_lengths_is_checked_on_full_sequences_and_says_so(source):
    from dataclasses import replace

    fixed = replace(source, fixed_lengths=(6, 2, 4))
    ok, text = run_check(fixed, replace(source.rounded("float32"), fixed_lengths=(6, 2, 4)))
    assert ok is True
    assert "check: SRC fixes its sequence lengths to [6, 2, 4]" in text
    assert "[1] SRC: numpy -- skipped: it runs only with its fixed lengths [6, 2, 4]" in text
    assert run_check(fixed, wrong(source.rounded("float32")))[0] is False
