"""Finding one LSTM's parameters among named tensors, under any leading prefix or scope, and taking each one in:
`take` is where every import meets the user's own tensors, so an error about them names the user's key (with the
canonical parameter it becomes beside it), the expected and the actual shape, and a NaN or infinity is refused
with its index unless the caller allows it (`allowing_nonfinite`, convert(..., allow_nonfinite=True)).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from typing import Any, Iterator, Mapping

from ..inputs import first_nonfinite
from ..spec import DIRECTIONS

_NONFINITE_ALLOWED = contextvars.ContextVar("nonfinite_allowed", default=False)


class NonFiniteWeights(ValueError):
    """A parameter holds NaN or infinity: refused unless convert(..., allow_nonfinite=True) (--allow-nonfinite)."""


class Group(dict):
    """One LSTM's parameters by local name (see group_by_prefix), knowing the prefix they were found under."""

    prefix: str = ""

    def key(self, local: str) -> str:
        """The user's own key of a local name: the prefix put back."""
        return f"{self.prefix}{local}"


def group_by_prefix(native: Mapping[str, Any], pattern: str) -> dict[str, dict[str, Any]]:
    """Group the keys that end in `pattern` (a regex for the framework's local name) by their prefix.

    group_by_prefix({"enc.lstm.weight_ih_l0": w, ...}, r"(weight|bias)_(ih|hh|hr)_l\\d+(_reverse)?")
    -> {"enc.lstm.": {"weight_ih_l0": w, ...}}
    """
    if not isinstance(native, Mapping):
        raise TypeError(f"expected a mapping of parameter names to arrays, got {type(native).__name__}")
    rx = re.compile(rf"^(?P<prefix>.*?)(?P<local>{pattern})$")
    groups: dict[str, Group] = {}
    for key, value in native.items():
        m = rx.match(str(key))
        if m:
            if m.group("prefix") not in groups:
                groups[m.group("prefix")] = Group()
                groups[m.group("prefix")].prefix = m.group("prefix")
            groups[m.group("prefix")][m.group("local")] = value
    return groups


def pick(groups: dict[str, Group], select: str | None, what: str) -> Group:
    """The one group to import: the only one, or the one `select` names (with or without a trailing separator)."""
    if not groups:
        raise ValueError(f"no {what} parameters found")
    if select is None:
        if len(groups) > 1:
            raise ValueError(
                f"found {len(groups)} {what} LSTMs, under prefixes {sorted(groups)}; pass select= to pick one"
            )
        return next(iter(groups.values()))
    for prefix, group in groups.items():
        if select in (prefix, prefix.rstrip("./")):
            return group
    raise ValueError(f"select={select!r} matches none of the {what} prefixes {sorted(groups)}")


def to_numpy(name: str, value: Any):
    """A framework tensor (torch, tf, jax) or array as numpy, without importing the framework."""
    import numpy as np

    if hasattr(value, "detach"):  # torch
        value = value.detach().cpu().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # tf.Variable / EagerTensor
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError(f"{name}: expected a numeric array, got an object array")
    return arr


def part(layer: int, direction: int | None, what: str) -> str:
    """The canonical parameter a user's tensor holds, for messages: 'layer 0, forward, W_ih'."""
    return f"layer {layer}, {'both directions' if direction is None else DIRECTIONS[direction]}, {what}"


@contextlib.contextmanager
def allowing_nonfinite(allow: bool = True) -> Iterator[None]:
    """Within the block, `take` accepts NaN and infinity (convert(..., allow_nonfinite=True))."""
    token = _NONFINITE_ALLOWED.set(allow)
    try:
        yield
    finally:
        _NONFINITE_ALLOWED.reset(token)


def take(key: str, value: Any, shape: tuple[int, ...] | None = None, holds: str = "", why: str = "") -> Any:
    """The user's tensor `key` as a numpy array: numeric, of `shape` (the framework's own layout) when given,
    finite unless allowed. Errors name `key`, with `holds` (the canonical parameter, see `part`) beside it;
    a wrong shape adds `why` (what decides the shape, a hint) after it:

        weight_ih_l0 (layer 0, forward, W_ih): expected shape (20, 4), got (20, 3)
    """
    name = f"{key} ({holds})" if holds else key
    arr = to_numpy(name, value)
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}{f' ({why})' if why else ''}")
    check_finite(name, arr)
    return arr


def check_finite(name: str, arr) -> None:
    """NonFiniteWeights naming `name` and the index of the first NaN or infinity, unless allowed."""
    if _NONFINITE_ALLOWED.get() or arr.dtype.kind not in "fc" and arr.dtype.name != "bfloat16":
        return
    found = first_nonfinite(arr)
    if found:
        index, value, count = found
        raise NonFiniteWeights(f"{name}: {value} at index {index} ({count} non-finite value(s) in all): the weights "
                               "must be finite to convert (allow_nonfinite=True / --allow-nonfinite to convert "
                               "them as they are)")
