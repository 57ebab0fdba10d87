"""An onnx.ModelProto, or a path to a .onnx file: the spec from its LSTM nodes (harness.readers.onnx_model), the
weights through the onnx backend's import, run by onnxruntime on the user's own graph from the first LSTM node's
input on (port_check's runner: the nodes' weights are the graph's own)."""

from __future__ import annotations

import os
from pathlib import Path

from .. import backends
from ..readers import Source
from ..spec import LSTMSpec
from . import Side, framework_lengths, loaded, renamed


def recognise(obj) -> bool:
    if isinstance(obj, (str, os.PathLike)):
        return Path(obj).suffix.lower() == ".onnx"
    onnx = loaded("onnx")
    return onnx is not None and isinstance(obj, onnx.ModelProto)


def read(obj, select, option: str, lenient: bool) -> Side:
    from ..port_check import _onnx
    from ..readers import onnx_model

    label = f"ONNX model {Path(obj).name!r}" if isinstance(obj, (str, os.PathLike)) else "ONNX model"
    if isinstance(obj, (str, os.PathLike)):
        if not Path(obj).is_file():
            raise FileNotFoundError(f"no ONNX file {obj}")
        import onnx

        obj = onnx.load(str(obj))
    try:
        fields, _ = onnx_model.spec_fields(obj, select, "the model")
    except ValueError as exc:
        raise renamed(exc, option) from None
    spec = LSTMSpec(**fields)
    model = backends.get("onnx").import_(obj, spec, select)
    source = Source(obj, "ONNX model", select=select)
    side = Side(label, "onnx", model, "float32",
                lambda x, h0, c0, lengths=None: _onnx(source, spec, (x, h0, c0), "float32", "onnx", lengths)[0],
                "onnxruntime on the user's graph, from the first LSTM node's input on (lengths: every LSTM node's "
                "sequence_lens)")
    return framework_lengths(side, "onnx")
