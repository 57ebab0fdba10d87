"""The backend protocol and registry.

A backend is one module per framework (harness/backends/<name>.py) holding one `Backend`
subclass. It imports its framework lazily (inside methods), so a missing framework is
reported as "not installed", never raised as an ImportError at import time.

The protocol, in the order the data flows:

    installed()            -> None, or why the framework cannot be imported ("not installed")
    supports(spec, dtype, device) -> None, or why this combination is unsupported
    export(canonical, dtype) -> the framework's own parameters (after folding, see `adapt`)
    import_(native, spec, select=None) -> CanonicalLSTM   (exact inverse of export)
    prepare(canonical, dtype, device) -> Prepared: the live model with the weights set (built once)
    run(prepared, x, h0, c0, batch_first, lengths) -> LSTMOutput (numpy, canonical layout)

prepare, run, forward_callable and watch_kernel are the base class's own: run checks x, h0, c0 and lengths
against the spec (harness.inputs, the oracle's check) and then calls the backend's `_run`, so no backend can
skip the check. A backend implements `_prepare(model, dtype, device)` and `_run(live, x, h0, c0, batch_first)`,
and optionally `_forward_callable` and `_watch_kernel`, on its live model.

Per-example lengths (right padding): a backend that runs them declares `Capabilities.lengths`, the convention
of what its y holds at padded steps ("zeros", "carry", "undefined"; harness.oracle), and `padding(spec)` where
the convention depends on the configuration (a Keras mask carries on one direction, zero-fills two). Its
`_run` and `_forward_callable` then take `lengths=` (int64 [B]); they are passed only when given, so a backend
without lengths never sees the keyword. Without the capability, run(..., lengths=...) raises UnsupportedFeature
with `lengths_missing`, the measured reason.

Devices, precision and timing (defaults cover a backend whose framework is its runtime):

    runtime()              -> the framework that executes the model ("torch", "tensorflow", "jax",
                              "onnxruntime"); Keras 3 answers its backend. Precision flags
                              (harness.precision), GPU probes, synchronization and CPU threads
                              (harness.devices) are keyed by it.
    device_missing(device) -> None, or why `device` is absent here (a skip, not "unsupported")
    devices_present()      -> {device: None or why it is missing} over capabilities.devices
    watch_kernel(prepared) -> context manager; fills the dict it yields with the kernel that ran
                              inside it, where a framework can fall back silently
    forward_callable(prepared, x, h0, c0, variant="") -> TimedForward: one forward on inputs already
                              placed on the device, returning only when the device is done (for timing)
    forward_variants()     -> the labelled ways to run that forward, the one users run first (Keras:
                              compiled and eager); ("",) for one way
    set_threads(n)         -> set the runtime's CPU threads; what is in force

A backend that needs a process of its own (Keras fixes its backend at import) says so in process_env();
from any other process it runs in a worker (keras_worker.RunsInWorker: in_worker(), start_in_background(),
timing_missing() saying why it is not timed from here). `alias` marks a second name for a subject
(`keras`), kept out of subjects(); `native_as` names the backend whose parameters and files it shares.

What a framework can hold natively is declared in `Capabilities`; `adapt` folds what it can
express only by folding (two biases into one, a run-time forget_bias into the bias) and refuses
what it cannot express at all with UnsupportedFeature naming the feature.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from .. import devices, extras, precision
from ..canonical import CanonicalLSTM
from ..inputs import check_fixed_lengths, check_inputs
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from ._names import NonFiniteWeights, allowing_nonfinite  # noqa: F401 (public: raised by every import_)


class UnsupportedFeature(ValueError):
    """The target framework cannot express a feature of the spec."""


class NotInstalled(ImportError):
    """The framework behind a backend cannot be imported."""


@dataclass(frozen=True)
class Capabilities:
    """What a framework's own parameters and layer can express natively.

    Every backend can hold a single bias or none (as zeros). A spec feature marked False here is
    either folded (double bias, forget_bias) or refused (the rest).
    """

    double_bias: bool = False  # holds b_ih and b_hh separately (else: summed into one)
    forget_bias: bool = False  # adds a run-time forget_bias (else: folded into the bias)
    projection: bool = False
    peephole: bool = False
    cell_clip: bool = False
    proj_clip: bool = False
    gate_clip: bool = False  # ONNX's clip of every gate pre-activation
    # Per-example lengths: what y holds at padded steps ("zeros", "carry", "undefined"; harness.oracle), or
    # None: the backend cannot run them (Backend.lengths_missing says why).
    lengths: str | None = None
    dtypes: tuple[str, ...] = ("float32", "float64")
    devices: tuple[str, ...] = ("cpu",)


@dataclass(frozen=True)
class Prepared:
    """What Backend.prepare returns and Backend.run takes: the framework's live model (`model`), with the
    spec, dtype and device it was built for (what the input check needs)."""

    backend: str
    spec: LSTMSpec
    dtype: str
    device: str
    model: Any
    fixed_lengths: tuple[int, ...] | None = None  # lengths the source model fixes (CanonicalLSTM.fixed_lengths)


@dataclass
class TimedForward:
    """One forward pass, split so that a timer measures only the work.

    call()       runs the forward on inputs already placed where the model lives and returns the
                 framework's outputs once the device has finished (synchronized);
    fetch(out)   turns call()'s outputs into an LSTMOutput (untimed: copies to the host);
    what         what one call() covers, recorded with every benchmark.
    """

    call: Callable[[], Any]
    fetch: Callable[[Any], LSTMOutput]
    what: str


class Backend:
    """Base class: subclasses set the class attributes and implement the framework-specific methods."""

    name: str = ""
    framework: str = ""  # the module whose import decides "installed"
    description: str = ""  # what it runs, one line, for the README and reports
    capabilities: Capabilities = Capabilities()
    reference: bool = False  # the oracle itself: never a subject of the agreement tests
    install_hint: str = ""  # how to install what it needs, for "not installed" (default: the harness's extra)
    alias: bool = False  # another name for a subject (`keras`: keras-<this process's KERAS_BACKEND>): not a column
    native_as: str = ""  # the registered backend whose native parameters (and file forms) this one takes, if not its own
    lengths_missing: str = "it has no way to run per-example sequence lengths"  # why, when capabilities.lengths is None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("prepare", "run", "forward_callable", "watch_kernel"):
            if name in cls.__dict__:  # the input check lives in these: a backend implements _name instead
                raise TypeError(f"{cls.__name__}.{name}: Backend.{name} is the base class's own (it checks the "
                                f"inputs before the backend runs); implement _{name} instead")

    # Availability ---------------------------------------------------------------------------
    def installed(self) -> str | None:
        try:
            importlib.import_module(self.framework)
        except Exception as exc:  # a broken install is "not installed" too, with its reason (and the extra)
            return self.not_installed(self.framework, exc)
        return None

    def not_installed(self, module: str, exc: BaseException) -> str:
        """Why `module` cannot be imported, with what to install: `install_hint`, else the harness's extra."""
        if self.install_hint:
            return f"{module} is not installed ({type(exc).__name__}: {exc}); {self.install_hint}"
        return extras.not_installed(module, exc)

    def supports(self, spec: LSTMSpec, dtype: str = "float32", device: str = "cpu", *,
                 lengths: bool = False) -> str | None:
        """None if the backend can run `spec` (with per-example lengths if `lengths`), else the reason it cannot
        (a feature it lacks)."""
        dtype = precision.dtype_name(dtype)
        if dtype not in self.capabilities.dtypes:
            return f"{self.name} does not support dtype {dtype} (supports {', '.join(self.capabilities.dtypes)})"
        if device not in self.capabilities.devices:
            return f"{self.name} has no {device} path (devices: {', '.join(self.capabilities.devices)})"
        try:
            self.check_spec(spec)
            if lengths:
                self.padding(spec)
        except UnsupportedFeature as exc:
            return str(exc)
        return None

    def runtime(self) -> str:
        """The framework that executes this backend's model (see the module docstring): by default
        the top-level package of `framework` (a private TensorFlow module runs on "tensorflow")."""
        return self.framework.split(".")[0]

    def device_missing(self, device: str) -> str | None:
        """None if `device` is present for this framework, else why not (a skip, not 'unsupported')."""
        if device == "cpu":
            return None
        if device not in self.capabilities.devices:
            return f"{self.name} has no {device} path (devices: {', '.join(self.capabilities.devices)})"
        return devices.missing(self.runtime(), device)

    def devices_present(self) -> dict[str, str | None]:
        """Every device this backend has a path for -> None if present here, else why it is missing."""
        return {device: self.device_missing(device) for device in self.capabilities.devices}

    def process_env(self) -> dict[str, str]:
        """Environment a process needs to run this backend in-process (Keras: its KERAS_BACKEND); {} for most."""
        return {}

    def in_worker(self) -> bool:
        """Whether this backend runs in a worker process from here (keras-<b> on another Keras backend)."""
        return False

    def start_in_background(self) -> None:
        """Begin slow set-up without waiting for it (a Keras worker process's imports); a no-op for most."""

    def timing_missing(self) -> str | None:
        """None if host timings of forward_callable's call() measure the forward itself here, else why not."""
        return None

    def forward_variants(self) -> tuple[str, ...]:
        """The labelled ways this backend's forward can be timed, the default first (the path its users run:
        Keras's compiled call); ("",) for a backend with one way. forward_callable(variant=...) picks one."""
        return ("",)

    def set_threads(self, threads: int) -> dict[str, str]:
        """Set the runtime's CPU thread pools (once per process); return the settings in force."""
        return devices.set_threads(self.runtime(), threads)

    def check_spec(self, spec: LSTMSpec) -> None:
        """Raise UnsupportedFeature for what the framework cannot express, naming the feature."""
        caps = self.capabilities
        for present, capable, feature in (
            (spec.proj_size > 0, caps.projection, f"a projection (proj_size={spec.proj_size})"),
            (spec.peephole, caps.peephole, "peepholes"),
            (spec.cell_clip is not None, caps.cell_clip, f"cell_clip={spec.cell_clip}"),
            (spec.proj_clip is not None, caps.proj_clip, f"proj_clip={spec.proj_clip}"),
            (spec.gate_clip is not None, caps.gate_clip, f"gate_clip={spec.gate_clip} (a clip of every gate "
                                                         "pre-activation, ONNX's clip)"),
        ):
            if present and not capable:
                raise UnsupportedFeature(f"{self.name} cannot express {feature}: {self.description} has none")

    def padding(self, spec: LSTMSpec) -> str:
        """What this backend's y holds at padded steps when it runs `spec` with lengths: "zeros", "carry" or
        "undefined" (harness.oracle); UnsupportedFeature when it cannot run lengths at all."""
        if self.capabilities.lengths is None:
            raise UnsupportedFeature(f"{self.name} cannot run per-example sequence lengths: {self.lengths_missing}")
        return self.capabilities.lengths

    def adapt(self, model: CanonicalLSTM) -> CanonicalLSTM:
        """Fold what this framework expresses only by folding; refuse what it cannot express."""
        self.check_spec(model.spec)
        if model.spec.forget_bias and not self.capabilities.forget_bias:
            model = model.fold_forget_bias()
        if model.spec.bias == "double" and not self.capabilities.double_bias:
            model = model.fold_biases()
        return model

    def export(self, model: CanonicalLSTM, dtype=np.float32) -> Any:
        """The framework's own parameters for `model` (folded as needed; `.folded` says what)."""
        adapted = self.adapt(model)
        native = self.to_native(adapted, precision.numpy_dtype(dtype))  # no int32 truncation, no float8
        native.folded = adapted.folded
        if model.fixed_lengths is not None:  # not a parameter of any framework: said, not dropped in silence
            lengths = list(model.fixed_lengths)
            native.folded += (f"sequence lengths {lengths}, fixed by the source model (a constant sequence_lens), "
                              f"are no parameter: run it with lengths={lengths}",)
        return native

    # The framework-specific part ------------------------------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> Any:
        """Write an already adapted model as the framework's parameters (a NativeDict or NativeList)."""
        raise NotImplementedError

    def import_(self, native: Any, spec: LSTMSpec, select: str | None = None) -> CanonicalLSTM:
        raise NotImplementedError

    def _prepare(self, model: CanonicalLSTM, dtype: str, device: str) -> Any:
        """Build the live model once, with the weights set (what Backend.prepare wraps in a Prepared)."""
        raise NotImplementedError

    def _run(self, model: Any, x: np.ndarray, h0, c0, *, batch_first: bool = False) -> LSTMOutput:
        """One forward pass on inputs Backend.run has already checked -> LSTMOutput (canonical layout).
        With capabilities.lengths, also `lengths=` (int64 [B], passed only when given)."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """Versions and settings that belong with every result of this backend."""
        return {}

    @contextlib.contextmanager
    def _watch_kernel(self, model: Any) -> Iterator[dict[str, str]]:
        """Record the kernel that runs inside the block into the yielded dict ({"kernel": ...}).

        Default: nothing to observe (a framework with one implementation, or none inspectable).
        """
        yield {}

    def _forward_callable(self, model: Any, x: np.ndarray, h0, c0, *, batch_first: bool = False,
                          **lengths) -> TimedForward:
        """A TimedForward for benchmarks. Default: _run itself, which includes the host-side conversions (and,
        on a GPU, the copies); a backend with device-resident inputs overrides it."""
        return TimedForward(call=lambda: self._run(model, x, h0, c0, batch_first=batch_first, **lengths),
                            fetch=lambda out: out,
                            what="run(): host arrays in and out, conversions included")

    # The entry points: the same for every backend, so none can skip the input check -------------------
    def prepare(self, model: CanonicalLSTM, dtype: str = "float32", device: str = "cpu") -> "Prepared":
        """The live model for `model` in `dtype` on `device`, built once; run() takes it."""
        if not isinstance(model, CanonicalLSTM):
            raise TypeError(f"{self.name}.prepare(model): expected a CanonicalLSTM, got {type(model).__name__} "
                            f"(convert a framework's parameters first: {self.name}.import_(native, spec))")
        return Prepared(self.name, model.spec, precision.dtype_name(dtype), device,
                        self._prepare(model, dtype, device), model.fixed_lengths)

    def _unwrap(self, prepared: "Prepared") -> Any:
        if not isinstance(prepared, Prepared) or prepared.backend != self.name:
            got = f"a Prepared of {prepared.backend}" if isinstance(prepared, Prepared) else type(prepared).__name__
            raise TypeError(f"{self.name}.run(prepared): expected what {self.name}.prepare() returned, got {got}")
        return prepared.model

    def run(self, prepared: "Prepared", x: np.ndarray, h0=None, c0=None, *, batch_first: bool = False,
            lengths=None) -> LSTMOutput:
        """One forward pass: x [T, B, in] ([B, T, in] with batch_first), h0, c0 [L*D, B, *] or None (zeros),
        lengths [B] (right padding: lengths[b] valid steps first) or None (every sequence runs all T steps).

        The inputs are checked against the spec first (harness.inputs.check_inputs, the oracle's own check):
        a wrong shape, dtype, an empty sequence, a non-finite value or a bad length is a ValueError/TypeError
        naming it; lengths on a backend that cannot run them raise UnsupportedFeature.
        """
        model = self._unwrap(prepared)
        x, h0, c0, lengths = self._checked(prepared, x, h0, c0, batch_first, lengths)
        return self._run(model, x, h0, c0, batch_first=batch_first, **lengths)

    def forward_callable(self, prepared: "Prepared", x: np.ndarray, h0=None, c0=None, *,
                         batch_first: bool = False, variant: str = "", lengths=None) -> TimedForward:
        """run() split for timing (see TimedForward), on inputs checked as run() checks them.

        variant: one of forward_variants() ("" = the default, the first). A backend with variants gets it as
        `_forward_callable(..., variant=...)`; one without never sees the keyword (nor lengths, when none).
        """
        model = self._unwrap(prepared)
        variants = self.forward_variants()
        if variant and variant not in variants:
            raise ValueError(f"variant: expected one of {', '.join(map(repr, variants))} for {self.name}, "
                             f"got {variant!r}")
        x, h0, c0, lengths = self._checked(prepared, x, h0, c0, batch_first, lengths)
        chosen = {} if variants == ("",) else {"variant": variant or variants[0]}
        return self._forward_callable(model, x, h0, c0, batch_first=batch_first, **chosen, **lengths)

    def _checked(self, prepared: "Prepared", x, h0, c0, batch_first: bool, lengths):
        """x, h0, c0 checked, and the keyword arguments that carry lengths to _run ({} without lengths)."""
        checked = check_inputs(prepared.spec, x, h0, c0, batch_first=batch_first, lengths=lengths)
        check_fixed_lengths(prepared.fixed_lengths, checked.lengths)
        if checked.lengths is None:
            return checked.x, checked.h0, checked.c0, {}
        self.padding(prepared.spec)  # UnsupportedFeature where it cannot run lengths
        return checked.x, checked.h0, checked.c0, {"lengths": checked.lengths}

    def watch_kernel(self, prepared: "Prepared"):
        """A context manager whose dict is filled with the kernel that ran inside it, where a framework can
        fall back silently (torch's cuDNN / oneDNN / ATen cells, Keras's cuDNN path or generic loop)."""
        return self._watch_kernel(self._unwrap(prepared))

    def __repr__(self) -> str:
        return f"<backend {self.name}>"


# Registry: name -> "module:Class", imported on first use so no framework loads unasked.
_REGISTRY: dict[str, str] = {
    "numpy": "harness.backends.numpy_ref:NumpyBackend",
    "torch": "harness.backends.torch:TorchBackend",
    "keras": "harness.backends.keras:KerasBackend",
    "keras-tensorflow": "harness.backends.keras:KerasTensorFlowBackend",
    "keras-jax": "harness.backends.keras:KerasJaxBackend",
    "keras-torch": "harness.backends.keras:KerasTorchBackend",
    "onnx": "harness.backends.onnx:OnnxBackend",
    "onnx-reference": "harness.backends.onnx_reference:OnnxReferenceBackend",
    "tf1": "harness.backends.tf1:TF1Backend",
    "tf1-basic": "harness.backends.tf1:TF1BasicBackend",
    "tf-block": "harness.backends.tf_block:BlockLSTMBackend",
    "tf-block-cell": "harness.backends.tf_block:LSTMBlockCellBackend",
    "tf-block-v2": "harness.backends.tf_block:BlockLSTMV2Backend",
    "jax": "harness.backends.jax_scan:JaxScanBackend",
    "flax": "harness.backends.flax_linen:FlaxLinenBackend",
    "flax-nnx": "harness.backends.flax_nnx:FlaxNnxBackend",
    "equinox": "harness.backends.equinox:EquinoxBackend",
    "jax-cudnn": "harness.backends.jax_cudnn:JaxCudnnBackend",
}
_INSTANCES: dict[str, Backend] = {}
BUILT_IN = "built-in"
REGISTERED = "registered from Python (harness.backends.register)"
_ORIGINS: dict[str, str] = dict.fromkeys(_REGISTRY, BUILT_IN)  # name -> where it came from (see origin())

# Third-party backends: a distribution declares, in its pyproject.toml,
#     [project.entry-points."lstm_harness.backends"]
#     mine = "my_pkg.my_backend:MyBackend"
# and the registry adds them on first use (names(), get(), subjects()), so the CLI, the pytest options and the
# reproduce commands see them. The module is imported only when the backend is first used.
ENTRY_POINT_GROUP = "lstm_harness.backends"
_entry_points_loaded = False
IGNORED: dict[str, str] = {}  # entry points not added, with why (a name the harness already has)


def _registry() -> dict[str, str]:
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "an unnamed distribution"
            where = f"entry point {ep.name} = {ep.value} of {dist}"
            if ep.name in _REGISTRY:  # a plugin never replaces a backend silently; register() may, explicitly
                IGNORED[ep.name] = f"{where}: ignored, the name is taken by the {origin(ep.name)} backend"
                warnings.warn(f"lstm-harness: {IGNORED[ep.name]}", RuntimeWarning, stacklevel=2)
                continue
            _REGISTRY[ep.name] = f"{ep.module}:{ep.attr}"
            _ORIGINS[ep.name] = where
    return _REGISTRY


def names() -> list[str]:
    return list(_registry())


def target(name: str) -> str:
    """Backend `name`'s "module:Class"."""
    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown backend {name!r}; known backends: {', '.join(registry)}")
    return registry[name]


def origin(name: str) -> str:
    """Where backend `name` comes from: built-in, an entry point (which distribution), or register()."""
    return _ORIGINS.get(name, REGISTERED)


def get(name: str) -> Backend:
    if name not in _INSTANCES:
        module, cls = target(name).split(":")
        if origin(name) == BUILT_IN:
            _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
        else:  # someone else's code: one that cannot load is "not installed" with why, not a crash of every command
            _INSTANCES[name] = _load_outside(name, module, cls)
    return _INSTANCES[name]


def _load_outside(name: str, module: str, cls: str) -> Backend:
    try:
        backend = getattr(importlib.import_module(module), cls)()
    except Exception as exc:  # noqa: BLE001  (someone else's module: whatever it raises, it is not loadable)
        return Unloadable(name, f"{module}:{cls} could not be loaded ({type(exc).__name__}: {exc}); "
                                f"it comes from the {origin(name)}")
    if not isinstance(backend, Backend) or backend.name != name:
        what = f"a Backend named {backend.name!r}" if isinstance(backend, Backend) else type(backend).__name__
        return Unloadable(name, f"{module}:{cls} is {what}, expected a harness.backends.Backend subclass whose "
                                f"name is {name!r} (from the {origin(name)})")
    return backend


class Unloadable(Backend):
    """A backend from outside the package whose code cannot be loaded: reported as not installed, with why."""

    description = "a backend whose code could not be loaded"

    def __init__(self, name: str, reason: str):
        self.name, self.framework, self.reason = name, name, reason

    def installed(self) -> str | None:
        return self.reason

    def import_(self, native, spec, select=None):
        raise NotInstalled(self.reason)

    def to_native(self, model, dtype):
        raise NotInstalled(self.reason)


def register(name: str, target: str) -> None:
    """Add a backend from outside the package: register("mine", "my_pkg.my_backend:MyBackend").

    It wins over an entry point of the same name. The command line sees it only in this process: a reproduce
    command for it registers it first (harness.runner.reproduce_command); an entry point makes it permanent.
    """
    _registry()[name] = target
    _ORIGINS.pop(name, None)
    _INSTANCES.pop(name, None)


def subjects() -> list[str]:
    """The backends under test: every one but the reference and the aliases (`keras`)."""
    return [n for n in names() if not (get(n).reference or get(n).alias)]


def convert(native: Any, src: str, dst: str, spec: LSTMSpec, *, dtype=np.float32, select: str | None = None,
            allow_nonfinite: bool = False) -> Any:
    """Convert `native` parameters of backend `src` (describing `spec`) to backend `dst`'s.

    The function is preserved: features the target expresses only by folding are folded (the
    result's `.folded` lists them); features it cannot express raise UnsupportedFeature.
    `select` picks one LSTM where the source holds several (a prefix or scope name). A NaN or infinite
    parameter raises NonFiniteWeights naming the tensor and the index of the first one, unless
    `allow_nonfinite`.
    """
    if not isinstance(spec, LSTMSpec):  # else an AttributeError deep inside the import
        hint = " (LSTMSpec(**that_dict) makes one)" if isinstance(spec, dict) else ""
        raise TypeError(f"spec: expected an LSTMSpec describing the LSTM that `native` holds, got "
                        f"{type(spec).__name__} {spec!r}{hint}")
    precision.dtype_name(dtype)  # a bad dtype is named before the import runs
    with allowing_nonfinite(allow_nonfinite):
        model = get(src).import_(native, spec, select=select)
    return get(dst).export(model, dtype=dtype)


class NativeDict(dict):
    """A framework's named parameters (name -> numpy array), plus what the export folded."""

    folded: tuple[str, ...] = ()


class NativeList(list):
    """A framework's positional parameters (e.g. one Keras get_weights() list per layer), plus `folded`."""

    folded: tuple[str, ...] = ()
