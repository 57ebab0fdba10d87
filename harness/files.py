"""LSTM parameter files per backend, in each framework's natural form, for `python -m harness convert`.

Nothing here ever unpickles: .npz is read with allow_pickle=False, and pickle files (.pkl, .pickle, .joblib)
are refused with how to save the same weights as safetensors instead. torch.save files (.pt, .pth, .bin,
.ckpt), Keras, Flax msgpack, Orbax and SavedModel files are read by harness.readers, each with its own
library (torch's through its weights-only loader); -o never writes a pickle.

    backend               file (-o suffix; SRC the same)          holds
    numpy                 .npz, .safetensors                      CanonicalLSTM.save: the spec inside
    torch                 .safetensors, .npz                      state_dict names (weight_ih_l0, ...)
    keras                 .keras                                  a Sequential of the LSTM / Bidirectional layers,
                                                                  saved by Keras (keras.saving.load_model reads it)
                          .npz, .safetensors                      layer{k}.{i}: get_weights()[i] of stacked layer k
                                                                  (SRC may instead hold Keras variable paths,
                                                                  {v.path: v.numpy() for v in model.weights})
    tf1, tf1-basic        TF checkpoint prefix (any other name),  checkpoint variable names
                          .npz, .safetensors                      (SRC: prefix, prefix.index or its folder)
    onnx, onnx-reference  .onnx                                   the model OnnxBackend.export_model writes
                                                                  (SRC: any ONNX model, e.g. from torch.onnx.export)
    flax, flax-nnx        .msgpack                                flax.serialization.to_bytes of the tree (linen's
                                                                  variables; nnx's pure state dict)
                          .npz, .safetensors                      the parameter tree flattened with '/' paths
    jax, tf-block*        .npz, .safetensors                      the backend's own names
    equinox               .eqx                                    eqx.tree_serialise_leaves(path, cells)
    jax-cudnn             .npy                                    the flat weight vector

A backend registered from outside (backends.register) reads and writes .npz / .safetensors of its
parameters when they are a (nested) mapping of arrays.
"""

from __future__ import annotations

import contextlib
import glob
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import atomic, backends
from .backends._jax import flatten  # imports no framework
from .canonical import CanonicalLSTM, expected_shapes, unit_name
from .spec import LSTMSpec

ARRAYS = (".safetensors", ".npz")
CHECKPOINT = "TF checkpoint"  # the form with no suffix of its own: a prefix
# Each backend's file forms, the natural one first (see the module docstring).
FORMS: dict[str, tuple[str, ...]] = {
    "numpy": (".npz", ".safetensors"),
    "torch": (".safetensors", ".npz"),
    "keras": (".keras", ".npz", ".safetensors"),
    "flax": (".msgpack", *ARRAYS),
    "flax-nnx": (".msgpack", *ARRAYS),
    "tf1": (CHECKPOINT, *ARRAYS),
    "tf1-basic": (CHECKPOINT, *ARRAYS),
    "onnx": (".onnx",),
    "onnx-reference": (".onnx",),
    "equinox": (".eqx",),
    "jax-cudnn": (".npy",),
}
_SUFFIXES = {s for f in FORMS.values() for s in f if s != CHECKPOINT}
PICKLES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib")
TORCH_SAVE = (".pt", ".pth", ".bin", ".ckpt")  # read (never written) by --from torch: harness.readers.torch_pt
_KERAS_KEY = re.compile(r"layer(\d+)\.(\d+)")


def forms(backend: str) -> tuple[str, ...]:
    return FORMS.get(_own(backend), ARRAYS)


def _own(backend: str) -> str:
    """The backend whose parameters `backend` takes (keras-jax: keras's), whose files are its files."""
    return backends.get(backend).native_as or backend  # an unknown name: KeyError listing the known ones


def _refuse_pickle(path: Path, what: str) -> None:
    suffix = path.suffix.lower()
    if suffix not in PICKLES:
        return
    if what == "-o":
        raise ValueError(f"{what}: {path.name} would be a pickle file ({path.suffix}), which this command never "
                         "writes: write .safetensors instead (torch: lstm.load_state_dict(safetensors.torch.load_file(OUT)))")
    if suffix in TORCH_SAVE:
        raise ValueError(f"{what}: {path.name} is a torch.save file ({path.suffix}): read it with --from torch "
                         "(torch's weights-only loader), then convert to any backend")
    raise ValueError(
        f"{what}: {path.name} is a pickle file ({path.suffix}); unpickling runs arbitrary code, so this command "
        "never reads one. Save the weights as safetensors where they were made, e.g. for PyTorch:\n"
        "    from safetensors.torch import save_file\n"
        "    save_file(model.state_dict(), 'lstm.safetensors')  # then: --from torch lstm.safetensors\n"
        "(or torch.save(model.state_dict(), 'lstm.pt'), read by --from torch with torch's weights-only loader; "
        "Keras: model.save('model.keras'))")


