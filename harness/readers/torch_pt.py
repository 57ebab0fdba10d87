"""PyTorch files written by torch.save (.pt, .pth, .bin, .ckpt): read with torch's weights-only loader only.

    torch.load(path, weights_only=True, map_location="cpu")

unpickles tensors, dicts, lists and plain numbers, and refuses every other global before calling it, so a
pickle whose reduce would run code never runs it. torch < 2.6 is refused: its weights-only loader could be
made to run code (CVE-2025-32434, fixed in 2.6). What the loader refuses stays refused, with a safe fix;
its own advice to pass weights_only=False is never relayed. A TorchScript archive (torch.jit.save) holds
code, and is named as such with its fix.

What the file may hold: a state_dict, or a checkpoint holding one anywhere in nested dicts
({"model": state_dict, "optimizer": ..., "epoch": 3}, Lightning's {"state_dict": ...}). Every tensor is
flattened to a dotted key ("model.lstm.weight_ih_l0"), so the torch import finds the LSTM under any prefix
and --select picks one where there are several (an EMA copy beside the model). The spec comes from the
names and shapes (spec_fields, also for .safetensors and .npz state_dicts).
"""

from __future__ import annotations

import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import Source, pick

SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
MIN_TORCH = (2, 6)
_LOCAL = r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(?P<layer>\d+)(?P<rev>_reverse)?"
_SAVE_STATE_DICT = ("where the model was made (or from a file you trust), save its tensors only:\n"
                    "    torch.save(model.state_dict(), 'lstm.pt')   # or, with no pickle at all:\n"
                    "    safetensors.torch.save_file(model.state_dict(), 'lstm.safetensors')")


