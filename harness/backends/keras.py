"""Keras 3 keras.layers.LSTM (+ keras.layers.Bidirectional, stacked layers) on each Keras backend.

  keras-tensorflow, keras-jax, keras-torch   the subjects: Keras on that backend. Keras fixes its backend at
                                             import, so the one that is this process's runs here and the
                                             others in a worker process each (harness/backends/keras_worker.py)
  keras                                      an alias: Keras on this process's KERAS_BACKEND (TensorFlow by
                                             default), in-process; accepted everywhere, not a matrix column

The backend in force goes with every result (environment: keras_backend).

Native parameters: a NativeList with one get_weights() list per stacked layer:
  LSTM:          [kernel [in, 4H], recurrent_kernel [H, 4H], bias [4H]]   (bias absent if use_bias=False)
  Bidirectional: [fw kernel, fw recurrent_kernel, fw bias, bw kernel, bw recurrent_kernel, bw bias]
Keras's gate order i, f, c, o is the canonical i, f, g, o; its matrices are the transposes of
the canonical ones; its one bias is b_ih + b_hh. It has no projection, peepholes or clips.
Keras takes batch-major input only: time-major input is transposed around the call.

Devices: everything runs under keras.device("cpu" or "gpu:0"), so "cpu" means the CPU even on a
machine with a GPU ("cpu:0" breaks the torch backend: its int32 seed variable is copied off the Parameter,
which then cannot be tracked). The layers get use_cudnn="auto", Keras's default, except on "cpu" with
the TensorFlow and JAX backends, whose fused path is cuDNN only and decided by whether a GPU is visible
at all, not by keras.device: there use_cudnn=False (on a machine without a GPU, the same generic loop
"auto" takes). The torch backend's fused backend.lstm takes cuDNN only for CUDA inputs and otherwise runs
its own torch loop, which is what a Keras-on-torch user runs by default on a CPU: it keeps "auto" there.
(Measured, keras 3.15.1 on torch 2.13, float64: that loop agrees with float64 to 1e-16, while the generic
loop use_cudnn=False would take errs by 3e-8, so it would also be the wrong path to check.) watch_kernel
records which path ran: cuDNN, the backend's fused function, or Keras's generic loop.

Forwards (harness/backends/keras_compiled.py): run() calls the layers directly (eager); the benchmarks
time what users run, per backend (tf.function, jax.jit of stateless_call, torch.no_grad), with the
compiled and eager alternatives as labelled variants.

Per-example lengths reach every layer as a mask [B, T] (True at valid steps), in every forward variant. What y
holds at padded steps (measured, keras 3.15 on its TensorFlow, JAX and torch backends, CPU): one-direction
LSTM layers carry the last valid output on ("carry"); a Bidirectional layer zero-fills both halves ("zeros").
The backward layer starts at each example's last valid step (its masked steps come first in processing order
and leave the initial state as it is). On the torch backend a mask sends the layers to the generic loop, not
float64 (see supports).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .. import devices, kernels, precision
from ..canonical import CanonicalLSTM, LayerWeights
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Backend, Capabilities, NativeList, TimedForward, keras_compiled, keras_worker
from ._names import part, take
from .keras_worker import RunsInWorker

_SCOPES = {"cpu": "cpu", "cuda": "gpu:0"}  # keras.device names (not "cpu:0": see the module docstring)
_HALF = ("float16", "bfloat16")
_FUSED = ("lstm", "bidirectional_lstm")  # keras.src.backend functions that hold the cuDNN paths


def process_keras_backend() -> str | None:
    """This process's Keras backend: Keras's answer once imported, else the one Keras will choose when imported
    (configured_keras_backend); None where Keras is not installed. Asked while pytest collects (which keras-<b>
    runs in a worker process), where importing Keras would import its backend's framework: ~6 s."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if importlib.util.find_spec("keras") is None:
        return None
    return configured_keras_backend()


