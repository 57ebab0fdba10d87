"""The JAX backends beyond the agreement matrix (cases/test_agreement.py runs every catalogue case on them).

- native <-> canonical round trips are exact, for every backend and cell kind;
- trees made by the frameworks' own init (flax.linen, flax.nnx, equinox, jax.experimental.rnn) import, and
  the frameworks' own modules then agree with the oracle on the imported weights;
- PyTorch weights with two biases go into Flax (one, hidden-side bias) and back, and still agree;
- the OptimizedLSTMCell variants agree with the oracle too;
- float64 is really float64 (a run that computed in float32 is caught), and turns JAX's x64 switch on
  only for its own duration (Keras in the same process is unaffected);
- compilation happens once per shape, not once per run;
- bad input gets an error that names what is wrong.
A test taking `dtype` runs once per --dtype (conftest.py).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from harness import backends, catalogue, extras
from harness.backends import UnsupportedFeature, convert
from harness.canonical import CanonicalLSTM
from harness.compare import tolerance_for
from harness.results import PASS
from harness.runner import run_case
from harness.spec import LSTMSpec

JAX_SUBJECTS = ["jax", "flax", "flax-nnx", "equinox"]  # jax-cudnn runs on a GPU only
LSTMCELL, OPTIMIZED = "LSTMCell", "OptimizedLSTMCell"
TOL32 = tolerance_for("float32")
# The catalogue's sizes (input 5, hidden 7): shapes the agreement tests compiled already.
BIDI2 = LSTMSpec(input_size=5, hidden_size=7, num_layers=2, bidirectional=True)  # both biases
FULL = BIDI2.replace(proj_size=4, peephole=True, forget_bias=0.5, cell_clip=0.6, proj_clip=0.3)


def backend(name: str, cell: str | None = None):
    b = backends.get(name)
    reason = b.installed()
    if reason:
        pytest.skip(f"not installed: {reason}")
    return b if cell is None or cell == getattr(b, "cell", None) else type(b)(cell)


def assert_close(actual, expected, what: str):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=TOL32.rtol, atol=TOL32.atol,
                               err_msg=what)


def x_batch_major(spec: LSTMSpec, batch=3, steps=6, seed=5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (batch, steps, spec.input_size)).astype(np.float32)


# Round trips ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, cell", [("jax", None), ("flax", None), ("flax-nnx", LSTMCELL),
                                        ("flax-nnx", OPTIMIZED), ("equinox", None), ("jax-cudnn", None)])
def test_native_round_trip_is_exact(name, cell, dtype):
    b = backend(name, cell)
    spec = FULL if name == "jax" else BIDI2.replace(forget_bias=0.5)  # folded by all but jax
    model = CanonicalLSTM.random(spec, seed=3).rounded(dtype)
    native = b.export(model, dtype=dtype)
    import jax

    assert {np.asarray(a).dtype for a in jax.tree_util.tree_leaves(native)} == {np.dtype(dtype)}
    adapted = b.adapt(model)
    assert bool(adapted.folded) == (name != "jax")  # jax holds every feature; the others fold forget_bias
    # exact, every array bit for bit (what folding summed in float64 is rounded to the run's dtype once)
    assert b.import_(native, adapted.spec) == adapted.rounded(dtype)


def test_nnx_export_writes_the_cell_asked_for():
    from harness.backends import _flax_trees

    b = backend("flax-nnx")
    model = CanonicalLSTM.random(BIDI2.replace(bias="single"), seed=1)
    for cell in (LSTMCELL, OPTIMIZED):
        native = b.export(model, cell=cell)
        assert _flax_trees.from_tree(_flax_trees.NNX, native, model.spec)[1] == {cell}
    with pytest.raises(ValueError, match="cell: expected"):
        b.export(model, cell="GRUCell")


# Trees from the frameworks' own init, run by the frameworks' own modules ----------------------------
# The trees' structure comes from the frameworks' own init, traced with jax.eval_shape (running linen's
# init costs seconds of compilation here), and their values are random, biases included, so a bias or
# gate in the wrong place shows.
def filled(tree, seed=0):
    import jax

    rng = np.random.default_rng(seed)

    def value(s):
        if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key):  # nnx's Rngs state
            return jax.random.key(seed)
        if jax.dtypes.issubdtype(s.dtype, np.floating):
            return rng.uniform(-0.6, 0.6, s.shape).astype(s.dtype)
        return np.zeros(s.shape, s.dtype)

    return jax.tree_util.tree_map(value, tree)


@pytest.mark.parametrize("cell", [LSTMCELL, OPTIMIZED])
@pytest.mark.parametrize("spec", [BIDI2.replace(bias="single"), LSTMSpec(input_size=5, hidden_size=7, bias="single")],
                         ids=["bidirectional-2layer", "one-rnn"])
def test_flax_linen_init_tree_imports_and_agrees(spec, cell):
    b = backend("flax")
    import flax.linen as nn
    import jax

    C = getattr(nn, cell)
    layer = (lambda: nn.Bidirectional(nn.RNN(C(7)), nn.RNN(C(7)))) if spec.bidirectional else (lambda: nn.RNN(C(7)))
    module = nn.Sequential([layer() for _ in range(spec.num_layers)]) if spec.num_layers > 1 else layer()
    x = x_batch_major(spec)
    variables = filled(jax.eval_shape(module.init, jax.random.key(0), x))
    model = b.import_(variables, spec)
    assert_close(jax.jit(module.apply)(variables, x), model.forward(x, batch_first=True).y, f"flax.linen {cell} vs oracle")
    exported = b.export(model)  # the same tree, array for array
    assert jax.tree_util.tree_structure(dict(exported)) == jax.tree_util.tree_structure(dict(variables))
    assert all(jax.tree_util.tree_leaves(jax.tree_util.tree_map(np.array_equal, dict(exported), dict(variables))))


@pytest.mark.parametrize("cell", [LSTMCELL, OPTIMIZED])
def test_flax_nnx_module_imports_and_agrees(cell):
    b = backend("flax-nnx")
    import jax
    from flax import nnx

    spec = BIDI2.replace(bias="single")
    C = getattr(nnx, cell)

    def build():
        rngs = nnx.Rngs(0)
        rnn = lambda k: nnx.RNN(C(spec.layer_input_size(k), spec.hidden_size, rngs=rngs))  # noqa: E731
        return nnx.Sequential(*[nnx.Bidirectional(rnn(k), rnn(k)) for k in range(spec.num_layers)])

    graphdef, params, rest = nnx.split(nnx.eval_shape(build), nnx.Param, ...)
    rest = filled(rest)  # the RNNs' rng state
    module = nnx.merge(graphdef, filled(params), rest)
    model = b.import_(module, spec)  # from the module itself, its nnx.State and its pure dict alike
    state = nnx.state(module, nnx.Param)
    assert b.import_(state, spec) == model == b.import_(nnx.to_pure_dict(state), spec)
    x = x_batch_major(spec)
    run = jax.jit(lambda params, x, rest: nnx.merge(graphdef, params, rest)(x))  # noqa: E731
    y = run(state, x, rest)
    assert_close(y, model.forward(x, batch_first=True).y, f"flax.nnx {cell} vs oracle")
    other = nnx.merge(graphdef, filled(params, seed=1), rest)  # other weights, replaced by the export
    nnx.update(other, b.export(model, cell=cell))
    np.testing.assert_array_equal(np.asarray(run(nnx.state(other, nnx.Param), x, rest)), np.asarray(y))


def test_equinox_cells_import_and_agree():
    b = backend("equinox")
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    spec = BIDI2.replace(bias="single")
    cells = [filled(eqx.filter_eval_shape(eqx.nn.LSTMCell, spec.layer_input_size(k), spec.hidden_size,
                                          key=jax.random.key(0)), seed=i) for i, (k, _) in enumerate(spec.units())]
    assert all(type(c) is eqx.nn.LSTMCell for c in cells)
    model = b.import_(cells, spec)
    assert b.import_(b.export(model), spec) == model
    # One cell, scanned the way Equinox's docs scan it (one example, one step), over the batch, vs the oracle.
    one = LSTMSpec(input_size=5, hidden_size=7, bias="single")
    x = x_batch_major(one)
    cell = cells[0]

    @jax.jit
    def run(xs):  # xs [T, in] for one example
        def scan_fn(state, x_t):
            state = cell(x_t, state)
            return state, state[0]

        zeros = jnp.zeros(cell.hidden_size)
        return jax.lax.scan(scan_fn, (zeros, zeros), xs)

    (h, c), ys = jax.vmap(run)(x)
    expected = b.import_(cell, one).forward(x, batch_first=True)
    assert_close(ys, expected.y, "equinox cell vs oracle")
    assert_close(c, expected.c_n[0], "equinox final c vs oracle")


def test_jax_cudnn_weight_vector_is_jax_experimental_rnn_layout():
    """The flat vector's layout, checked on the CPU by JAX's own unpacker and reference LSTM."""
    b = backend("jax-cudnn")
    import jax
    import jax.numpy as jnp
    from jax.experimental import rnn

    spec = BIDI2
    weights = rnn.init_lstm_weight(jax.random.key(0), spec.input_size, spec.hidden_size, spec.num_layers, True)
    model = b.import_(weights, spec)
    x = x_batch_major(spec)
    _, h0, c0 = model.random_inputs(x.shape[0], x.shape[1], seed=2)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    unpacked = rnn.unpack_lstm_weights(weights, spec.input_size, spec.hidden_size, spec.num_layers, True)
    y, h_n, c_n = rnn.lstm_ref(f32(x), f32(h0), f32(c0), *unpacked, jnp.full((x.shape[0],), x.shape[1], jnp.int32),
                               spec.input_size, spec.hidden_size, spec.num_layers, 0.0, True)
    expected = model.forward(x, h0.astype(np.float32), c0.astype(np.float32), batch_first=True)
    for got, want, what in zip((y, h_n, c_n), expected, ("y", "h_n", "c_n")):
        assert_close(got, want, f"jax.experimental.rnn.lstm_ref {what} vs oracle")
    np.testing.assert_array_equal(b.export(model), np.asarray(weights))


def test_jax_cudnn_support_follows_the_devices():
    b = backend("jax-cudnn")
    spec = catalogue.get_case("plain").spec
    assert "no CPU lowering" in b.supports(spec, "float32", "cpu")
    assert "float64" in b.supports(spec, "float64", "cuda")
    assert "projection" in b.supports(spec.replace(proj_size=4), "float32", "cuda")
    assert b.supports(spec, "float32", "cuda") is None
    import jax

    has_gpu = any(d.platform == "gpu" for d in jax.devices())
    assert (b.device_missing("cuda") is None) == has_gpu


# Conversion: PyTorch's two biases into Flax's one, and back ------------------------------------------
@pytest.mark.parametrize("flax_name", ["flax", "flax-nnx"])
def test_torch_double_bias_into_flax_and_back(flax_name):
    torch = pytest.importorskip("torch", reason=extras.skip_reason("torch"))
    backend(flax_name)
    spec = BIDI2  # bias="double": torch.nn.LSTM's bias_ih and bias_hh, both nonzero from torch's init
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True)
    state = {k: v.detach().numpy().copy() for k, v in lstm.state_dict().items()}
    x = x_batch_major(spec)
    with torch.no_grad():
        y_torch = lstm(torch.from_numpy(x))[0].numpy()

    native = convert(state, "torch", flax_name, spec)
    assert any("b_ih + b_hh" in f for f in native.folded)
    y_flax = _run_flax_module(flax_name, native, spec, x)
    assert_close(y_flax, y_torch, f"{flax_name} (converted from torch) vs torch")

    back = convert(native, flax_name, "torch", spec.replace(bias="single"))
    for k in range(2):  # the function is kept, not the parameterisation: both biases now sit in bias_ih
        summed = state[f"bias_ih_l{k}"].astype(np.float64) + state[f"bias_hh_l{k}"].astype(np.float64)
        np.testing.assert_array_equal(back[f"bias_ih_l{k}"], summed.astype(np.float32))  # summed exactly, rounded once
        assert not back[f"bias_hh_l{k}"].any()
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()}, strict=True)
    with torch.no_grad():
        assert_close(lstm(torch.from_numpy(x))[0].numpy(), y_torch, "torch (back from flax) vs torch")


def _run_flax_module(flax_name, native, spec, x):
    """The framework's own stacked bidirectional module, loaded with `native` (structure from eval_shape)."""
    import jax

    if flax_name == "flax":
        import flax.linen as nn

        rnn = lambda: nn.RNN(nn.LSTMCell(spec.hidden_size))  # noqa: E731
        return jax.jit(nn.Sequential([nn.Bidirectional(rnn(), rnn()) for _ in range(spec.num_layers)]).apply)(native, x)
    from flax import nnx

    def build():
        rnn = lambda k: nnx.RNN(nnx.LSTMCell(spec.layer_input_size(k), spec.hidden_size, rngs=nnx.Rngs(1)))  # noqa: E731
        return nnx.Sequential(*[nnx.Bidirectional(rnn(k), rnn(k)) for k in range(spec.num_layers)])

    graphdef, params, rest = nnx.split(nnx.eval_shape(build), nnx.Param, ...)
    module = nnx.merge(graphdef, filled(params), filled(rest))
    nnx.update(module, native)  # how a user loads the exported tree
    return jax.jit(lambda p, r, x: nnx.merge(graphdef, p, r)(x))(*nnx.split(module, nnx.Param, ...)[1:], x)


