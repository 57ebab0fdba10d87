"""A CanonicalLSTM as a side: its weights, run by the float64 oracle."""

from __future__ import annotations

from ..canonical import CanonicalLSTM
from . import Side


def recognise(obj) -> bool:
    return isinstance(obj, CanonicalLSTM)


def read(obj: CanonicalLSTM, select, option: str, lenient: bool) -> Side:
    if select is not None:
        raise ValueError(f"a CanonicalLSTM is one LSTM; got {option}={select!r}")
    return Side(f"CanonicalLSTM {obj.spec.features()}", "numpy", obj, "float64",
                lambda x, h0, c0, lengths=None: obj.forward(x, h0, c0, lengths=lengths), "the float64 oracle")