def configured_keras_backend() -> str:
    """The backend Keras chooses at import, read as keras/src/backend/config.py reads it: a non-empty KERAS_BACKEND,
    else "backend" in keras.json in KERAS_HOME (else ~/.keras, or /tmp/.keras where home is not writable; a file
    that is not JSON counts as empty), else "tensorflow". Tested against that code (test_keras_backends)."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    if "KERAS_HOME" in os.environ:
        home = os.environ["KERAS_HOME"]
    else:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    try:
        with open(os.path.expanduser(os.path.join(home, "keras.json"))) as fh:
            config = json.load(fh)
    except (OSError, ValueError):
        config = {}
    return config.get("backend", "tensorflow") if isinstance(config, dict) else "tensorflow"


def lengths_mask(lengths, steps: int):
    """Keras's mask for per-example lengths, as a Masking layer passes it: [B, T], True at valid steps (None
    without lengths). Shared by the backend and by assert_equivalent's Keras side."""
    if lengths is None:
        return None
    import keras

    from ..compare import padded_steps

    return keras.ops.convert_to_tensor(~padded_steps(lengths, steps, batch_first=True))


def build_layers(keras, native, spec: LSTMSpec, dtype: str, *, return_state: bool = True, **cell) -> list:
    """keras.layers.LSTM, or Bidirectional(LSTM) with merge_mode concat, per stacked layer of `spec` (its
    one-bias form: KerasBackend.adapt), built for its input and holding native[k], that layer's get_weights()
    list; every step returned (and the final states with return_state). `cell`: more LSTM arguments."""
    layers = []
    for k in range(spec.num_layers):
        args = dict(units=spec.hidden_size, return_sequences=True, return_state=return_state,
                    use_bias=spec.bias != "none", unit_forget_bias=False, dtype=dtype, **cell)
        layer = (keras.layers.Bidirectional(keras.layers.LSTM(**args), merge_mode="concat", dtype=dtype)
                 if spec.bidirectional else keras.layers.LSTM(**args))
        layer.build((None, None, spec.layer_input_size(k)))
        layer.set_weights([np.asarray(w) for w in native[k]])
        layers.append(layer)
    return layers


def sequential(native, spec: LSTMSpec, dtype: str):
    """A keras.Sequential holding the LSTM stack, for a .keras archive (its model.save): x [B, T, in] in, y of every
    step out; keras.saving.load_model of the archive gives the LSTM / Bidirectional layers, weights in place."""
    import keras

    layers = build_layers(keras, native, spec, dtype, return_state=False)
    return keras.Sequential([keras.Input((None, spec.input_size), dtype=dtype), *layers], name="lstm")