def _checkpoint_prefix(path: Path) -> str | None:
    """The TF checkpoint SRC names, or None: its prefix, prefix.index, or a folder holding a `checkpoint`
    file (tf.train.latest_checkpoint) or exactly one *.index."""
    if path.is_dir():
        if (path / "checkpoint").is_file():
            import tensorflow as tf

            return tf.train.latest_checkpoint(str(path))
        indexes = sorted(path.glob("*.index"))
        if len(indexes) > 1:
            raise ValueError(f"SRC: folder {path} holds {len(indexes)} TF checkpoints "
                             f"({', '.join(p.name for p in indexes)}): name one by its prefix")
        return str(indexes[0].with_suffix("")) if indexes else None
    if path.suffix == ".index" and path.is_file():
        return str(path.with_suffix(""))
    if Path(f"{path}.index").is_file():
        return str(path)
    return None


def output_form(backend: str, path: str | Path, what: str = "-o") -> str:
    """The form `write` will give `path` (checked before any reading: a bad -o fails fast)."""
    return _form_of(backend, Path(path), what, reading=False)


def _form_of(backend: str, path: Path, what: str, reading: bool) -> str:
    """Which of the backend's forms `path` is; a clear refusal naming the expected ones otherwise."""
    allowed = forms(backend)
    suffix = path.suffix.lower()
    # A checkpoint is named by a prefix: any name but another form's suffix or a pickle's (.ckpt is TF's own).
    prefix_like = CHECKPOINT in allowed and (suffix == ".ckpt" or suffix not in (*PICKLES, *_SUFFIXES))
    if reading:
        if _checkpoint_prefix(path):
            if CHECKPOINT in allowed:
                return CHECKPOINT
            raise ValueError(f"{what}: {path} is a TF checkpoint, read by --from tf1 or tf1-basic; "
                             f"{backend} parameters are {' or '.join(allowed)} files")
        if suffix in allowed:
            if not path.is_file():
                raise FileNotFoundError(f"{what}: no file {path}")
            return suffix
        if path.is_dir():
            raise FileNotFoundError(f"{what}: folder {path} holds no TF checkpoint (no `checkpoint` file or *.index)")
        if prefix_like:
            raise FileNotFoundError(f"{what}: no TF checkpoint {path} ({path}.index does not exist)")
    else:
        if suffix in allowed:
            return suffix
        if prefix_like:
            return CHECKPOINT  # prefix.index and prefix.data-00000-of-00001 are written
    _refuse_pickle(path, what)
    raise ValueError(f"{what}: {backend} parameters are {' or '.join(allowed)} files; got {path.name!r}")


def output_files(backend: str, path: str | Path, what: str = "-o") -> list[Path]:
    """The files `write(backend, ..., path)` writes: a TF checkpoint prefix's two, else `path` itself."""
    path = Path(path)
    if output_form(backend, path, what) == CHECKPOINT:
        return [Path(f"{path}.index"), Path(f"{path}.data-00000-of-00001")]
    return [path]


def source_files(path: str | Path) -> list[Path]:
    """The files SRC names, found without reading any: the file, a TF checkpoint's .index and data shards (SRC
    a prefix or its .index), or every file in a folder (a checkpoint folder, a SavedModel, an Orbax checkpoint).
    For refusing an OUT that is SRC."""
    path = Path(path)
    if path.is_dir():
        return [path, *path.rglob("*")]
    prefix = path.with_suffix("") if path.suffix == ".index" else path
    return [path, Path(f"{prefix}.index"), *prefix.parent.glob(f"{glob.escape(prefix.name)}.data-*")]


# Reading -------------------------------------------------------------------------------------------
def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        if not zipfile.is_zipfile(path):  # else numpy takes it for a pickle, and says so
            raise ValueError("not a zip archive, which every .npz is")
        with np.load(path, allow_pickle=False) as data:  # an object array raises instead of unpickling
            return {k: data[k] for k in data.files}
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except TypeError as exc:  # numpy has no bfloat16: safetensors cannot hand it over
        raise ValueError(f"{exc}; numpy holds no bfloat16: save the tensors as float32 "
                         "({k: v.float() for k, v in state_dict.items()})") from exc


