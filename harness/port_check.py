"""`python -m harness convert --check`: SRC run by its own framework from its own file, OUT by the target's,
beside the float64 oracle, on the same inputs, with every output part's worst error against the bound.

The expected outputs are the float64 oracle on SRC's weights as the harness read them. Against them:

    SRC, run by its framework   torch: load_state_dict(strict=True) into a torch.nn.LSTM built from the spec;
                                keras: keras.saving.load_model(safe_mode=True) of a .keras / .h5 model, the
                                LSTM layers taken out of it (return_sequences and return_state switched on,
                                weights as Keras loaded them); other Keras files: set_weights of the file's
                                arrays into keras.layers.LSTM / Bidirectional; keras-<b> beside this
                                process's Keras backend: the same, in that backend's worker process; onnx: onnxruntime on the
                                original graph, cut at the first LSTM node's input (the nodes' weights are
                                the graph's own); flax, flax-nnx: the flax modules applied to the restored tree
    OUT, run by the target      the same, on the written file
    the oracle on OUT           OUT read back by the harness

so a misread SRC (its framework disagrees with the harness's reading of it) fails as surely as a wrong OUT.
A framework that is not installed, or a backend with no loader of its own here (tf1, equinox, jax, tf-block*:
their OUT is run through the backend on the harness's reading of it), is said by name as a skipped comparison.
Inputs: random x [T=6, B=3, in] with nonzero h0, c0, or --inputs (x.npy [T, B, in] time-major, zero states;
or .npz with x and optionally h0, c0), rounded to float32 unless every side is float64.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backends, conditioning
from .canonical import CanonicalLSTM
from .compare import Comparison, compare, output_paths, tolerance_for
from .inputs import check_inputs, first_nonfinite
from .outputs import LSTMOutput
from .readers import Source, family, pick
from .spec import LSTMSpec

STEPS, BATCH, SEED = 6, 3, 0  # a misread weight shows from the first step; --inputs for the user's own data
_TORCH_LOCAL = r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l\d+(_reverse)?"


@dataclass
class Side:
    """One column of the table: what ran, and how it compared (or why it did not run)."""

    label: str
    what: str
    comparison: Comparison | None = None
    skipped: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and (self.comparison is None or self.comparison.ok)


def inputs_for(spec: LSTMSpec, path: str | None, dtype: str, *, lengths_key: bool = False):
    """x, h0, c0 as float64 arrays holding `dtype` values: random (nonzero states) or the user's --inputs.
    lengths_key: an .npz may hold `lengths` beside them (diagnose's: `stored_lengths` reads them); otherwise one that
    does is refused, saying where lengths go."""
    if path is None:
        x, h0, c0 = CanonicalLSTM.random(spec).random_inputs(BATCH, STEPS, seed=SEED)
        origin = "random, nonzero h0 and c0"
    else:
        p = Path(path)
        if p.suffix == ".npy":
            x, h0, c0 = np.load(p, allow_pickle=False), None, None
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as data:
                unknown = sorted(set(data.files) - {"x", "h0", "c0", *(("lengths",) if lengths_key else ())})
                if "x" not in data.files or unknown:
                    where = ("; per-example lengths are diagnose's (its --lengths, or lengths in its --inputs): "
                             "--check runs every sequence in full, which is what checks the weights"
                             if "lengths" in unknown else "")
                    raise ValueError(f"--inputs: {p.name} must hold x (and optionally h0, c0"
                                     f"{', lengths' if lengths_key else ''}); holds {data.files}{where}")
                x, h0, c0 = (data[k] if k in data.files else None for k in ("x", "h0", "c0"))
        else:
            raise ValueError(f"--inputs: expected x.npy ([T, B, input_size], time-major) or an .npz of x, h0, c0; "
                             f"got {p.name!r}")
        try:
            checked = check_inputs(spec, x, h0, c0)
            x, h0, c0 = checked.x, checked.h0, checked.c0
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--inputs: {exc}") from None
        origin = f"from {p.name}" + ("" if h0 is not None else ", zero h0 and c0")
        if h0 is None:
            n = spec.num_layers * spec.num_directions
            h0, c0 = np.zeros((n, x.shape[1], spec.output_size)), np.zeros((n, x.shape[1], spec.hidden_size))
    rounded = tuple(np.asarray(a, dtype=dtype).astype(np.float64) for a in (x, h0, c0))
    return rounded, origin


def stored_lengths(path: str | None) -> np.ndarray | None:
    """The per-example `lengths` an --inputs .npz holds beside x (as saved: checked by the caller), or None."""
    if path is None or Path(path).suffix != ".npz":
        return None
    with np.load(path, allow_pickle=False) as data:
        return data["lengths"] if "lengths" in data.files else None


def check(src: Source, src_model: CanonicalLSTM, source: str, out: Source, out_model: CanonicalLSTM, target: str,
          out_dtype: str, inputs: str | None = None, echo: Callable[[str], None] = print) -> bool:
    """Run both files in their frameworks and the oracle; print the table; True when every part is within bound.
    SRC with NaN or infinite weights (converted with --allow-nonfinite) is said to be so, and OUT's weights are
    compared with SRC's instead: no output of SRC is finite to compare with."""
    if _nonfinite(src_model, echo):
        return _same_weights(src_model, target, out_model, out_dtype, echo)
    fixed = src_model.fixed_lengths
    if fixed is not None:  # lengths for SRC's own batch (an ONNX constant sequence_lens): weights on full sequences
        echo(f"check: SRC fixes its sequence lengths to {list(fixed)} (a constant sequence_lens); the check runs "
             "every sequence to its full length, so SRC's own run (with its lengths) is left out")
        src_model, out_model = (dataclasses.replace(m, fixed_lengths=None) for m in (src_model, out_model))
    spec = src_model.spec
    dtype = "float64" if out_dtype == "float64" and stored_dtype(src.native) == "float64" else "float32"
    xs, origin = inputs_for(spec, inputs, dtype)
    expected = src_model.forward(*xs)
    tol = tolerance_for(dtype)
    # a long --inputs or a large cell state widens the bound (harness.compare.growth), by SRC's oracle run
    sensitivity = conditioning.sensitivity(src_model, xs, expected, dtype)
    oracle = Side("oracle(OUT)", "the float64 oracle on OUT's weights, as read back here",
                  comparison=compare(spec, out_model.forward(*xs), expected, tol, sensitivity=sensitivity))
    sides = [_side("SRC", source, src, spec, xs, dtype, expected, None, sensitivity) if fixed is None else
             Side("SRC", source, skipped=f"it runs only with its fixed lengths {list(fixed)}"),
             _side("OUT", target, out, out_model.spec, xs, dtype, expected, out_model, sensitivity), oracle]
    echo(f"check: x {list(xs[0].shape)} ({origin}), {dtype}; bound |actual - expected| <= {tol.atol:g} + "
         f"{tol.rtol:g} |expected|; expected = the float64 oracle on SRC's weights as read here")
    for i, side in enumerate(sides, 1):
        status = f" -- skipped: {side.skipped}" if side.skipped else f" -- error: {side.error}" if side.error else ""
        echo(f"  [{i}] {side.label}: {side.what}{status}")
    _table(spec, sides, echo)
    ok = all(side.ok for side in sides)
    for i, side in enumerate(sides, 1):
        if side.comparison is not None and not side.comparison.ok:
            echo(f"  [{i}] " + side.comparison.message(f" ({side.label})").replace("\n", "\n      "))
    ran = [s.label for s in sides if s.comparison is not None]
    skipped = [s.label for s in sides if s.skipped]
    echo(f"check: {'agree' if ok else 'DISAGREE'}: {', '.join(ran) or 'nothing'} compared"
         + (f"; skipped: {', '.join(skipped)}" if skipped else ""))
    return ok


def _nonfinite(model: CanonicalLSTM, echo) -> bool:
    for name, value in model.tensors().items():
        found = first_nonfinite(value)
        if found:
            index, bad, count = found
            echo(f"check: SRC itself is non-finite: {name} holds {bad} at index {index} ({count} in that tensor), "
                 "so SRC's outputs are not finite and cannot be compared with OUT's; comparing the weights instead")
            return True
    return False


def _same_weights(source: CanonicalLSTM, target: str, reloaded: CanonicalLSTM, dtype: str, echo) -> bool:
    """OUT's weights read back == SRC's as the target holds them (folded, in `dtype`), NaN where SRC has NaN."""
    expected = backends.get(target).adapt(source).rounded(dtype)
    got = reloaded.tensors()
    same = reloaded.spec == expected.spec and all(
        name in got and np.array_equal(value, got[name], equal_nan=True) for name, value in expected.tensors().items())
    echo(f"  OUT {'holds' if same else 'does NOT hold'} SRC's weights (in {dtype}, folded as {target} needs), "
         "non-finite values included")
    return same


def _table(spec: LSTMSpec, sides: list[Side], echo) -> None:
    D, L = spec.num_directions, spec.num_layers
    empty = LSTMOutput(np.zeros((1, 1, D * spec.output_size)), np.zeros((L * D, 1, 1)), np.zeros((L * D, 1, 1)))
    parts = [name for name, _ in output_paths(spec, empty)]
    width, cell = max(len(p) for p in parts) + 2, 24
    echo("  " + "output".ljust(width) + "".join(f"[{i}] worst abs (x bound)".ljust(cell)
                                                for i in range(1, len(sides) + 1)))
    for row, part in enumerate(parts):
        cells = []
        for side in sides:
            paths = side.comparison.paths if side.comparison is not None else []
            p = paths[row] if row < len(paths) else None
            if side.comparison is None:
                text = "-"
            elif p is None or p.error:
                text = f"FAIL {(p.error if p else 'shape')}"[: cell - 1]
            else:
                text = f"{p.max_abs:.2e} ({p.worst_ratio:.2f})" + ("" if p.mismatched == 0 else " FAIL")
            cells.append(text.ljust(cell))
        echo("  " + part.ljust(width) + "".join(cells))


def stored_dtype(native) -> str:
    """float64 only if every stored weight is float64 (a canonical file is by definition)."""
    if isinstance(native, CanonicalLSTM):
        return "float64"
    kinds = set()

    def walk(node):
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)
        elif isinstance(node, np.ndarray) and np.issubdtype(node.dtype, np.floating):
            kinds.add(node.dtype)

    walk(native)
    return "float64" if kinds == {np.dtype(np.float64)} else "float32"