class KerasBackend(Backend):
    """`keras`: Keras on this process's KERAS_BACKEND, in-process (an alias of that keras-<backend>)."""

    name = "keras"
    framework = "keras"
    description = "keras.layers.LSTM"
    capabilities = Capabilities(devices=("cpu", "cuda"), dtypes=("float32", "float64", "float16", "bfloat16"),
                                lengths="carry")
    alias = True

    def padding(self, spec: LSTMSpec) -> str:
        super().padding(spec)
        return "zeros" if spec.bidirectional else "carry"  # measured: Bidirectional zero-fills, LSTM carries

    def keras_backend(self) -> str:
        import keras

        return keras.backend.backend()

    def runtime(self) -> str:
        return self.keras_backend()

    def forward_variants(self) -> tuple[str, ...]:
        return keras_compiled.variants(self.keras_backend())

    def supports(self, spec, dtype="float32", device="cpu", *, lengths=False):
        if precision.dtype_name(dtype) == "float64" and self.keras_backend() == "jax":
            # Measured (keras 3.15.1, jax 0.10.2, case plain): without jax x64 the float64 layer returns
            # float32 (max err 7.8e-8); with x64 it returns float64 but still errs by 3.4e-8, because
            # keras.ops.tanh computes in float32. Either way it is not a float64 LSTM. (TF and torch
            # backends: measured 3.6e-15 and 3.6e-15 over the catalogue, see the README.)
            return ("Keras 3 on the JAX backend computes a float64 LSTM partly in float32 "
                    "(measured 3.4e-8 error with x64, float32 output without)")
        if lengths and precision.dtype_name(dtype) == "float64" and self.keras_backend() == "torch":
            # Measured (keras 3.15.1, torch 2.13, the ragged cases): given a mask, the torch backend's fused
            # backend.lstm declines and Keras's generic RNN loop runs, which computes a float64 LSTM partly in
            # float32 (errors 9e-9 to 2.5e-8, every output); without lengths the fused loop agrees to 1e-16.
            return ("Keras 3 on the torch backend runs a masked (per-example lengths) LSTM in its generic loop, "
                    "which computes float64 partly in float32 (measured up to 2.5e-8 error)")
        return super().supports(spec, dtype, device, lengths=lengths)

    # Conversion -----------------------------------------------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeList:
        spec = model.spec
        out = NativeList()
        for k in range(spec.num_layers):
            layer = []
            for d in range(spec.num_directions):
                lw = model.weights[(k, d)]
                layer += [lw.W_ih.T.astype(dtype), lw.W_hh.T.astype(dtype)]
                if spec.bias != "none":
                    layer.append((lw.b_ih + lw.b_hh).astype(dtype))
            out.append(layer)
        return out

    def import_(self, native, spec: LSTMSpec, select=None) -> CanonicalLSTM:
        """Read one get_weights() list per stacked layer (numpy arrays or Keras variables), or a mapping
        of Keras variable paths to arrays, e.g. {v.path: v.numpy() for v in model.weights}.

        With a mapping, each LSTM or Bidirectional layer is found under its scope
        ('sequential/lstm/lstm_cell/kernel', 'sequential/bidirectional/forward_lstm_1/lstm_cell/bias'):
        the spec's num_layers of them are taken in order; `select` names them when the mapping holds
        more (a list of layer scopes such as ['sequential/lstm', 'sequential/lstm_2']).
        """
        self.check_spec(spec)
        keys = None  # the user's key of every array, for messages: the variable path, or layer{k}.{i} in a list
        if isinstance(native, Mapping):
            native, keys = self._lists_from_paths(native, spec, select)
        elif select is not None:
            raise ValueError("keras import: select= picks layers from a mapping of variable paths; "
                             "with a list of per-layer weights, pass just the lists you want")
        if spec.forget_bias:
            raise ValueError("keras import: Keras has no run-time forget_bias; describe the Keras LSTM with forget_bias=0")
        if spec.bias == "double":
            raise ValueError("keras import: a Keras LSTM has one bias; describe it with bias='single' (or 'none')")
        if not isinstance(native, (list, tuple)) or len(native) != spec.num_layers:
            got = f"{len(native)} entries" if isinstance(native, (list, tuple)) else type(native).__name__
            raise ValueError(f"keras import: expected a list of {spec.num_layers} per-layer get_weights() lists, got {got}")
        per_dir = 3 if spec.bias != "none" else 2
        H = spec.hidden_size
        weights = {}
        for k, layer in enumerate(native):
            want = per_dir * spec.num_directions
            if len(layer) != want:
                raise ValueError(
                    f"keras import: layer {k}: expected {want} arrays "
                    f"({'[kernel, recurrent_kernel, bias]' if per_dir == 3 else '[kernel, recurrent_kernel]'}"
                    f"{' per direction' if spec.bidirectional else ''}), got {len(layer)}"
                )
            for d in range(spec.num_directions):
                wanted = [((spec.layer_input_size(k), 4 * H), "W_ih transposed (kernel)"),
                          ((H, 4 * H), "W_hh transposed (recurrent_kernel)"), ((4 * H,), "b_ih + b_hh (bias)")]
                arrs = []
                for i, (shape, holds) in enumerate(wanted[:per_dir]):
                    j = d * per_dir + i
                    arrs.append(take(keys[k][j] if keys else f"layer{k}.{j}", layer[j], shape, part(k, d, holds)))
                kernel, rec = arrs[0], arrs[1]
                bias = arrs[2] if per_dir == 3 else np.zeros(4 * H)
                weights[(k, d)] = LayerWeights(W_ih=kernel.T, W_hh=rec.T, b_ih=bias, b_hh=np.zeros(4 * H))
        return CanonicalLSTM(spec, weights)

    @staticmethod
    def _lists_from_paths(native: Mapping, spec: LSTMSpec, select) -> tuple[list[list], list[list[str]]]:
        """The per-layer get_weights() lists of the LSTM layers in `native`, and the variable path of each array."""
        layers = layers_from_paths(native)
        if not layers:
            raise ValueError("keras import: no '<layer>/lstm_cell/kernel' variables found in the mapping")
        if select is not None:
            names = [n.rstrip("/") for n in ([select] if isinstance(select, str) else list(select))]
            missing = [n for n in names if n not in layers]
            if missing:
                raise ValueError(f"keras import: select={missing} matches none of the LSTM layers {list(layers)}")
        else:
            names = list(layers)
        if len(names) != spec.num_layers:
            raise ValueError(f"keras import: the mapping holds LSTM layers {names}, but spec.num_layers="
                             f"{spec.num_layers}; pass select=[...] with {spec.num_layers} layer scope(s)")
        out, keys = [], []
        for name in names:
            layer = layers[name]
            if layer.bidirectional != spec.bidirectional:
                kind = "a Bidirectional" if spec.bidirectional else "an LSTM"
                raise ValueError(f"keras import: layer {name!r} is not {kind} layer (found {sorted(layer.found)})")
            out.append(layer.weights)
            keys.append(layer.paths)
        return out, keys

    # Running --------------------------------------------------------------------------------
    def _prepare(self, model: CanonicalLSTM, dtype="float32", device="cpu"):
        import keras

        spec = self.adapt(model).spec  # the exported parameters' (bias='none' + forget_bias: 'single')
        dtype = precision.dtype_name(dtype)
        # Half-precision weights travel as float32 (exact: they are rounded to the dtype already) and
        # are cast by the variables; zero initializers: the weights are overwritten, and the default
        # orthogonal one needs a QR that TensorFlow has no bfloat16 kernel for.
        native = self.export(model, dtype="float32" if dtype in _HALF else dtype)
        use_cudnn = False if device == "cpu" and self.runtime() != "torch" else "auto"  # see the module docstring
        with keras.device(_SCOPES[device]):
            layers = build_layers(keras, native, spec, dtype, kernel_initializer="zeros",
                                  recurrent_initializer="zeros", use_cudnn=use_cudnn)
        return {"layers": layers, "spec": spec, "dtype": dtype, "device": device}

    def _run(self, prepared, x, h0, c0, *, batch_first=False, lengths=None) -> LSTMOutput:
        forward = self._forward_callable(prepared, x, h0, c0, batch_first=batch_first, variant=keras_compiled.EAGER,
                                         lengths=lengths)
        return forward.fetch(forward.call())

    def _forward_callable(self, prepared, x, h0, c0, *, batch_first=False, variant=keras_compiled.EAGER,
                          lengths=None) -> TimedForward:
        import keras

        spec, dtype, device = prepared["spec"], prepared["dtype"], prepared["device"]
        D, scope, runtime = spec.num_directions, _SCOPES[device], self.runtime()
        host = "float32" if dtype in _HALF else dtype  # exact: the inputs are rounded to dtype already
        tensor = lambda a: keras.ops.convert_to_tensor(np.asarray(a, dtype=host), dtype=dtype)  # noqa: E731
        with keras.device(scope):
            xa = np.asarray(x)
            seq0 = tensor(xa if batch_first else xa.transpose(1, 0, 2))  # Keras is batch-major only
            inits = [None if h0 is None else [tensor(s[k * D + d]) for d in range(D) for s in (h0, c0)]
                     for k in range(spec.num_layers)]
            steps = xa.shape[1 if batch_first else 0]
            mask = lengths_mask(lengths, steps)
        forward = keras_compiled.build(runtime, variant, prepared["layers"], D)

        def call():
            with keras.device(scope):
                out = forward(seq0, inits, mask)
            devices.synchronize(runtime, device, out)
            return out

        def fetch(out):
            seq, hs, cs = out
            y = keras.ops.convert_to_numpy(seq)
            if not batch_first:
                y = y.transpose(1, 0, 2)
            h_n = np.stack([keras.ops.convert_to_numpy(h) for h in hs])
            c_n = np.stack([keras.ops.convert_to_numpy(c) for c in cs])
            return LSTMOutput(np.ascontiguousarray(y), h_n, c_n)

        sync = "a device sync" if device != "cpu" or runtime == "jax" else "no sync needed"
        return TimedForward(call, fetch, f"{keras_compiled.COVERS[variant]}: Keras on {runtime} ({scope}), on "
                                         f"device-resident tensors, then {sync}")

    @contextlib.contextmanager
    def _watch_kernel(self, prepared):
        """Which path Keras took: its backend's fused (cuDNN-capable) lstm, or its generic loop.

        Keras tries keras.src.backend.lstm / bidirectional_lstm and falls back on NotImplementedError;
        wrapping them for the block records whether they ran or declined. On the torch backend that
        function itself falls back without a word, so the torch profiler decides there.
        """
        import keras.src.backend as kb

        calls: list[tuple[str, str]] = []
        originals = {name: getattr(kb, name) for name in _FUSED if hasattr(kb, name)}

        def wrap(name, fn):
            def wrapper(*args, **kwargs):
                try:
                    out = fn(*args, **kwargs)
                except NotImplementedError:
                    calls.append((name, "declined"))
                    raise
                calls.append((name, "ran"))
                return out
            return wrapper

        runtime, seen = self.runtime(), {}
        # cuDNN needs CUDA inputs on the torch backend: on "cpu" its op names have nothing to tell (and the
        # profiler slows each of the loop's many small ops)
        profile = runtime == "torch" and prepared["device"] != "cpu"
        for name, fn in originals.items():
            setattr(kb, name, wrap(name, fn))
        try:
            with (kernels.torch_ops() if profile else contextlib.nullcontext(set())) as ops:
                yield seen
        finally:
            for name, fn in originals.items():
                setattr(kb, name, fn)
        seen["kernel"] = keras_kernel(runtime, calls, ops, prepared["device"])

    def warm_up(self) -> None:
        """Pay the one-time costs of a first forward now: Keras imports TensorFlow (when installed, whatever
        its backend) to serialize the layer a Bidirectional wraps, and a first layer call sets up the
        framework's dispatch. A worker does this right after starting, in the background."""
        model = CanonicalLSTM.random(LSTMSpec(input_size=1, hidden_size=1, bidirectional=True))
        self.run(self.prepare(model, "float32", "cpu"), np.zeros((1, 1, 1), np.float32))

    def environment(self) -> dict[str, str]:
        import keras

        env = {"keras": keras.__version__, "keras_backend": keras.backend.backend()}
        if env["keras_backend"] in ("tensorflow", "torch", "jax"):
            import importlib

            env[env["keras_backend"]] = importlib.import_module(env["keras_backend"]).__version__
        return env


