"""Reading the files users have, each with the library made for it, into what a backend's import reads,
plus the LSTMSpec fields the file determines (so `python -m harness convert` needs no --spec for them).

    SRC                                          module           --from
    .pt .pth .bin .ckpt (torch.save)             torch_pt         torch          torch.load(weights_only=True)
    .keras, .weights.h5, .h5 (Keras 3 / 2)       keras_archive    keras          zipfile + json + h5py: no model code
    TF2 checkpoint, SavedModel folder            tf_saved         keras, tf1     tf.train.load_checkpoint (variables only)
    .msgpack (flax.serialization.to_bytes)       flax_msgpack     flax, flax-nnx flax.serialization.msgpack_restore
    Orbax checkpoint folder                      orbax            flax, flax-nnx orbax.checkpoint, restored as plain arrays
    the forms harness.files reads (.safetensors, .npz, .onnx, TF1 checkpoints, .eqx, .npy), its way

What decides the spec, per backend family (`fields`): a state_dict's names and shapes (torch_pt), Keras
get_weights() lists, variable paths and configs (keras_archive), Flax trees (flax_msgpack), ONNX graphs
(onnx_model), TF1 checkpoints (tf1.spec_from_checkpoint, which cannot know forget_bias and the clips: they
are `open`, the user's to give), a canonical file's own spec. Nothing here unpickles: .pkl files and any
pickle that torch's weights-only loader refuses stay refused (torch_pt).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import backends, files
from ..canonical import CanonicalLSTM
from ..spec import LSTMSpec

REQUIRED = ("input_size", "hidden_size")


class SpecError(ValueError):
    """The spec cannot be settled: a field the user gave contradicts the file, or one is missing."""


@dataclass
class Source:
    """A parameter file as read: what the backend's import takes, and what the file says about the LSTM."""

    native: Any
    form: str  # what it was read as, for messages ("torch.save file", ".keras archive", ...)
    fields: dict[str, Any] = field(default_factory=dict)  # LSTMSpec fields the file determines
    evidence: dict[str, str] = field(default_factory=dict)  # field -> where in the file it is read
    open: tuple[str, ...] = ()  # fields the file cannot hold, which the user must give
    notes: list[str] = field(default_factory=list)  # what was read, ignored or assumed, to print
    select: Any = None  # select= for the import (None where the reader already picked the layers)
    run: dict[str, Any] = field(default_factory=dict)  # what port_check needs to run it with its own framework
    path: Path | None = None


def family(backend: str) -> str:
    """The file family of a backend: keras-* variants read Keras files, tf1-basic TF1's."""
    for name in ("keras", "flax-nnx", "flax", "tf1", "onnx"):
        if backend == name or backend.startswith(name + "-"):
            return name
    return backend


def read(backend: str, path: str | Path, select=None, spec: LSTMSpec | None = None, what: str = "SRC") -> Source:
    """Read `path` as `backend`'s parameters with the reader made for its form; spec: only an .eqx needs it."""
    from . import flax_msgpack, keras_archive, orbax, tf_saved, torch_pt

    backends.get(backend)  # an unknown name: KeyError listing the known ones
    path = Path(path)
    fam = family(backend)
    source = None
    if fam == "torch" and torch_pt.handles(path):
        source = torch_pt.read(path, select, what)
    elif fam == "keras" and keras_archive.handles(path):
        source = keras_archive.read(path, select, what)
    elif fam in ("keras", "tf1") and tf_saved.handles(path):
        source = tf_saved.read(path, fam, select, what)
    elif fam in ("flax", "flax-nnx") and flax_msgpack.handles(path):
        source = flax_msgpack.read(path, fam, select, what)
    elif fam in ("flax", "flax-nnx") and orbax.handles(path):
        source = orbax.read(path, fam, select, what)
    if source is None:
        native = files.read(backend, path, spec, what)
        source = Source(native, files.forms(backend)[0] if backend == "numpy" else path.suffix or "checkpoint",
                        select=select)
        fill_fields(backend, source, what)
    source.path = path
    return source