# The OptimizedLSTMCell variants through the same runner as the matrix --------------------------------
@pytest.mark.parametrize("case_name", ["plain", "cudnn-double-bias"])  # one layer; stacked, bidirectional, 2 biases
@pytest.mark.parametrize("name", ["flax", "flax-nnx"])
def test_optimized_cell_agreement(name, case_name, dtype):
    variant = backend(name, OPTIMIZED)
    r = run_case(catalogue.get_case(case_name), name, dtype, backend=variant).result
    assert r.status == PASS, r.reason
    assert r.environment["cell"].endswith(OPTIMIZED)


# float64 and the x64 switch ------------------------------------------------------------------------
@pytest.mark.parametrize("name", JAX_SUBJECTS)
def test_float64_is_float64_and_x64_stays_scoped(name):
    backend(name)
    import jax

    before = jax.config.jax_enable_x64
    case = catalogue.get_case("plain")
    out64 = run_case(case, name, "float64")
    assert out64.result.status == PASS, out64.result.reason
    assert {a.dtype for a in out64.actual} == {np.dtype("float64")}
    assert out64.result.worst_abs < 1e-13  # float32 arithmetic would leave ~1e-7
    assert jax.config.jax_enable_x64 == before
    out32 = run_case(case, name, "float32")
    assert {a.dtype for a in out32.actual} == {np.dtype("float32")}


