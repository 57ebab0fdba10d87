"""LSTMSpec: what an LSTM computes, independent of the framework it came from.

A spec describes the LSTM as a function. It is validated on construction; what
only *some* frameworks refuse (torch.nn.LSTM wants proj_size < hidden_size, Keras
has no projection) is a backend's unsupported combination, not an invalid spec.

Every field is keyword-only with a default, so new features (other activations,
per-example sequence lengths are a forward() argument) can be added later without
breaking callers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

BIAS_KINDS = ("double", "single", "none")
DIRECTIONS = ("forward", "backward")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"LSTMSpec.{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"LSTMSpec.{name} must be >= {minimum}, got {value}")


def _check_clip(name: str, value: Any) -> None:
    """cell_clip, proj_clip: TF1 LSTMCell's meaning, which clips whenever the argument is not None; 0 clips to zero."""
    if value is None:
        return
    expected = "a finite number >= 0, or None (off)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"LSTMSpec.{name}: expected {expected}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"LSTMSpec.{name}: expected {expected}, got {value!r}")
    if value < 0:
        what = "c" if name == "cell_clip" else "the projected h"
        raise ValueError(
            f"LSTMSpec.{name}: expected {expected}, got {value!r}: TF1's clip_by_value({what}, -{name}, {name}) "
            f"with a negative bound sets every value of {what} to the constant {-value!r}, which the canonical "
            "LSTM does not model (0 clips to zero, as in TF1; None is off)"
        )


def _check_gate_clip(value: Any) -> None:
    """gate_clip: ONNX's clip attribute, which onnxruntime requires to be > 0."""
    if value is None:
        return
    expected = "a positive finite number, or None (off)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"LSTMSpec.gate_clip: expected {expected}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"LSTMSpec.gate_clip: expected {expected}, got {value!r} (ONNX's clip; onnxruntime refuses clip <= 0, "
            "and no framework runs one)"
        )


@dataclass(frozen=True, kw_only=True)
class LSTMSpec:
    """The LSTM as a function.

    input_size, hidden_size: feature sizes (H = hidden_size).
    num_layers, bidirectional: stacking; layer k+1 reads both directions of layer k, concatenated.
    proj_size: 0 = none; else h is projected to proj_size (LSTMP, TF1 num_proj).
    peephole: input and forget gates read the previous c, the output gate the new c.
    bias: "double" (b_ih and b_hh, as PyTorch/cuDNN/ONNX), "single" (one bias), "none".
    forget_bias: constant added to the forget-gate pre-activation at run time (TF1 cells).
    cell_clip: c is clipped to [-cell_clip, cell_clip] (None = off; 0 clips c to zero, as TF1's LSTMCell).
    proj_clip: the projected h is clipped to [-proj_clip, proj_clip] (None = off; 0 clips to zero; needs a
        projection).
    gate_clip: every gate pre-activation, peephole terms and forget_bias included, is clipped to
        [-gate_clip, gate_clip] before its activation (ONNX's clip; None = off; > 0).
    """

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    peephole: bool = False
    bias: str = "double"
    forget_bias: float = 0.0
    cell_clip: float | None = None
    proj_clip: float | None = None
    gate_clip: float | None = None

    def __post_init__(self) -> None:
        _check_int("input_size", self.input_size, 1)
        _check_int("hidden_size", self.hidden_size, 1)
        _check_int("num_layers", self.num_layers, 1)
        _check_int("proj_size", self.proj_size, 0)
        for flag in ("bidirectional", "peephole"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"LSTMSpec.{flag} must be a bool, got {getattr(self, flag)!r}")
        if self.bias not in BIAS_KINDS:
            raise ValueError(f"LSTMSpec.bias must be one of {BIAS_KINDS}, got {self.bias!r}")
        fb = self.forget_bias
        if isinstance(fb, bool) or not isinstance(fb, (int, float)) or not math.isfinite(fb):
            raise TypeError(f"LSTMSpec.forget_bias must be a finite number, got {fb!r}")
        object.__setattr__(self, "forget_bias", float(fb))
        _check_clip("cell_clip", self.cell_clip)
        _check_clip("proj_clip", self.proj_clip)
        _check_gate_clip(self.gate_clip)
        if self.proj_clip is not None and self.proj_size == 0:
            raise ValueError(
                f"LSTMSpec.proj_clip={self.proj_clip} clips the projection, but proj_size=0 (no projection)"
            )

    # Derived sizes ---------------------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def directions(self) -> tuple[str, ...]:
        return DIRECTIONS[: self.num_directions]

    @property
    def output_size(self) -> int:
        """Width of h (and of each direction's part of y): proj_size if projected, else hidden_size."""
        return self.proj_size or self.hidden_size

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.output_size * self.num_directions

    def units(self) -> list[tuple[int, int]]:
        """Every (layer, direction index) pair, in PyTorch's h_n order (layer * D + direction)."""
        return [(k, d) for k in range(self.num_layers) for d in range(self.num_directions)]

    def replace(self, **changes: Any) -> "LSTMSpec":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LSTMSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"LSTMSpec: unknown field(s) {unknown}; known fields are {sorted(known)}")
        return cls(**data)

    def features(self) -> list[str]:
        """The non-default features this spec uses, as short names (for messages and reports)."""
        out = []
        if self.bidirectional:
            out.append("bidirectional")
        if self.num_layers > 1:
            out.append(f"{self.num_layers} layers")
        if self.proj_size:
            out.append(f"projection (proj_size={self.proj_size})")
        if self.peephole:
            out.append("peepholes")
        out.append(f"{self.bias} bias")
        if self.forget_bias:
            out.append(f"forget_bias={self.forget_bias:g}")
        if self.cell_clip is not None:
            out.append(f"cell_clip={self.cell_clip:g}")
        if self.proj_clip is not None:
            out.append(f"proj_clip={self.proj_clip:g}")
        if self.gate_clip is not None:
            out.append(f"gate_clip={self.gate_clip:g}")
        return out