def fill_fields(backend: str, source: Source, what: str = "SRC") -> None:
    """Add the spec fields that the arrays already read determine (their names and shapes)."""
    from . import flax_msgpack, keras_archive, onnx_model, torch_pt

    native, select, fam = source.native, source.select, family(backend)
    if isinstance(native, CanonicalLSTM):
        source.fields = native.spec.to_dict()
        source.evidence = {k: "the spec stored in the file" for k in source.fields}
        return
    if fam == "torch":
        found = torch_pt.spec_fields(native, select, what)
    elif fam == "keras":
        found = keras_archive.fields_from_native(native, select, source, what)
    elif fam in ("flax", "flax-nnx"):
        found = flax_msgpack.spec_fields(fam, native, select, what)
    elif fam == "onnx":
        found = onnx_model.spec_fields(native, select, what)
    elif fam == "tf1":
        found = _tf1_fields(backend, native, select)
    else:
        return  # equinox, jax, jax-cudnn, tf-block*: the file's names say too little; --spec gives the spec
    fields, evidence = found[:2]
    source.fields.update(fields)
    source.evidence.update(evidence)
    if len(found) > 2:
        source.open = found[2]


def _tf1_fields(backend: str, native, select):
    from ..backends import tf1

    spec = tf1.spec_from_checkpoint(native, forget_bias=0.0, cell_clip=None, proj_clip=None, select=select)
    open_ = ("forget_bias",) if backend == "tf1-basic" else ("forget_bias", "cell_clip", "proj_clip")
    fields = {k: v for k, v in spec.to_dict().items() if k not in open_}
    if backend == "tf1-basic":
        fields.update(cell_clip=None, proj_clip=None)
    return fields, {k: "the checkpoint's variable names and shapes" for k in fields}, open_


def resolve(backend: str, source: Source, given: dict[str, Any], options: dict[str, str]) -> LSTMSpec:
    """The spec: the file's fields, and the user's (`given`, by the option that gave each) for the rest.

    A field both give must agree (else SpecError naming it); a field neither gives is an error naming the
    option that supplies it, where the file cannot hold it (`open`) or no reader infers the sizes.
    """
    for name, value in given.items():
        if name in source.fields and not _same(source.fields[name], value):
            where = source.evidence.get(name, "the file")
            raise SpecError(f"{options.get(name, '--spec')}: {name}={value!r}, but SRC holds {name}="
                            f"{source.fields[name]!r} ({where}); leave it out: SRC's own value is used")
    merged = {**source.fields, **given}
    open_missing = [f for f in source.open if f not in merged]
    if open_missing:
        flags = ", ".join(f"--{f.replace('_', '-')}" for f in open_missing)
        why = ("the TF1 cell's constructor arguments, which a checkpoint does not hold (TF1's defaults were "
               "forget_bias=1.0, cell_clip none, proj_clip none: say what the code used)"
               if family(backend) == "tf1" else "SRC does not hold them")
        raise SpecError(f"--from {backend} needs {flags} (or {', '.join(open_missing)} in --spec): {why}")
    missing = [f for f in REQUIRED if f not in merged]
    if missing:
        example = ", ".join(f'"{f}": {n}' for f, n in zip(REQUIRED, (5, 7)))
        raise SpecError(f"--from {backend} needs --spec with {', '.join(missing)} (and num_layers, bidirectional, "
                        f"bias, ... where they differ from LSTMSpec's defaults): a {backend} {source.form} file does "
                        f"not say them; e.g. --spec '{{{example}, \"num_layers\": 2}}'")
    try:
        return LSTMSpec.from_dict(merged)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"--spec: {exc}") from exc


def pick(groups: dict[str, dict], select, what: str, kind: str) -> tuple[str, dict]:
    """The (prefix, parameters) of the one LSTM `select` names among `groups` (group_by_prefix's), or the only one;
    the error names --select and the prefixes to choose from."""
    if select is None:
        if len(groups) > 1:
            first = sorted(groups)[0].rstrip("./") or "''"
            raise ValueError(f"{what} holds {len(groups)} {kind} LSTMs, under prefixes {sorted(groups)}: name one "
                             f"with --select (e.g. --select {first})")
        return next(iter(groups.items()))
    for prefix, group in groups.items():
        if select in (prefix, prefix.rstrip("./")):
            return prefix, group
    raise ValueError(f"--select {select}: matches none of the {kind} LSTMs, under prefixes {sorted(groups)}")


def _same(a, b) -> bool:
    """Equal; a float also when equal in float32 (files hold float32: an ONNX clip of 0.1 is 0.1 rounded)."""
    if isinstance(a, float) or isinstance(b, float):
        import numpy as np

        return a is not None and b is not None and (float(a) == float(b) or np.float32(a) == np.float32(b))
    return a == b
