"""A side from a parameter file, for `python -m harness diagnose`: read as `convert` reads SRC (harness.readers:
the spec from the file, the rest from the user's spec fields) and run as `convert --check` runs it (port_check's
runner for its framework: the file through its framework's own loader; a backend with no loader of its own:
the backend on the weights as read). Per-example lengths run as the file's backend runs them (torch packs,
Keras masks, Flax passes seq_lengths, ONNX feeds sequence_lens), with its convention for y at padded steps."""

from __future__ import annotations

from pathlib import Path

from .. import backends, port_check, readers
from ..spec import LSTMSpec
from . import Side, framework_lengths


def read_file(backend: str, path: str | Path, select, given: dict, options: dict, name: str) -> Side:
    b = backends.get(backend)
    needed = LSTMSpec.from_dict(given) if backend == "equinox" else None  # an .eqx is read against its spec
    source = readers.read(backend, path, select, needed, name)
    spec = readers.resolve(backend, source, given, options)
    model = b.import_(source.native, spec, select=source.select)
    dtype = port_check.stored_dtype(source.native)
    label = f"{backend} file {Path(path).name}"
    if b.reference:
        return Side(label, "numpy", model, "float64", lambda x, h0, c0, lengths=None: model.forward(
            x, h0, c0, lengths=lengths), "the float64 oracle")
    runner = port_check.RUNNERS.get(readers.family(backend))
    if runner is not None:
        what, run = runner
        side = Side(label, backend, model, dtype, lambda x, h0, c0, lengths=None: run(
            source, spec, (x, h0, c0), dtype, backend, lengths)[0], what, notes=source.notes)
    else:
        prepared = b.prepare(model, dtype, "cpu")
        side = Side(label, backend, model, dtype, lambda x, h0, c0, lengths=None: b.run(
            prepared, x, h0, c0, lengths=lengths), f"{backend} running the weights as read (no loader of its own "
            "is wired)", notes=source.notes)
    return framework_lengths(side, backend)  # per-example lengths as its backend runs them, or why not