@pytest.mark.filterwarnings("ignore:Explicitly requested dtype float64")
@pytest.mark.parametrize("name", JAX_SUBJECTS)
def test_float64_run_in_float32_is_caught(name, monkeypatch):
    """Without the x64 scope JAX silently truncates float64 to float32: the output check must refuse it."""
    backend(name)
    import jax

    if jax.config.jax_enable_x64:
        pytest.skip("JAX x64 is on for the whole process here, so float64 cannot silently become float32")
    from harness.backends import _jax

    monkeypatch.setattr(_jax, "dtype_scope", lambda dtype: contextlib.nullcontext())
    with pytest.raises(TypeError, match="came back as float32"):
        run_case(catalogue.get_case("plain"), name, "float64", raise_errors=True)


def test_keras_unaffected_by_jax_float64_runs():
    backend("jax")
    if backends.get("keras").installed():
        pytest.skip(f"not installed: {backends.get('keras').installed()}")
    case = catalogue.get_case("plain")
    assert run_case(case, "jax", "float64").result.status == PASS
    for dtype in ("float32", "float64"):
        r = run_case(case, "keras", dtype).result
        assert r.status in (PASS, "unsupported"), r.reason  # keras on its JAX backend refuses float64


# Compilation once per shape -----------------------------------------------------------------------
@pytest.mark.parametrize("name", JAX_SUBJECTS)
def test_compiles_once_per_shape(name):
    backend(name)
    from harness.backends import _jax

    case = catalogue.get_case("plain")
    assert run_case(case, name, "float32", seed=1).result.status == PASS
    before = dict(_jax.TRACES)
    for seed in (2, 3):  # new weights and inputs, same shapes: no new trace, and still right
        assert run_case(case, name, "float32", seed=seed).result.status == PASS
    assert _jax.TRACES == before
    longer = catalogue.Case("plain-longer", case.spec, steps=case.steps + 1)
    assert run_case(longer, name, "float32").result.status == PASS
    assert sum(_jax.TRACES.values()) == sum(before.values()) + 1  # a new shape: exactly one new trace