# The sides ----------------------------------------------------------------------------------------
def _side(label: str, backend: str, source: Source, spec: LSTMSpec, xs, dtype: str, expected: LSTMOutput,
          model: CanonicalLSTM | None, sensitivity: float) -> Side:
    """SRC (model None) or OUT run by `backend`'s framework from its file, compared with `expected`."""
    b = backends.get(backend)
    if b.reference:
        return Side(label, "a canonical file", skipped="the oracle is its own framework (its run is `expected`)")
    runner = RUNNERS.get(family(backend))
    if runner is None:
        if model is None:
            return Side(label, backend, skipped=f"no loader of {backend}'s own is wired here: SRC is seen through "
                                                "the harness's reading only")
        return _through_backend(label, backend, model, xs, dtype, expected, sensitivity)
    what, run = runner
    side = Side(label, f"{what} ({backend})")
    missing = b.installed()
    if missing:
        side.skipped = f"not installed: {missing}"
        return side
    try:
        with _quiet():
            actual, how = run(source, spec, xs, dtype, backend)
    except ImportError as exc:
        side.skipped = f"not installed: {type(exc).__name__}: {exc}"
        return side
    except Exception as exc:  # the framework refused the file or failed: the check fails, saying how
        side.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return side
    if how:
        side.what += f"; {how}"
    side.comparison = compare(spec, actual, expected, tolerance_for(dtype), sensitivity=sensitivity)
    return side