class KerasOnBackend(RunsInWorker, KerasBackend):
    """keras-<b>: Keras on backend b, in-process where b is this process's Keras backend, else in its worker."""

    keras_name = ""  # the KERAS_BACKEND value
    alias = False
    native_as = "keras"  # the same get_weights() lists, whatever the backend

    def keras_backend(self) -> str:
        return self.keras_name

    def in_process(self) -> bool:
        return process_keras_backend() == self.keras_name

    def process_env(self) -> dict[str, str]:
        return {"KERAS_BACKEND": self.keras_name}

    def modules_missing(self) -> str | None:
        return keras_worker.modules_missing("keras", self.keras_name)


class KerasTensorFlowBackend(KerasOnBackend):
    name, keras_name, description = "keras-tensorflow", "tensorflow", "keras.layers.LSTM on Keras's TensorFlow backend"


class KerasJaxBackend(KerasOnBackend):
    name, keras_name, description = "keras-jax", "jax", "keras.layers.LSTM on Keras's JAX backend"
    capabilities = Capabilities(devices=("cpu", "cuda"), dtypes=("float32", "float16", "bfloat16"),  # see supports
                                lengths="carry")


class KerasTorchBackend(KerasOnBackend):
    name, keras_name, description = "keras-torch", "torch", "keras.layers.LSTM on Keras's torch backend"


