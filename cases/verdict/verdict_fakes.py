"""Framework-free stand-ins for the verdict tests: a backend that runs the float64 oracle on exactly what it is
given, and records it, so a test controls what a "framework" returns and sees what it received.

Nothing here imports a framework (the mutation run forks one process per mutant from these tests).
"""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np

from harness.backends import Backend, Capabilities
from harness.canonical import CanonicalLSTM
from harness.outputs import LSTMOutput
from harness.spec import LSTMSpec

EVERYTHING = Capabilities(double_bias=True, forget_bias=True, projection=True, peephole=True, cell_clip=True,
                          proj_clip=True, dtypes=("float32", "float64", "float16", "bfloat16"), devices=("cpu", "cuda"),
                          lengths="zeros")


class Recording(Backend):
    """Runs the oracle on the weights and inputs it receives (in float64, so a correct run matches the oracle
    bit for bit when both see the same numbers); `transform` turns its outputs into a wrong answer."""

    name = "recording"
    framework = "numpy"
    description = "the oracle, recording what it was handed"
    capabilities = EVERYTHING

    def __init__(self, transform: Callable[[LSTMOutput], LSTMOutput] | None = None, *, not_installed: str = "",
                 unsupported: str = "", missing_device: str = "", raises: Exception | None = None,
                 capabilities: Capabilities | None = None, kernel: dict | None = None):
        self.transform = transform
        self.not_installed, self.unsupported, self.missing_device = not_installed, unsupported, missing_device
        self.raises = raises
        if capabilities is not None:
            self.capabilities = capabilities
        self.kernel = kernel or {}
        self.prepared: list[tuple[CanonicalLSTM, str, str]] = []  # (model, dtype, device) per prepare
        self.inputs: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None, bool]] = []  # per run
        self.lengths: list[np.ndarray | None] = []  # per run: the lengths it was handed
        self.padding_asked: list[LSTMSpec] = []  # the specs padding() was asked about

    def installed(self) -> str | None:
        return self.not_installed or None

    def supports(self, spec: LSTMSpec, dtype: str = "float32", device: str = "cpu", *,
                 lengths: bool = False) -> str | None:
        return self.unsupported or super().supports(spec, dtype, device, lengths=lengths)

    def device_missing(self, device: str) -> str | None:
        return (self.missing_device or None) if device != "cpu" else None

    def environment(self) -> dict[str, str]:
        return {"recording": "1"}

    def padding(self, spec: LSTMSpec) -> str:
        self.padding_asked.append(spec)
        return super().padding(spec)

    def to_native(self, model: CanonicalLSTM, dtype) -> CanonicalLSTM:
        return model.rounded(dtype)

    def import_(self, native, spec: LSTMSpec, select=None) -> CanonicalLSTM:
        return native.copy()

    def _prepare(self, model: CanonicalLSTM, dtype, device) -> CanonicalLSTM:
        self.prepared.append((model, dtype, device))
        return model

    def _run(self, model: CanonicalLSTM, x, h0, c0, *, batch_first=False, lengths=None) -> LSTMOutput:
        self.inputs.append((x, h0, c0, batch_first))
        self.lengths.append(lengths)
        if self.raises is not None:
            raise self.raises
        out = model.forward(x, h0, c0, batch_first=batch_first, lengths=lengths,
                            padding=self.capabilities.lengths if lengths is not None else "zeros")
        return self.transform(out) if self.transform else out

    @contextlib.contextmanager
    def _watch_kernel(self, model):
        yield self.kernel


def shift(part: str, by: float, index=None) -> Callable[[LSTMOutput], LSTMOutput]:
    """An output transform: add `by` to one output part (y, h_n or c_n), everywhere or at one index."""
    def transform(out: LSTMOutput) -> LSTMOutput:
        arrays = out._asdict()
        arr = np.array(arrays[part], dtype=np.float64)
        if index is None:
            arr += by
        else:
            arr[index] += by
        arrays[part] = arr
        return LSTMOutput(**arrays)
    return transform