def _through_backend(label: str, backend: str, model: CanonicalLSTM, xs, dtype: str, expected,
                     sensitivity: float) -> Side:
    b = backends.get(backend)
    side = Side(label, f"{backend} running OUT's weights as read back here (no loader of its own wired here)")
    reason = b.installed() or b.supports(model.spec, dtype, "cpu")
    if reason:
        side.skipped = reason
        return side
    try:
        with _quiet():
            actual = b.run(b.prepare(model, dtype, "cpu"), *(a.astype(dtype) for a in xs))
    except Exception as exc:
        side.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return side
    side.comparison = compare(model.spec, actual, expected, tolerance_for(dtype), sensitivity=sensitivity)
    return side


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# Each framework, from its own file --------------------------------------------------------------------
def _torch(source: Source, spec: LSTMSpec, xs, dtype: str, backend: str, lengths=None):
    import torch

    from .backends._names import group_by_prefix, pick
    from .sides.torch import run_lstm

    local = pick(group_by_prefix(source.native, _TORCH_LOCAL), source.select, "torch.nn.LSTM")
    state = {k: torch.as_tensor(np.asarray(v)) for k, v in local.items()}
    tdtype = getattr(torch, dtype)
    lstm = torch.nn.LSTM(spec.input_size, spec.hidden_size, num_layers=spec.num_layers, bias=spec.bias != "none",
                         bidirectional=spec.bidirectional, proj_size=spec.proj_size, dtype=tdtype)
    lstm.load_state_dict({k: v.to(tdtype) for k, v in state.items()}, strict=True)
    return run_lstm(lstm, *xs, lengths), ""


