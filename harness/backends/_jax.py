"""What every JAX backend (jax, flax, flax-nnx, equinox, jax-cudnn) shares: their base class `JaxBackend`
(runtime, prepare, run), the float64 switch, devices, input checks, output checks, the compile cache and
the environment record.

float64: JAX computes in float32 unless `jax_enable_x64` is on, and silently truncates float64 arrays
to float32 when it is off. That switch is process-wide, so a float64 run turns it on only for its own
duration, with JAX's thread-local `jax.enable_x64(True)` context (`dtype_scope`): float32 runs and
other frameworks in the same process (Keras on its JAX backend included) keep JAX's default. The jit
cache keys on the switch, so a function traced in one mode is never reused in the other. Every output
is checked to be in the dtype asked for (`outputs`), so a float64 run that computed in float32 raises.

Matrix-product precision: harness.precision.apply sets `jax_default_matmul_precision` ("highest" for
exact runs), which every JAX matrix product here inherits; `environment()` records the value in force.

Per-example lengths are data: every program takes lengths int32 [B] (all T when the run has none), so a
ragged batch runs the program its shapes already compiled, and new lengths never recompile.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np

from ..canonical import CanonicalLSTM
from ..oracle import check_inputs
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Backend, Capabilities

# Compiled functions: (backend, structure...) -> jitted function. jax.jit specialises each one on the
# argument shapes and dtypes (and on x64 and the matmul precision) by itself, so one entry compiles
# once per (spec, dtype, shapes); weights are arguments, never constants, so a new seed reuses it.
_COMPILED: dict[tuple, Callable] = {}
TRACES: dict[tuple, int] = {}  # key -> how often its Python function was traced (for the tests)


def compiled(key: tuple, build: Callable[[], Callable]) -> Callable:
    """The jitted function for `key`, built by `build()` the first time it is asked for."""
    import jax

    fn = _COMPILED.get(key)
    if fn is None:
        inner = build()

        def traced(*args, **kwargs):
            TRACES[key] = TRACES.get(key, 0) + 1  # runs only while jax traces, not on cached calls
            return inner(*args, **kwargs)

        fn = _COMPILED[key] = jax.jit(traced)
    return fn


_REGISTERED = []


def register_native_pytrees() -> None:
    """Make the harness's NativeDict / NativeList JAX pytrees (as dict and list are), once per process,
    so an exported tree goes straight into jax.jit, Module.apply or nnx.update; `.folded` rides along."""
    if _REGISTERED:
        return
    try:
        import jax
    except ImportError:  # no JAX, no pytrees to be
        return

    from . import NativeDict, NativeList

    def flatten_dict(d):
        try:
            keys = sorted(d)  # as JAX orders a dict's keys
        except TypeError:
            keys = list(d)
        return [d[k] for k in keys], (tuple(keys), d.folded)

    def unflatten(cls, aux, children):
        keys, folded = aux
        out = cls(zip(keys, children)) if cls is NativeDict else cls(children)
        out.folded = folded
        return out

    jax.tree_util.register_pytree_node(NativeDict, flatten_dict, lambda aux, ch: unflatten(NativeDict, aux, ch))
    jax.tree_util.register_pytree_node(NativeList, lambda l: (list(l), (None, l.folded)),
                                       lambda aux, ch: unflatten(NativeList, aux, ch))
    _REGISTERED.append(True)


def folded_structure(spec: LSTMSpec) -> LSTMSpec:
    """The spec a one-bias framework's program depends on: the bias kind and a forget_bias are folded into
    the weights (data), so specs differing only there share one compiled program."""
    return spec.replace(bias="single", forget_bias=0.0)


def float_dtype(dtype) -> str:
    dtype = str(np.dtype(dtype))
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype}")
    return dtype


@contextlib.contextmanager
def dtype_scope(dtype):
    """Run JAX in 64-bit mode for a float64 run (only for its duration); float32 runs unchanged."""
    import jax

    if float_dtype(dtype) == "float64":
        with jax.enable_x64(True):
            yield
    else:
        yield


def jax_device(device: str):
    """The jax.Device for the harness's device name ('cpu' or 'cuda')."""
    import jax

    platform = {"cpu": "cpu", "cuda": "gpu"}.get(device)
    if platform is None:
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    return jax.devices(platform)[0]


def put(tree: Any, dtype, device: str) -> Any:
    """Every array leaf of `tree` as a jax array of `dtype` on `device` (call inside dtype_scope)."""
    import jax

    dev = jax_device(device)
    return jax.tree_util.tree_map(lambda a: jax.device_put(np.asarray(a, dtype=dtype), dev), tree)


def inputs(spec: LSTMSpec, x, h0, c0, batch_first: bool, dtype, device: str, lengths=None):
    """x in the caller's layout, h0, c0 [L*D, B, *] (zeros when None), as jax arrays of `dtype`, and lengths as
    int32 [B] (every sequence's T when None: lengths are data, the same program runs with or without them).

    Validated by the oracle's input checks (every bad shape is named); nothing is broadcast.
    """
    import jax

    time_major, h0_checked, c0_checked = check_inputs(spec, x, h0, c0, batch_first)
    steps, batch = time_major.shape[:2]
    lengths = np.full(batch, steps) if lengths is None else lengths
    return (*put((np.asarray(x), h0_checked, c0_checked), dtype, device),
            jax.device_put(np.asarray(lengths, np.int32), jax_device(device)))  # int32 in either x64 mode