# Keras variable paths ----------------------------------------------------------------------------
_PLAIN = re.compile(r"^(?P<scope>.*?)/?lstm_cell/(?P<var>kernel|recurrent_kernel|bias)$")
_BIDI_HALF = re.compile(r"^(?:(?P<scope>.*)/)?(?P<dir>forward|backward)_(?P<inner>[^/]+)/lstm_cell/"
                   r"(?P<var>kernel|recurrent_kernel|bias)$")
_VARS = ("kernel", "recurrent_kernel", "bias")


@dataclass
class PathLayer:
    """One LSTM or Bidirectional layer found among Keras variable paths."""

    bidirectional: bool
    found: dict  # (direction or "", variable) -> value
    keys: dict = field(default_factory=dict)  # (direction or "", variable) -> the variable's path, as the user has it

    @property
    def weights(self) -> list:
        """The layer's get_weights() list: kernel, recurrent_kernel, bias, per direction, forward first."""
        return [self.found[u] for u in self._order()]

    @property
    def paths(self) -> list[str]:
        """The variable path of each array of `weights` (what errors about them name)."""
        return [self.keys.get(u, f"{u[0]}/{u[1]}".lstrip("/")) for u in self._order()]

    def _order(self) -> list[tuple[str, str]]:
        dirs = ("forward", "backward") if self.bidirectional else ("",)
        return [(d, v) for d in dirs for v in _VARS if (d, v) in self.found]


