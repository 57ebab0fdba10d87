"""`onnx-reference`: the same ONNX model as the `onnx` backend (harness/backends/onnx.py builds and
imports it), run by onnx.reference.ReferenceEvaluator, the operator's Python reference implementation.

It runs float32 and float64, and batch-major nodes (layout=1) natively: batch-first input feeds
layout=1 nodes directly (the evaluator swaps the axes inside the operator). It ignores the clip,
activations, input_forget and sequence_lens of an LSTM node (measured in cases/test_onnx.py): a spec
with gate_clip (the canonical form of clip) and per-example lengths (sequence_lens) are declared
unsupported here, and the canonical LSTM expresses neither of the others (the export never writes them and
the import refuses them).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import Backend, Capabilities
from .onnx import OPSET, OnnxBackend


class OnnxReferenceBackend(OnnxBackend):
    name = "onnx-reference"
    framework = "onnx.reference"
    description = "the ONNX LSTM operator in onnx.reference.ReferenceEvaluator"
    capabilities = Capabilities(double_bias=True, peephole=True, dtypes=("float32", "float64"))
    layout_for_batch_first = 1
    lacks: dict[str, str] = {
        "clip": "ReferenceEvaluator ignores the LSTM's clip attribute (runs unclipped)",
        "activations": "ReferenceEvaluator ignores activations (always Sigmoid, Tanh, Tanh)",
        "input_forget": "ReferenceEvaluator ignores input_forget",
        "sequence_lens": "ReferenceEvaluator ignores sequence_lens (runs every sequence to full length)",
    }
    lengths_missing = lacks["sequence_lens"]

    def compile(self, proto, device: str = "cpu") -> Callable[[dict], list]:
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(proto)
        return lambda feeds: evaluator.run(None, feeds)

    def set_threads(self, threads: int) -> dict[str, str]:
        return Backend.set_threads(self, threads)  # numpy underneath, not an onnxruntime session

    def environment(self) -> dict[str, str]:
        import onnx

        return {"onnx": onnx.__version__, "onnx_opset": str(OPSET), "numpy": np.__version__}