def handles(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES and not _is_tf_checkpoint(path)


def _is_tf_checkpoint(path: Path) -> bool:
    return path.suffix.lower() == ".ckpt" and Path(f"{path}.index").is_file()  # a TF prefix named *.ckpt


def _torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any(n.endswith("/constants.pkl") for n in names) or any("/code/" in n for n in names)


def check_version(torch) -> None:
    found = tuple(int(p) for p in re.findall(r"\d+", torch.__version__)[:2])
    if found < MIN_TORCH:
        raise ImportError(f"reading a torch.save file needs torch >= 2.6 (its weights-only loader; earlier ones "
                          f"could be made to run code, CVE-2025-32434), found torch {torch.__version__}; upgrade "
                          "torch, or save the state_dict as .safetensors where the model was made")


def read(path: Path, select, what: str = "SRC") -> Source:
    import torch

    check_version(torch)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file {path}")
    if _torchscript(path):
        raise ValueError(
            f"{what}: {path.name} is a TorchScript archive (torch.jit.save): it holds code beside the weights, and "
            "this command runs no model code. From a file you trust, take the weights out once:\n"
            f"    m = torch.jit.load('{path.name}'); safetensors.torch.save_file(m.state_dict(), 'lstm.safetensors')\n"
            "then convert lstm.safetensors with --from torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Detected pickle protocol 4", TorchScript dispatch: said below if it matters
        try:
            loaded = torch.load(str(path), weights_only=True, map_location="cpu")
        except Exception as exc:  # the weights-only unpickler's refusal, a truncated or foreign file
            raise ValueError(_refusal(path, exc, what)) from None
    arrays, notes = {}, []
    _flatten(loaded, "", arrays, notes, torch)
    if not arrays:
        raise ValueError(f"{what}: {path.name} holds no tensors (a {type(loaded).__name__}); expected a state_dict "
                         "or a checkpoint holding one")
    source = Source(arrays, "torch.save file", notes=notes, select=select)
    fields, evidence = spec_fields(arrays, select, what)
    source.fields, source.evidence = fields, evidence
    return source


def _refusal(path: Path, exc: Exception, what: str) -> str:
    """torch's refusal, keeping what it found and dropping its advice to load without the safe loader."""
    text = str(exc)
    found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
    if found:
        return (f"{what}: {path.name} holds Python objects beside tensors (it needs {found.group(1)}), which "
                "torch's weights-only loader refuses, so nothing in it ran. Fix: " + _SAVE_STATE_DICT)
    if "weights_only" in text or "Weights only load failed" in text:
        first = next((line.split("error:", 1)[-1].strip() for line in text.splitlines()
                      if "WeightsUnpickler error" in line), "")
        return (f"{what}: {path.name} is refused by torch's weights-only loader ({first or 'not a torch.save file it can read'})"
                "; nothing in it ran. Fix: " + _SAVE_STATE_DICT)
    return f"{what}: {path} could not be read as a torch.save file: {type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _flatten(node, prefix: str, out: dict, notes: list, torch) -> None:
    """Every tensor in nested dicts, under its dotted path; bfloat16 widened to float32 (exactly)."""
    if isinstance(node, torch.Tensor):
        tensor = node.detach()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
            if not any("bfloat16" in n for n in notes):
                notes.append("bfloat16 tensors widened to float32 (exact): numpy holds no bfloat16")
        out[prefix.rstrip(".")] = tensor.numpy()
    elif isinstance(node, Mapping):
        for key, value in node.items():
            _flatten(value, f"{prefix}{key}.", out, notes, torch)


def spec_fields(native, select, what: str = "SRC"):
    """The torch.nn.LSTM the state_dict names determine: (fields, evidence)."""
    from ..backends._names import group_by_prefix

    groups = group_by_prefix(native, _LOCAL)
    if not groups:
        raise ValueError(f"{what}: no torch.nn.LSTM parameters (weight_ih_l0, weight_hh_l0, ...) among "
                         f"{_some(native)}")
    prefix, params = pick(groups, select, what, "torch.nn.LSTM")
    rx = re.compile(_LOCAL)
    units = {(int(m["layer"]), bool(m["rev"])) for m in map(rx.fullmatch, params)}
    layers = sorted({k for k, _ in units})
    if layers != list(range(len(layers))):
        raise ValueError(f"{what}: the torch.nn.LSTM under {prefix!r} has layers {layers}: not 0..{len(layers) - 1}")
    bidirectional = any(rev for _, rev in units)
    ih, hh = _shape(params, prefix, "weight_ih_l0"), _shape(params, prefix, "weight_hh_l0")
    hr = params.get("weight_hr_l0")
    hidden = ih[0] // 4
    fields = {"input_size": ih[1], "hidden_size": hidden, "num_layers": len(layers), "bidirectional": bidirectional,
              "proj_size": 0 if hr is None else int(np.shape(hr)[0]),
              "bias": "double" if "bias_ih_l0" in params else "none",
              "peephole": False, "forget_bias": 0.0, "cell_clip": None, "proj_clip": None, "gate_clip": None}
    def name(key: str) -> str:  # the user's own key
        return f"{prefix}{key}"

    evidence = {"input_size": f"{name('weight_ih_l0')} is {list(ih)}", "hidden_size": f"{name('weight_ih_l0')} is {list(ih)}",
                "num_layers": f"layers l0..l{len(layers) - 1} under {prefix!r}",
                "bidirectional": f"{'' if bidirectional else 'no '}*_reverse parameters under {prefix!r}",
                "proj_size": (f"{name('weight_hr_l0')} is {list(np.shape(hr))}" if hr is not None
                              else f"no weight_hr_l0 under {prefix!r}"),
                "bias": f"{'' if fields['bias'] == 'double' else 'no '}bias_ih_l0/bias_hh_l0 under {prefix!r}"}
    for feature in ("peephole", "forget_bias", "cell_clip", "proj_clip", "gate_clip"):
        evidence[feature] = "torch.nn.LSTM has none"
    if hh[1] != (fields["proj_size"] or hidden):
        raise ValueError(f"{what}: {name('weight_hh_l0')} is {list(hh)}, expected [{4 * hidden}, "
                         f"{fields['proj_size'] or hidden}] beside {name('weight_ih_l0')} {list(ih)}")
    return fields, evidence


def _shape(params, prefix, key):
    if key not in params:
        raise ValueError(f"SRC: no {prefix}{key} beside {sorted(prefix + k for k in params)[:4]}")
    return tuple(int(n) for n in np.shape(params[key]))


def _some(native) -> str:
    keys = list(native)[:6] if isinstance(native, Mapping) else []
    return f"{keys}{' ...' if isinstance(native, Mapping) and len(native) > 6 else ''}"