def _keras(source: Source, spec: LSTMSpec, xs, dtype: str, backend: str, lengths=None):
    """Keras from its file, run by the Keras of `backend`: a keras-<b> beside this process's Keras backend (which
    Keras fixes at its first import) in that backend's worker process, where the file is loaded and run."""
    b = backends.get(backend)
    if b.in_worker():
        actual, how = b.worker().call("run_file", source, spec, xs, dtype, lengths)
        return actual, f"{how}, in the {backend} worker process"
    return keras_file_here(source, spec, xs, dtype, lengths)


def keras_file_here(source: Source, spec: LSTMSpec, xs, dtype: str, lengths=None):
    """`_keras` in this process, with this process's Keras (also what a keras-<b> worker process runs)."""
    import keras

    from .sides.keras import all_layers, rebuild, run_layers

    how = ""
    layers = None
    if source.run.get("loader") == "load_model":
        try:
            model = keras.saving.load_model(str(source.path), safe_mode=True, compile=False)
        except Exception as exc:  # e.g. safe_mode refusing a Lambda layer's code
            how = (f"keras.saving.load_model(safe_mode=True) refused it ({type(exc).__name__}: "
                   f"{str(exc).splitlines()[0][:160]}), so set_weights of its arrays instead")
        else:
            found = {layer.name: layer for layer in all_layers(model)}
            layers = [rebuild(keras, found[name], spec.layer_input_size(k))
                      for k, name in enumerate(source.run["layers"])]
            how = "the LSTM layers of keras.saving.load_model(safe_mode=True), as Keras loaded them"
    if layers is None:
        native = source.native
        if not isinstance(native, list):  # variable paths: the import's own grouping
            from .backends.keras import KerasBackend

            native = KerasBackend._lists_from_paths(native, spec, source.select)
        from .backends.keras import build_layers

        layers = build_layers(keras, native, spec, dtype)
        how = how or "set_weights of the file's arrays into keras.layers.LSTM / Bidirectional"
    return run_layers(layers, spec, xs, dtype, lengths), f"{how}; Keras on {keras.backend.backend()}"  # as it ran


def _flax(source: Source, spec: LSTMSpec, xs, dtype: str, backend: str, lengths=None):
    from .backends import _flax_trees, _jax
    from .backends._names import group_by_prefix
    from .readers.flax_msgpack import style

    s = style(family(backend))
    groups = group_by_prefix(_jax.flatten(source.native, "SRC"), s.local_pattern())
    tree: dict = {}
    for path, value in pick(groups, source.select, "SRC", s.framework)[1].items():  # its own subtree, nested again
        *parents, leaf = path.split("/")
        node = tree
        for key in parents:
            node = node.setdefault(int(key) if s is _flax_trees.NNX and key.isdigit() else key, {})
        node[leaf] = np.asarray(value)
    if s is _flax_trees.LINEN:
        runner, weights = backends.get("flax"), {"params": tree}
        how = "flax.linen modules applied to the tree"
    else:
        from flax import nnx

        from .backends.flax_nnx import build_model

        given = set(_jax.flatten(tree, "SRC"))
        cell = _flax_trees.FUSED if any("dense_i/" in p for p in given) else _flax_trees.PER_GATE
        runner, weights = type(backends.get("flax-nnx"))(cell), tree
        structure = runner.program_structure(spec)
        shape = nnx.eval_shape(lambda: build_model(structure, cell, False, dtype))  # its tree, no init computed
        wanted = set(_jax.flatten(nnx.state(shape, nnx.Param), "nnx"))
        if wanted != given:  # nnx.update would leave the rest at their random initial values, silently
            raise ValueError(f"the tree does not fill the nnx model: missing {sorted(wanted - given)[:4]}, "
                             f"unexpected {sorted(given - wanted)[:4]}")
        how = f"nnx.update of a flax.nnx model of {cell}s with every parameter of the tree"
    structure = runner.program_structure(spec)  # the backend's own compiled program, shared with its runs
    forward = _jax.compiled((*runner.program_key(), structure, False, dtype),
                            lambda: runner.build_forward(structure, False, dtype))
    with _jax.dtype_scope(dtype):  # the run's own arguments: lengths are data (T each without them)
        y, h_n, c_n = forward(_jax.put(weights, dtype, "cpu"), *_jax.inputs(spec, *xs, False, dtype, "cpu", lengths))
    return LSTMOutput.of(y, h_n, c_n), how


