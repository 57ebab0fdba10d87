"""CanonicalLSTM: one framework-neutral set of LSTM weights.

Layout (PyTorch's, gate order **i, f, g, o**; g is the cell candidate that Keras calls c
and TF1 calls j):

    per (layer k, direction d):
      W_ih [4H, in_k]     in_0 = input_size, in_k = D * (P or H) for k > 0
      W_hh [4H, P or H]   the recurrent input is the (projected) h
      b_ih [4H], b_hh [4H]  a single bias lives in b_ih with b_hh zero; "none": both zero
      w_i, w_f, w_o [H]   peephole vectors (only when spec.peephole)
      W_hr [P, H]         projection (only when spec.proj_size)

All arrays are float64. The forward pass (the oracle) is in harness.oracle.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from . import atomic
from .spec import DIRECTIONS, LSTMSpec

GATES = ("i", "f", "g", "o")
SCHEMA_VERSION = 1
FORMAT_NAME = "lstm-harness/canonical"
PARAM_NAMES = ("W_ih", "W_hh", "b_ih", "b_hh", "w_i", "w_f", "w_o", "W_hr")


@dataclass
class LayerWeights:
    """The weights of one direction of one layer, canonical layout (see module docstring)."""

    W_ih: np.ndarray
    W_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray
    w_i: np.ndarray | None = None
    w_f: np.ndarray | None = None
    w_o: np.ndarray | None = None
    W_hr: np.ndarray | None = None

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        for name in PARAM_NAMES:
            value = getattr(self, name)
            if value is not None:
                yield name, value

    def copy(self) -> "LayerWeights":
        return LayerWeights(**{n: (None if v is None else np.array(v, dtype=np.float64)) for n, v in self._all()})

    def _all(self):
        return [(n, getattr(self, n)) for n in PARAM_NAMES]


def expected_shapes(spec: LSTMSpec, layer: int) -> dict[str, tuple[int, ...]]:
    """The canonical shape of every parameter of one (layer, direction) under `spec`."""
    H, P = spec.hidden_size, spec.proj_size
    shapes = {
        "W_ih": (4 * H, spec.layer_input_size(layer)),
        "W_hh": (4 * H, spec.output_size),
        "b_ih": (4 * H,),
        "b_hh": (4 * H,),
    }
    if spec.peephole:
        shapes.update(w_i=(H,), w_f=(H,), w_o=(H,))
    if P:
        shapes["W_hr"] = (P, H)
    return shapes


def tensor_names(spec: LSTMSpec) -> dict[str, tuple[int, int, str, tuple[int, ...]]]:
    """Every on-disk name of `spec`'s tensors ('l0.forward.W_ih', see CanonicalLSTM.tensors) -> (layer,
    direction, parameter, shape)."""
    return {f"l{k}.{DIRECTIONS[d]}.{name}": (k, d, name, shape)
            for k, d in spec.units() for name, shape in expected_shapes(spec, k).items()}


def unit_name(layer: int, direction: int) -> str:
    """Human/path name of one (layer, direction): 'layer=0, direction=forward'."""
    return f"layer={layer}, direction={DIRECTIONS[direction]}"


def as_float64(name: str, value, shape: tuple[int, ...]) -> np.ndarray:
    """Check one parameter's shape and dtype, return it as a float64 array (never broadcast)."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name}: expected a real floating-point array, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}")
    return arr.astype(np.float64, copy=True)


