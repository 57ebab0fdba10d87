"""`numpy`: the float64 oracle as a backend. Its native parameters are the CanonicalLSTM itself.

It is the reference of every agreement test, never a subject: comparing it with itself proves
nothing. It exists as a backend so that convert() can go to and from the canonical form.
"""

from __future__ import annotations

import numpy as np

from ..canonical import CanonicalLSTM, tensor_names
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Backend, Capabilities
from ._names import check_finite, part


class NumpyBackend(Backend):
    name = "numpy"
    framework = "numpy"
    description = "the harness's float64 numpy oracle"
    capabilities = Capabilities(
        double_bias=True, forget_bias=True, projection=True, peephole=True, cell_clip=True, proj_clip=True,
        gate_clip=True, lengths="zeros",
    )
    reference = True

    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> CanonicalLSTM:
        # The canonical form is float64 by definition; a float32 export is rounded to float32 values.
        return model.rounded(dtype) if dtype != np.float64 else model.copy()

    def import_(self, native, spec: LSTMSpec, select=None) -> CanonicalLSTM:
        if not isinstance(native, CanonicalLSTM):
            raise TypeError(f"numpy backend: expected a CanonicalLSTM, got {type(native).__name__}")
        if native.spec != spec:
            raise ValueError(f"numpy backend: the CanonicalLSTM's spec {native.spec} differs from spec {spec}")
        names = tensor_names(spec)
        for key, value in native.tensors().items():  # the names CanonicalLSTM.save gives them
            k, d, name, _ = names[key]
            check_finite(f"{key} ({part(k, d, name)})", value)
        return native.copy()

    def _prepare(self, model: CanonicalLSTM, dtype, device) -> CanonicalLSTM:
        return model.rounded(dtype)

    def _run(self, prepared: CanonicalLSTM, x, h0, c0, *, batch_first=False, lengths=None) -> LSTMOutput:
        return prepared.forward(x, h0, c0, batch_first=batch_first, lengths=lengths)

    def environment(self) -> dict[str, str]:
        return {"numpy": np.__version__}