def outputs(y, h_n, c_n, dtype, backend: str) -> LSTMOutput:
    """The outputs as numpy, after checking JAX computed them in `dtype` (no silent float32)."""
    out = LSTMOutput.of(y, h_n, c_n)
    for name, arr in zip(LSTMOutput._fields, out):
        if arr.dtype != np.dtype(dtype):
            raise TypeError(f"{backend}: {name} came back as {arr.dtype}, but the run asked for {np.dtype(dtype)}; "
                            "JAX did not compute in the requested precision")
    return out


def environment() -> dict[str, str]:
    import jax
    import jaxlib

    env = {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "jax_backend": jax.default_backend(),
           "jax_enable_x64": str(jax.config.jax_enable_x64),
           "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision)}
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if gpus:
        env["gpu"] = gpus[0].device_kind
    return env


# Nested parameter trees (flax) as flat '/'-joined paths, so harness.backends._names finds one LSTM
# among a user's parameters by its local names, under any enclosing module's path.
def flatten(tree: Any, what: str) -> dict[str, Any]:
    """{'params': {'cell': {'ii': {'kernel': a}}}} -> {'params/cell/ii/kernel': a}; any Mapping or nnx.State."""
    from collections.abc import Mapping

    if hasattr(tree, "to_pure_dict"):  # a flax.nnx.State
        from flax import nnx

        tree = nnx.to_pure_dict(tree)
    if not isinstance(tree, Mapping):
        raise TypeError(f"{what}: expected a nested mapping of parameters, got {type(tree).__name__}")
    flat: dict[str, Any] = {}

    def walk(node, path):
        for key, value in node.items():
            if isinstance(value, Mapping):
                walk(value, f"{path}{key}/")
            else:
                flat[f"{path}{key}"] = value

    walk(tree, "")
    return flat


class JaxBackend(Backend):
    """A backend whose model runs on JAX: precision flags, the GPU probe (Backend.device_missing through
    harness.devices), synchronization and threads are JAX's. Every one prepares and runs alike:

    prepare  exports the parameters and puts `weights(native, spec)` on the device in the run's dtype;
    run      jits `build_forward(structure, batch_first, dtype)` once per program (`compiled`, keyed by
             `program_key()` and `program_structure(spec)`) and calls forward(weights, x, h0, c0, lengths) ->
             (y, h_n, c_n) under the run's dtype scope, checking the outputs' dtype. lengths (int32 [B], T
             each when the run has none) are data: y is zero at padded steps unless a backend declares
             otherwise (Capabilities.lengths).
    """

    capabilities = Capabilities(devices=("cpu", "cuda"), lengths="zeros")

    def runtime(self) -> str:
        return "jax"

    # What each JAX backend says --------------------------------------------------------------
    def build_forward(self, structure: LSTMSpec, batch_first: bool, dtype: str) -> Callable:
        """forward(weights, x, h0, c0, lengths) -> (y, h_n, c_n) for every spec with this program structure;
        lengths int32 [B], each in 1..T (T: no padding)."""
        raise NotImplementedError

    def program_structure(self, spec: LSTMSpec) -> LSTMSpec:
        """What the compiled program depends on (default: a one-bias framework's, `folded_structure`)."""
        return folded_structure(spec)

    def program_key(self) -> tuple:
        """What, besides the structure, layout and dtype, selects a compiled program (a Flax cell kind)."""
        return (self.name,)

    def weights(self, native: Any, spec: LSTMSpec) -> Any:
        """forward()'s first argument, as numpy, from the export. Default: the export as a plain dict, list
        or array, without `.folded`: as pytree metadata it would make jit retrace specs that differ only in
        what was folded, which share one program."""
        if isinstance(native, dict):
            return dict(native)
        if isinstance(native, list):
            return list(native)
        return np.asarray(native)

    # Running ---------------------------------------------------------------------------------
    def _prepare(self, model: CanonicalLSTM, dtype="float32", device="cpu"):
        dtype = float_dtype(dtype)
        native = self.export(model, dtype=dtype)
        with dtype_scope(dtype):
            weights = put(self.weights(native, model.spec), dtype, device)
        return {"spec": model.spec, "weights": weights, "dtype": dtype, "device": device}

    def _run(self, prepared, x, h0, c0, *, batch_first=False, lengths=None) -> LSTMOutput:
        spec, dtype = prepared["spec"], prepared["dtype"]
        structure = self.program_structure(spec)
        fn = compiled((*self.program_key(), structure, batch_first, dtype),
                      lambda: self.build_forward(structure, batch_first, dtype))
        with dtype_scope(dtype):
            args = inputs(spec, x, h0, c0, batch_first, dtype, prepared["device"], lengths)
            return outputs(*fn(prepared["weights"], *args), dtype, self.name)

    def environment(self) -> dict[str, str]:
        return environment()
