"""Finding one LSTM's parameters among named tensors, under any leading prefix or scope."""

from __future__ import annotations

import re
from typing import Any, Mapping


def group_by_prefix(native: Mapping[str, Any], pattern: str) -> dict[str, dict[str, Any]]:
    """Group the keys that end in `pattern` (a regex for the framework's local name) by their prefix.

    group_by_prefix({"enc.lstm.weight_ih_l0": w, ...}, r"(weight|bias)_(ih|hh|hr)_l\\d+(_reverse)?")
    -> {"enc.lstm.": {"weight_ih_l0": w, ...}}
    """
    if not isinstance(native, Mapping):
        raise TypeError(f"expected a mapping of parameter names to arrays, got {type(native).__name__}")
    rx = re.compile(rf"^(?P<prefix>.*?)(?P<local>{pattern})$")
    groups: dict[str, dict[str, Any]] = {}
    for key, value in native.items():
        m = rx.match(str(key))
        if m:
            groups.setdefault(m.group("prefix"), {})[m.group("local")] = value
    return groups


def pick(groups: dict[str, dict[str, Any]], select: str | None, what: str) -> dict[str, Any]:
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