def _onnx(source: Source, spec: LSTMSpec, xs, dtype: str, backend: str, lengths=None):
    import onnx
    import onnxruntime as ort

    from .backends import onnx as ox

    model = onnx.ModelProto()
    model.CopyFrom(ox._load(source.native))
    graph = ox._Graph(model)
    nodes = ox._stack(graph, spec, source.select)
    g = model.graph
    D, H = spec.num_directions, spec.hidden_size
    x, h0, c0 = (np.asarray(a, dtype=np.float32) for a in xs)
    feeds, outputs = {"__check_x": x}, []
    for node in nodes:
        layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
        if layout:
            raise ValueError(f"LSTM node {node.name!r} is batch-major (layout=1), which onnxruntime does not run")
    nodes[0].input[0] = "__check_x"
    for k, node in enumerate(nodes):
        while len(node.input) < 7:
            node.input.append("")
        while len(node.output) < 3:
            node.output.append("")
        for slot, name, value in ((5, f"__check_h0_{k}", h0), (6, f"__check_c0_{k}", c0)):
            node.input[slot] = name
            feeds[name] = value[k * D:(k + 1) * D]
        if lengths is not None:  # every node's sequence_lens, ONNX's own per-example lengths (int32 [B])
            node.input[4] = "__check_lens"
            feeds["__check_lens"] = np.asarray(lengths, dtype=np.int32)
        elif ox._sequence_lens(graph, node) is ox.RUN_TIME:  # fed from a graph input (torch's packed export):
            node.input[4] = "__check_lens"  # T for every example, which is no padding (ONNX's LSTM)
            feeds["__check_lens"] = np.full(x.shape[1], x.shape[0], dtype=np.int32)
        for slot in range(3):
            if not node.output[slot]:
                node.output[slot] = f"__check_out{slot}_{k}"
        outputs += [node.output[1], node.output[2]]
    wanted = [nodes[-1].output[0], *outputs]
    keep = _needed(g, wanted, set(feeds))
    kept_nodes = [n for n in g.node if id(n) in keep]
    del g.node[:]
    g.node.extend(kept_nodes)
    del g.input[:]
    g.input.extend(onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(value.dtype),
                                                      list(value.shape)) for name, value in feeds.items())
    used = {i for n in kept_nodes for i in n.input}
    kept_inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept_inits)
    del g.output[:]
    g.output.extend(onnx.ValueInfoProto(name=name) for name in wanted)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    Y, *states = session.run(wanted, feeds)
    T, B = x.shape[:2]
    y = np.asarray(Y).transpose(0, 2, 1, 3).reshape(T, B, D * H)
    h_n = np.concatenate([states[2 * k] for k in range(len(nodes))])
    c_n = np.concatenate([states[2 * k + 1] for k in range(len(nodes))])
    return LSTMOutput(y, h_n, c_n), "the original graph's LSTM nodes, fed from the first node's X on"


def _needed(graph, outputs: list[str], fed: set[str]) -> set[int]:
    """The nodes that compute `outputs` from initializers and the tensors `fed` (which cut the graph)."""
    producer = {o: n for n in graph.node for o in n.output if o}
    inputs = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    keep, todo = set(), list(outputs)
    while todo:
        name = todo.pop()
        if name in inputs and name not in fed:
            raise ValueError(f"the LSTM nodes' part of the graph reads the graph input {name!r} beyond the first "
                             "node's X and the states: it cannot be run on its own")
        if name in fed or name not in producer:
            continue
        node = producer[name]
        if id(node) not in keep:
            keep.add(id(node))
            todo += [i for i in node.input if i]
    return keep


RUNNERS: dict[str, tuple[str, Callable]] = {
    "torch": ("torch.nn.LSTM.load_state_dict(strict=True) of the file's tensors", _torch),
    "keras": ("keras.layers.LSTM", _keras),
    "flax": ("flax.linen RNN / Bidirectional over the restored tree", _flax),
    "flax-nnx": ("flax.nnx RNN / Bidirectional over the restored tree", _flax),
    "onnx": ("onnxruntime on the file's graph", _onnx),
}