def layers_from_paths(native: Mapping) -> dict[str, PathLayer]:
    """The LSTM layers among Keras variable paths ({v.path: v.numpy() for v in model.weights}), in order.

    'sequential/lstm/lstm_cell/kernel' is layer 'sequential/lstm'; a Bidirectional's halves are
    'sequential/bidirectional/forward_lstm_1/lstm_cell/...' and 'backward_lstm_1' (layer 'sequential/bidirectional').
    A model reloaded with keras.saving.load_model names them without the Bidirectional's scope
    ('forward_lstm_1/lstm_cell/kernel'): the pair is then layer 'lstm_1', its wrapped LSTM's name. A lone
    'forward_x' with no 'backward_x' beside it is an LSTM that happens to be named so.
    """
    halves: dict[tuple[str, str], dict] = {}
    plain: dict[str, dict] = {}
    keys: dict[tuple, dict] = {}  # unit -> its (direction, variable) -> the user's own key
    order: list[tuple[str, tuple]] = []
    for original, value in native.items():
        key = str(original).removesuffix(":0")
        m = _BIDI_HALF.match(key)
        if m:
            unit = (m["scope"] or "", m["inner"])
            halves.setdefault(unit, {})[(m["dir"], m["var"])] = value
            keys.setdefault(("half", unit), {})[(m["dir"], m["var"])] = str(original)
            order.append(("half", unit))
            continue
        m = _PLAIN.match(key)
        if m and m["scope"]:
            plain.setdefault(m["scope"], {})[("", m["var"])] = value
            keys.setdefault(("plain", m["scope"]), {})[("", m["var"])] = str(original)
            order.append(("plain", m["scope"]))
    per_scope: dict[str, int] = {}
    for scope, _ in halves:
        per_scope[scope] = per_scope.get(scope, 0) + 1
    layers: dict[str, PathLayer] = {}
    for kind, unit in order:
        named = keys[(kind, unit)]
        if kind == "plain":
            layers.setdefault(unit, PathLayer(False, plain[unit], named))
            continue
        found = halves[unit]
        scope, inner = unit
        if {d for d, _ in found} == {"forward", "backward"}:
            name = scope if scope and per_scope[scope] == 1 else "/".join(filter(None, unit))
            layers.setdefault(name, PathLayer(True, found, named))
        else:  # one half only: an LSTM whose own name starts with forward_ or backward_
            d = next(iter(found))[0]
            name = "/".join(filter(None, (scope, f"{d}_{inner}")))
            layers.setdefault(name, PathLayer(False, {("", v): a for (_, v), a in found.items()},
                                              {("", v): k for (_, v), k in named.items()}))
    return layers


def keras_kernel(runtime: str, calls: list[tuple[str, str]], torch_ops: set[str], device: str) -> str:
    """Name the path a Keras forward took from what watch_kernel saw: "cuDNN: ...", "fused op: ..." (the
    backend's own lstm function without cuDNN) or "generic loop: ..." (Keras's RNN loop over its cell).

    A Bidirectional layer first offers the fused backend.bidirectional_lstm and, if that declines,
    runs backend.lstm per direction; so what ran is what returned, and only if nothing returned did
    the generic loop run.
    """
    if not calls:
        why = "use_cudnn=False on cpu" if device == "cpu" else "its fused lstm was not called"
        return f"generic loop: keras RNN loop over LSTMCell ({why})"
    ran = list(dict.fromkeys(name for name, outcome in calls if outcome == "ran"))
    if not ran:
        declined = ", ".join(dict.fromkeys(name for name, _ in calls))
        return f"generic loop: keras RNN loop over LSTMCell (backend.{declined} declined: its cuDNN conditions do not hold)"
    paths = []
    for name in ran:
        if runtime == "torch":
            paths.append(f"cuDNN: {kernels.torch_rnn_kernel(torch_ops)} via keras torch backend.{name}"
                         if "aten::_cudnn_rnn" in torch_ops else
                         f"fused op: keras torch backend.{name}, its own torch loop with the input projection "
                         "precomputed (cuDNN needs CUDA inputs, or it caught a cuDNN failure)")
        elif runtime == "tensorflow":
            paths.append(f"cuDNN: keras tensorflow backend.{name} (tf CudnnRNN)")
        elif runtime == "jax":
            paths.append(f"cuDNN: keras jax backend.{name} (jax.experimental.rnn)")
        else:
            paths.append(f"fused op: keras {runtime} backend.{name}")
    return "; ".join(paths)