def test_clip_values_are_data_not_program():
    """A clip's presence shapes the jax scan's program; its value is an argument: cell-clip-0 (TF1's clip to
    zero) runs on cell-clip's program, and still clips to zero."""
    backend("jax")
    from harness.backends import _jax

    assert run_case(catalogue.get_case("cell-clip"), "jax", "float32").result.status == PASS
    before = dict(_jax.TRACES)
    outcome = run_case(catalogue.get_case("cell-clip-0"), "jax", "float32")
    assert outcome.result.status == PASS and _jax.TRACES == before
    assert not np.any(outcome.actual.y) and not np.any(outcome.actual.c_n)


# Bad input ----------------------------------------------------------------------------------------
def _flax_tree(name="flax", spec=BIDI2.replace(bias="single")):
    b = backend(name)
    return b, spec, b.export(CanonicalLSTM.random(spec, seed=0))


def test_flax_import_names_a_wrong_shape():
    b, spec, tree = _flax_tree()
    tree["params"]["layers_1"]["backward_rnn"]["cell"]["hg"]["kernel"] = np.zeros((7, 6))
    with pytest.raises(ValueError, match=r"^params/layers_1/backward_rnn/cell/hg/kernel \(layer 1, backward, W_hh of "
                                         r"gate g, transposed\): expected shape \(7, 7\), got \(7, 6\)$"):
        b.import_(tree, spec)