def _read_checkpoint(prefix: str) -> dict[str, np.ndarray]:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def read(backend: str, path: str | Path, spec: LSTMSpec | None, what: str = "SRC") -> Any:
    """The file at `path` as `backend`'s import reads it (spec: needed for .eqx only, to know the cells)."""
    backend = _own(backend)
    path = Path(path)
    form = _form_of(backend, path, what, reading=True)
    if form == ".eqx":
        return _read_equinox(path, spec, what)
    with _parsing(path, "a canonical file" if backend == "numpy" else form, what):
        if backend == "numpy":
            return CanonicalLSTM.load(path)
        if form == CHECKPOINT:
            return _read_checkpoint(_checkpoint_prefix(path))
        if form == ".onnx":
            import onnx

            return onnx.load(str(path))  # with any external data files beside it
        if form == ".npy":
            return np.load(path, allow_pickle=False)
        arrays = _read_arrays(path)
    if backend == "keras" and arrays and all(_KERAS_KEY.fullmatch(k) for k in arrays):
        return _keras_lists(arrays, path)
    return arrays


@contextlib.contextmanager
def _parsing(path: Path, kind: str, what: str):
    """A parser's own exception (a corrupt header, a protobuf DecodeError, numpy taking a non-zip for a pickle)
    as a ValueError that says which file and what it was read as; a missing framework stays an ImportError."""
    try:
        yield
    except ImportError:
        raise
    except Exception as exc:
        raise ValueError(f"{what}: {path} could not be read as {kind}: {type(exc).__name__}: {exc}") from exc


def _keras_lists(arrays: dict[str, np.ndarray], path: Path) -> list[list[np.ndarray]]:
    """layer{k}.{i} keys -> one get_weights() list per layer; a gap in k or i is an error, never skipped."""
    index = {tuple(map(int, _KERAS_KEY.fullmatch(k).groups())): v for k, v in arrays.items()}
    layers = []
    for k in range(1 + max(k for k, _ in index)):
        count = sum(1 for kk, _ in index if kk == k)
        missing = [f"layer{k}.{i}" for i in range(count) if (k, i) not in index]
        if not count or missing:
            raise ValueError(f"{path}: keras keys must run layer{{k}}.{{i}} without gaps; "
                             f"missing {missing or [f'layer{k}.0']}")
        layers.append([index[(k, i)] for i in range(count)])
    return layers


def _equinox_leaves(fh, path: Path, what: str) -> list[tuple[tuple[int, ...], np.dtype]]:
    """Every leaf's (shape, dtype) from its .npy header, read without reading (or allocating) any data."""
    size = path.stat().st_size
    leaves = []
    while fh.tell() < size:
        try:
            version = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = reader(fh)
        except ValueError as exc:
            raise ValueError(f"{what}: {path} is not an equinox leaf file (leaf {len(leaves)}: {exc})") from exc
        if dtype.hasobject:
            raise ValueError(f"{what}: {path} leaf {len(leaves)} holds Python objects (dtype {dtype}): never unpickled")
        end = fh.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end > size:
            raise ValueError(f"{what}: {path} is truncated: leaf {len(leaves)} {dtype} {shape} needs {end} bytes, "
                             f"the file has {size}")
        leaves.append((tuple(shape), dtype))
        fh.seek(end)
    return leaves


def _read_equinox(path: Path, spec: LSTMSpec | None, what: str):
    import equinox as eqx

    if spec is None:
        raise ValueError(f"{what}: reading {path.name} needs --spec (an .eqx file holds arrays, not the cells' sizes)")
    n = len(spec.units())
    # What the spec's cells hold, leaf by leaf (weight_ih, weight_hh, bias per cell), checked against the file's
    # headers before anything of the spec's size is built: a typo of hidden_size 20000 is an error, not 13 GB.
    wanted = []
    for i, (k, d) in enumerate(spec.units()):
        shapes = expected_shapes(spec, k)
        fields = [("weight_ih", "W_ih"), ("weight_hh", "W_hh")] + ([("bias", "b_ih")] if spec.bias != "none" else [])
        wanted += [(f"cells[{i}].{field} ({unit_name(k, d)})", shapes[canonical]) for field, canonical in fields]
    sizes = f"input_size={spec.input_size}, hidden_size={spec.hidden_size}, {', '.join(spec.features())}"
    with open(path, "rb") as fh:
        leaves = _equinox_leaves(fh, path, what)
        for i, ((name, shape), got) in enumerate(zip(wanted, leaves)):
            if got[0] != shape:
                raise ValueError(f"{what}: {path} leaf {i}, {name}: expected shape {shape} for the {n} "
                                 f"equinox.nn.LSTMCell of spec ({sizes}), got {got[0]}")
        if len(leaves) != len(wanted):
            raise ValueError(f"{what}: {path} holds {len(leaves)} arrays; the {n} equinox.nn.LSTMCell of spec "
                             f"({sizes}) hold {len(wanted)} (more or fewer layers or directions, or bias?)")
        dtypes = {str(d) for _, d in leaves}
        if len(dtypes) != 1:
            raise ValueError(f"{what}: {path} mixes dtypes {sorted(dtypes)}; the cells hold one")
        fh.seek(0)
        like = list(backends.get("equinox").export(CanonicalLSTM.random(spec), dtype=leaves[0][1]))  # the structure
        try:
            cells = eqx.tree_deserialise_leaves(fh, like)
        except Exception as exc:  # equinox checks every leaf's shape and dtype against `like`
            raise ValueError(f"{what}: {path} does not hold the {n} equinox.nn.LSTMCell of spec "
                             f"{spec.features()}: {type(exc).__name__}: {exc}") from exc
    return cells