@dataclass
class CanonicalLSTM:
    """A spec plus its weights, indexed by (layer, direction index)."""

    spec: LSTMSpec
    weights: dict[tuple[int, int], LayerWeights]
    # Features a conversion folded into others to reach this form (e.g. "forget_bias=1 folded into b_ih").
    folded: tuple[str, ...] = field(default=(), compare=False)
    # Sequence lengths the source model fixes (an ONNX constant sequence_lens): every run must pass these.
    fixed_lengths: tuple[int, ...] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        expected_units = set(self.spec.units())
        got = set(self.weights)
        if got != expected_units:
            raise ValueError(
                f"CanonicalLSTM.weights: expected (layer, direction) keys {sorted(expected_units)}, got {sorted(got)}"
            )
        for (k, d), lw in self.weights.items():
            shapes = expected_shapes(self.spec, k)
            for name in PARAM_NAMES:
                value = getattr(lw, name)
                path = f"weights[{unit_name(k, d)}].{name}"
                if name in shapes:
                    if value is None:
                        raise ValueError(f"{path}: missing; spec {self.spec.features()} needs shape {shapes[name]}")
                    setattr(lw, name, as_float64(path, value, shapes[name]))
                elif value is not None:
                    raise ValueError(f"{path}: given, but the spec has no such parameter ({self.spec.features()})")
            if self.spec.bias == "single" and np.any(lw.b_hh):
                raise ValueError(f"weights[{unit_name(k, d)}].b_hh: must be zero for bias='single' (it lives in b_ih)")
            if self.spec.bias == "none" and (np.any(lw.b_ih) or np.any(lw.b_hh)):
                raise ValueError(f"weights[{unit_name(k, d)}]: biases must be zero for bias='none'")

    def __getitem__(self, key: tuple[int, int]) -> LayerWeights:
        return self.weights[key]

    def copy(self) -> "CanonicalLSTM":
        return CanonicalLSTM(self.spec, {u: lw.copy() for u, lw in self.weights.items()}, self.folded,
                             self.fixed_lengths)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CanonicalLSTM) or other.spec != self.spec:
            return False
        return all(
            dict((n, v.tolist()) for n, v in self.weights[u].items())
            == dict((n, v.tolist()) for n, v in other.weights[u].items())
            for u in self.spec.units()
        )

    # Construction ----------------------------------------------------------------------------
    @classmethod
    def random(cls, spec: LSTMSpec, seed: int = 0) -> "CanonicalLSTM":
        """Deterministic weights that make porting bugs visible.

        - every gate has its own scale and offset, so swapping two gate blocks changes the output;
        - both bias slots are nonzero (for bias="double"), so dropping b_hh shows;
        - pre-activations stay mostly in sigmoid/tanh's linear range (|z| ~< 2), so a 200-step
          float32 run stays well conditioned and no gate saturates into insensitivity;
        - peephole vectors and the projection are nonzero with their own scales.
        The stream is numpy's PCG64, stable across numpy versions.
        """
        H = spec.hidden_size
        # Per gate (i, f, g, o): weight scale (times 1/sqrt(fan_in)) and bias offset.
        # Summed offsets i +0.35, f +0.8 (leans open, as in a trained LSTM), g -0.05, o -0.5: all distinct.
        gate_scale = np.repeat([0.9, 0.6, 1.2, 0.75], H)[:, None]
        gate_offset_ih = np.repeat([0.25, 0.6, -0.1, -0.3], H)
        gate_offset_hh = np.repeat([0.1, 0.2, 0.05, -0.2], H)
        weights = {}
        for k, d in spec.units():
            rng = np.random.Generator(np.random.PCG64([seed, k, d]))
            fan_in = spec.layer_input_size(k)
            fan_rec = spec.output_size
            lw = LayerWeights(
                W_ih=rng.uniform(-1, 1, (4 * H, fan_in)) * gate_scale / np.sqrt(fan_in),
                W_hh=rng.uniform(-1, 1, (4 * H, fan_rec)) * gate_scale / np.sqrt(fan_rec),
                b_ih=np.zeros(4 * H),
                b_hh=np.zeros(4 * H),
            )
            b_ih = gate_offset_ih + rng.uniform(-0.2, 0.2, 4 * H)
            b_hh = gate_offset_hh + rng.uniform(-0.2, 0.2, 4 * H)
            if spec.bias == "double":
                lw.b_ih, lw.b_hh = b_ih, b_hh
            elif spec.bias == "single":
                lw.b_ih = b_ih + b_hh
            if spec.peephole:
                lw.w_i = 0.3 + rng.uniform(-0.25, 0.25, H)
                lw.w_f = -0.2 + rng.uniform(-0.25, 0.25, H)
                lw.w_o = 0.5 + rng.uniform(-0.25, 0.25, H)
            if spec.proj_size:
                lw.W_hr = rng.uniform(-1, 1, (spec.proj_size, H)) * 1.1 / np.sqrt(H)
            weights[(k, d)] = lw
        return cls(spec, weights)

    def random_inputs(
        self, batch: int, steps: int, seed: int = 0, *, batch_first: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x [T, B, in] (or [B, T, in]), and nonzero h0 [L*D, B, P or H], c0 [L*D, B, H], float64."""
        spec = self.spec
        rng = np.random.Generator(np.random.PCG64([seed, 7919]))
        x = rng.uniform(-1, 1, (steps, batch, spec.input_size))
        if batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        n = spec.num_layers * spec.num_directions
        h0 = rng.uniform(-0.5, 0.5, (n, batch, spec.output_size))
        c0 = rng.uniform(-1.0, 1.0, (n, batch, spec.hidden_size))
        return x, h0, c0

    def rounded(self, dtype) -> "CanonicalLSTM":
        """A copy whose weights are exactly representable in `dtype` (still stored as float64).

        The oracle of a float32 case runs on these, so oracle and framework see identical numbers.
        """
        dtype = np.dtype(dtype)
        out = self.copy()
        for lw in out.weights.values():
            for name, value in lw.items():
                setattr(lw, name, value.astype(dtype).astype(np.float64))
        return out

    # Folding: express a feature through others, for targets that lack it --------------------
    def fold_biases(self) -> "CanonicalLSTM":
        """b_ih + b_hh into b_ih (bias="single"): the same function with one bias."""
        if self.spec.bias != "double":
            return self.copy()
        out = self.copy()
        for lw in out.weights.values():
            lw.b_ih = lw.b_ih + lw.b_hh
            lw.b_hh = np.zeros_like(lw.b_hh)
        out.spec = self.spec.replace(bias="single")
        out.folded = self.folded + ("b_ih + b_hh summed into one bias",)
        return out

    def fold_forget_bias(self) -> "CanonicalLSTM":
        """Add the run-time forget_bias into the forget part of b_ih: the same function, forget_bias=0."""
        fb = self.spec.forget_bias
        if fb == 0:
            return self.copy()
        out = self.copy()
        H = self.spec.hidden_size
        new_bias = "double" if self.spec.bias == "double" else "single"
        for lw in out.weights.values():
            lw.b_ih = lw.b_ih.copy()
            lw.b_ih[H : 2 * H] += fb
        out.spec = self.spec.replace(forget_bias=0.0, bias=new_bias)
        out.folded = self.folded + (f"run-time forget_bias={fb:g} added into the forget part of the bias",)
        return out

    # Oracle ---------------------------------------------------------------------------------
    def forward(self, x, h0=None, c0=None, *, batch_first: bool = False, lengths=None, padding: str = "zeros"):
        """Exact float64 forward pass; see harness.oracle for the layout, lengths (right-padded valid steps per
        example) and padding (what y holds at padded steps: "zeros", "carry" or "undefined")."""
        from .oracle import forward

        return forward(self, x, h0, c0, batch_first=batch_first, lengths=lengths, padding=padding)

    # Persistence ----------------------------------------------------------------------------
    def tensors(self) -> dict[str, np.ndarray]:
        """Flat mapping 'l{k}.{forward|backward}.{name}' -> array (the on-disk names)."""
        return {f"l{k}.{DIRECTIONS[d]}.{name}": v for (k, d), lw in self.weights.items() for name, v in lw.items()}

    def metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT_NAME,
            "schema_version": str(SCHEMA_VERSION),
            "spec": json.dumps(self.spec.to_dict(), sort_keys=True),
            "gate_order": "".join(GATES),
            **({} if self.fixed_lengths is None else {"fixed_lengths": json.dumps(list(self.fixed_lengths))}),
        }

    def save(self, path: str | Path) -> Path:
        """Write to .npz or .safetensors (chosen by suffix), with the spec and a schema version."""
        path = Path(path)
        tensors = self.tensors()
        meta = self.metadata()
        if path.suffix == ".npz":
            arrays = dict(tensors)
            arrays["__metadata__"] = np.array(json.dumps(meta))  # a unicode array: no pickle needed
            with atomic.open_for_writing(path, "wb") as fh:
                np.savez(fh, **arrays)
        elif path.suffix == ".safetensors":
            from safetensors.numpy import save_file

            with atomic.writing(path) as tmp:
                save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp), metadata=meta)
        else:
            raise ValueError(f"save(path): expected a .npz or .safetensors suffix, got {path.suffix!r} ({path})")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "CanonicalLSTM":
        """Read a file written by save(); every shape is checked against the stored spec; never unpickles.

        A file that is not one (corrupt, cut short, another program's) is a ValueError naming it."""
        path = Path(path)
        if path.suffix not in (".npz", ".safetensors"):
            raise ValueError(f"load(path): expected a .npz or .safetensors suffix, got {path.suffix!r} ({path})")
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as data:
                    arrays = {k: data[k] for k in data.files}
                if "__metadata__" not in arrays:
                    raise ValueError("no __metadata__ entry")
                meta = json.loads(str(arrays.pop("__metadata__")))
            else:
                from safetensors import safe_open

                with safe_open(str(path), framework="numpy") as fh:
                    meta = fh.metadata() or {}
                    arrays = {k: fh.get_tensor(k) for k in fh.keys()}
            if not isinstance(meta, dict):
                raise ValueError(f"metadata is a {type(meta).__name__}, not a mapping")
        except FileNotFoundError:
            raise
        except Exception as exc:  # BadZipFile, EOFError, KeyError, a safetensors header error, pickled objects...
            raise ValueError(f"{path}: not a file CanonicalLSTM.save wrote ({type(exc).__name__}: {exc})") from exc
        return cls.from_tensors(arrays, meta, source=str(path))

    @classmethod
    def from_tensors(cls, arrays: dict[str, np.ndarray], meta: dict[str, str], source: str = "<tensors>"):
        if meta.get("format") != FORMAT_NAME:
            raise ValueError(f"{source}: metadata format is {meta.get('format')!r}, expected {FORMAT_NAME!r}")
        version = meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise ValueError(f"{source}: schema_version {version!r} is not supported (this harness reads {SCHEMA_VERSION})")
        if meta.get("gate_order", "ifgo") != "".join(GATES):
            raise ValueError(f"{source}: gate_order {meta.get('gate_order')!r}, expected 'ifgo'")
        try:
            spec = LSTMSpec.from_dict(json.loads(meta["spec"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: metadata 'spec' is not an LSTMSpec ({type(exc).__name__}: {exc})") from exc
        expected = tensor_names(spec)
        missing = sorted(set(expected) - set(arrays))
        extra = sorted(set(arrays) - set(expected))
        if missing or extra:
            raise ValueError(f"{source}: tensors do not match the spec {spec}: missing {missing}, unexpected {extra}")
        fields: dict[tuple[int, int], dict[str, np.ndarray]] = {unit: {} for unit in spec.units()}
        for key, (k, d, name, shape) in expected.items():
            fields[(k, d)][name] = as_float64(f"{source}:{key}", arrays[key], shape)
        fixed = meta.get("fixed_lengths")
        return cls(spec, {unit: LayerWeights(**f) for unit, f in fields.items()},
                   fixed_lengths=None if fixed is None else tuple(int(n) for n in json.loads(fixed)))

    def replace_spec(self, **changes) -> "CanonicalLSTM":
        return dataclasses.replace(self.copy(), spec=self.spec.replace(**changes))