def test_flax_import_names_a_missing_or_extra_parameter():
    b, spec, tree = _flax_tree()
    del tree["params"]["layers_0"]["forward_rnn"]["cell"]["io"]
    tree["params"]["layers_0"]["forward_rnn"]["cell"]["ii"]["bias"] = np.zeros(7)  # Flax has no input bias
    with pytest.raises(ValueError, match=r"missing \['io/kernel'\], unexpected \['ii/bias'\]"):
        b.import_(tree, spec)


@pytest.mark.parametrize("name", ["flax", "flax-nnx"])
@pytest.mark.parametrize("change, message", [
    (dict(bias="double"), "one bias"),
    (dict(forget_bias=1.0), "no run-time forget_bias"),
    (dict(num_layers=3), "needs stacked layers"),
    (dict(num_layers=1), "holds stacked layers"),
    (dict(bidirectional=False), "spec.bidirectional=False"),
])
def test_flax_import_refuses_a_tree_that_is_not_the_spec(name, change, message):
    b, spec, tree = _flax_tree(name)
    with pytest.raises(ValueError, match=message):
        b.import_(tree, spec.replace(**change))


def test_flax_import_finds_one_lstm_among_several_by_select():
    b, spec, tree = _flax_tree()
    other = b.export(CanonicalLSTM.random(spec, seed=9))
    user = {"params": {"encoder": tree["params"], "decoder": other["params"]}}
    with pytest.raises(ValueError, match="pass select="):
        b.import_(user, spec)
    assert b.import_(user, spec, select="params/decoder") == b.import_(other, spec)
    with pytest.raises(ValueError, match="matches none"):
        b.import_(user, spec, select="params/nothing")


def test_flax_import_reads_layer_names_only_as_whole_path_segments():
    """Two one-layer RNNs whose module names end in 'layers_0' are two LSTMs, not two layer 0s."""
    b, _, _ = _flax_tree()
    spec = LSTMSpec(input_size=5, hidden_size=7, bias="single")
    enc, dec = (b.export(CanonicalLSTM.random(spec, seed=s)) for s in (1, 2))
    user = {"params": {"enc_layers_0": enc["params"], "dec_layers_0": dec["params"]}}
    assert b.import_(user, spec, select="params/enc_layers_0") == b.import_(enc, spec)


def test_equinox_and_cudnn_imports_name_what_is_wrong():
    eq = backend("equinox")
    spec = BIDI2.replace(bias="single")
    cells = eq.export(CanonicalLSTM.random(spec, seed=0))
    with pytest.raises(ValueError, match="expected 4 equinox.nn.LSTMCell"):
        eq.import_(list(cells)[:3], spec)
    with pytest.raises(ValueError, match="has a bias, but spec.bias='none'"):
        eq.import_(cells, spec.replace(bias="none"))
    cu = backend("jax-cudnn")
    vec = cu.export(CanonicalLSTM.random(BIDI2, seed=0))
    with pytest.raises(ValueError, match=rf"^weights \(.*\): expected shape \({vec.size},\), got \({vec.size - 1},\) "
                                         rf"\(a 1-D vector of {vec.size} values"):
        cu.import_(vec[:-1], BIDI2)
    with pytest.raises(UnsupportedFeature, match="projection"):
        cu.export(CanonicalLSTM.random(BIDI2.replace(proj_size=4), seed=0))


@pytest.mark.parametrize("name", JAX_SUBJECTS)
def test_run_names_a_bad_input(name):
    b = backend(name)
    spec = catalogue.get_case("plain").spec
    prepared = b.prepare(CanonicalLSTM.random(spec, seed=0), "float32")
    x = np.zeros((6, 3, spec.input_size), np.float32)
    with pytest.raises(ValueError, match=r"x: expected last dimension input_size=5"):
        b.run(prepared, x[..., :4], None, None)
    with pytest.raises(ValueError, match=r"h0: expected shape \(1, 3, 7\)"):
        b.run(prepared, x, np.zeros((1, 2, 7), np.float32), np.zeros((1, 3, 7), np.float32))
    with pytest.raises(ValueError, match="dtype: expected float32 or float64, got float16"):
        b.prepare(CanonicalLSTM.random(spec, seed=0), "float16")