# Writing -------------------------------------------------------------------------------------------
@dataclass
class Written:
    files: list[str]  # what was written (a checkpoint is two files)
    folded: tuple[str, ...]  # what the export folded (Backend.adapt)
    spec: LSTMSpec  # the spec of the written parameters: --spec to read them back
    contents: dict[str, tuple[str, tuple[int, ...]]]  # name -> (dtype, shape) of every array


def named_arrays(backend: str, native: Any) -> dict[str, np.ndarray]:
    """A backend's parameters as flat named arrays: the keys its files use."""
    backend = _own(backend)
    if backend == "numpy":
        return native.tensors()
    if backend == "keras":
        return {f"layer{k}.{i}": a for k, layer in enumerate(native) for i, a in enumerate(layer)}
    if backend == "equinox":
        return {f"{i}/{name}": np.asarray(getattr(cell, name)) for i, cell in enumerate(native)
                for name in ("weight_ih", "weight_hh", "bias") if getattr(cell, name) is not None}
    if isinstance(native, np.ndarray):
        return {"weights": np.asarray(native)}
    if isinstance(native, Mapping):
        return {k: np.asarray(v) for k, v in flatten(native, f"{backend} parameters").items()}
    raise ValueError(f"{backend} parameters are a {type(native).__name__}, which has no file form here "
                     "(expected a mapping of names to arrays)")


def write(backend: str, model: CanonicalLSTM, path: str | Path, dtype, what: str = "-o") -> Written:
    """Export `model` to `backend` in `dtype` and write it in that framework's file form (FORMS)."""
    backend = _own(backend)
    path = Path(path)
    form = _form_of(backend, path, what, reading=False)
    b = backends.get(backend)
    native = b.export(model, dtype=dtype)  # UnsupportedFeature for what the target cannot express
    contents = {k: (str(v.dtype), v.shape) for k, v in named_arrays(backend, native).items()}
    files = [str(p) for p in output_files(backend, path, what)]
    # Every form goes through harness.atomic: a write that fails part-way leaves an earlier OUT intact.
    if backend == "numpy":
        native.save(path)
    elif form == CHECKPOINT:
        from .backends import tf1

        tf1.save_checkpoint(native, path)
    elif form == ".onnx":
        import onnx

        with atomic.writing(path) as tmp:
            onnx.save(b.export_model(model, dtype), str(tmp))  # one file: the export writes no external data
    elif form == ".keras":
        from .backends.keras import sequential

        keras_model = sequential(native, b.adapt(model).spec, dtype)
        with atomic.writing(path) as tmp:  # the temporary keeps the .keras suffix Keras insists on
            keras_model.save(tmp)
    elif form == ".msgpack":
        from flax import serialization

        from .readers.flax_msgpack import plain_tree

        # to_bytes, as a Flax user writes it: its state dict (keys as strings: nnx's layer 0 is "0"), so that
        # serialization.from_bytes(target, OUT) restores it into the user's own variables or nnx state
        atomic.write_bytes(path, serialization.to_bytes(plain_tree(native)))
    elif form == ".eqx":
        import equinox as eqx

        with atomic.writing(path) as tmp:
            eqx.tree_serialise_leaves(tmp, list(native))
    elif form == ".npy":
        with atomic.open_for_writing(path, "wb") as fh:
            np.save(fh, np.asarray(native), allow_pickle=False)
    elif form == ".npz":
        with atomic.open_for_writing(path, "wb") as fh:
            np.savez(fh, **named_arrays(backend, native))
    else:
        from safetensors.numpy import save_file

        with atomic.writing(path) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in named_arrays(backend, native).items()}, str(tmp))
    return Written(files, tuple(native.folded), b.adapt(model).spec, contents)
