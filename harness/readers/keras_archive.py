"""Keras files: .keras archives, .weights.h5 files and legacy (Keras 2 / tf.keras, or Keras 3's legacy
writer) full-model or weights-only .h5 files. Read with zipfile, json and h5py: no model code runs, no
layer is deserialised, a Lambda layer's code is never looked at.

    .keras        zip: config.json (the model's config) + model.weights.h5, where an LSTM layer's weights
                  are <layer>/cell/vars/{0,1,2} (kernel, recurrent_kernel, bias) and a Bidirectional's
                  <layer>/forward_layer/cell/vars, <layer>/backward_layer/cell/vars; <layer>/vars carries
                  the layer's name
    .weights.h5   the same weights file alone (model.save_weights): no config
    .h5           legacy: the config as the root's `model_config` attribute (a full model) or none
                  (weights only); weights under model_weights/<layer> (or the root), in the order of the
                  layer group's `weight_names` attribute: get_weights()'s order

What Keras's config says that changes the function is read, or refused by name (LAYER_RULES): activation
and recurrent_activation (tanh and sigmoid only; Keras 2's hard_sigmoid is another function), use_bias (the
bias kind), go_backwards (only as a Bidirectional's backward half), merge_mode (concat; None on the last
layer), return_sequences (only the last layer may return its last step alone: that is y[-1] = h_n of the
last layer, so the converted LSTM, which returns every step, holds the same function), and stateful
(accepted: Keras carries h, c between calls, the converted LSTM takes them as h0, c0). unit_forget_bias,
dropout and recurrent_dropout act in training only: ignored, and said so. Without a config (.weights.h5,
a weights-only .h5, variable paths, a TF2 checkpoint) those fields cannot be read: Keras's defaults are
assumed, and said so.

Which layers are the LSTM: the LSTM and Bidirectional(LSTM) layers that read one another (through
Dropout-like layers, the identity at inference) form one stack; where there are several stacks, or the
file holds no config to say what reads what, --select names the layers in order ("lstm,lstm_1").
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import UnsupportedFeature
from . import Source

TRANSPARENT = ("Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "AlphaDropout", "ActivityRegularization")
MODELS = ("Sequential", "Functional", "Model")
ASSUMED = ("SRC holds no Keras config, so activation tanh, recurrent_activation sigmoid, go_backwards False and "
           "merge_mode concat are assumed (Keras's defaults): a model built otherwise is another function")


@dataclass
class KerasLayer:
    """One LSTM or Bidirectional(LSTM) layer of a Keras file."""

    name: str
    weights: list  # get_weights(): kernel, recurrent_kernel, (bias), per direction, forward first
    bidirectional: bool
    config: dict | None = None  # the layer's config (None: the file holds none)
    after: str | None = None  # the layer whose output it reads, where the config says
    class_name: str = "LSTM"
    notes: list[str] = field(default_factory=list)


def handles(path: Path) -> bool:
    return path.suffix.lower() in (".keras", ".h5", ".hdf5")


def read(path: Path, select, what: str = "SRC") -> Source:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file {path}")
    import h5py

    suffix = path.suffix.lower()
    try:
        if suffix == ".keras":
            if not zipfile.is_zipfile(path):
                raise ValueError("not a zip archive, which every .keras file is")
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
                if "config.json" not in names or "model.weights.h5" not in names:
                    raise ValueError(f"expected config.json and model.weights.h5 in the archive, found {sorted(names)}")
                config = json.loads(z.read("config.json"))
                with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5:
                    found = _weights_v3(h5)
            layers, form, loader = with_config(config, found), ".keras archive", "load_model"
        else:
            with h5py.File(path, "r") as h5:
                if "model_config" in h5.attrs:
                    config = json.loads(_text(h5.attrs["model_config"]))
                    layers = with_config(config, _weights_legacy(h5["model_weights"]))
                    form, loader = "legacy Keras .h5 model", "load_model"
                elif "layer_names" in h5.attrs or "model_weights" in h5:
                    layers = _bare(_weights_legacy(h5.get("model_weights", h5)))
                    form, loader = "legacy Keras weights .h5", "set_weights"
                else:
                    layers, form, loader = _bare(_weights_v3(h5)), "Keras .weights.h5", "set_weights"
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        if isinstance(exc, UnsupportedFeature):
            raise
        raise ValueError(f"{what}: {path} could not be read as a Keras file: {type(exc).__name__}: {exc}") from exc
    source = from_layers(layers, select, form, what)
    source.run["loader"] = loader
    return source


def from_layers(layers: list[KerasLayer], select, form: str, what: str = "SRC") -> Source:
    """The Source of Keras LSTM layers in hand (a file's, or a live model's: harness.sides.keras): the one stack
    chosen, each config checked, the spec fields read; run["layers"] names the chosen layers in order."""
    source = Source(None, form)
    source.native = _take(layers, select, source, what)
    source.run["layers"] = [layer.name for layer in source.run.pop("chosen")]
    return source


def fields_from_native(native, select, source: Source, what: str = "SRC"):
    """Spec fields of Keras arrays already read: get_weights() lists (layer{k}.{i} keys) or variable paths."""
    if isinstance(native, Mapping):
        from ..backends.keras import layers_from_paths

        found = layers_from_paths(native)
        layers = [KerasLayer(name, layer.weights, layer.bidirectional) for name, layer in found.items()]
        if not layers:
            raise ValueError(f"{what}: no Keras LSTM variables ('<layer>/lstm_cell/kernel') among {list(native)[:6]}")
        probe = Source(None, source.form)
        _take(layers, select, probe, what)  # settles which layers (or asks for --select), and the fields
    else:
        if not isinstance(native, list):
            return {}, {}
        layers, prev = [], None
        for k, weights in enumerate(native):
            layers.append(KerasLayer(f"layer{k}", list(weights), len(weights) in (4, 6), after=prev))
            prev = f"layer{k}"
        probe = Source(None, source.form)
        _take(layers, None, probe, what)
    source.notes += probe.notes
    return probe.fields, probe.evidence


# The weights ------------------------------------------------------------------------------------
def _weights_v3(h5) -> dict[str, tuple[list, bool]]:
    """Keras 3's weights file: every LSTM (<g>/cell/vars) and Bidirectional (<g>/forward_layer/...) group."""
    found: dict[str, tuple[list, bool]] = {}

    def cell_vars(group):
        v = group.get("cell/vars")
        return None if v is None else [v[str(i)][()] for i in range(len(v))]

    def visit(group):
        for key in group:
            child = group[key]
            if not hasattr(child, "keys"):
                continue
            name = _text(child["vars"].attrs.get("name", key)) if "vars" in child else key
            if "forward_layer" in child and "backward_layer" in child:
                fw, bw = cell_vars(child["forward_layer"]), cell_vars(child["backward_layer"])
                if fw is not None and bw is not None:
                    found[name] = (fw + bw, True)
                    continue
            weights = cell_vars(child) if key != "cell" else None
            if weights is not None and len(weights) in (2, 3) and _is_lstm(weights):
                found[name] = (weights, False)
                continue
            visit(child)

    visit(h5)
    return found


def _weights_legacy(group) -> dict[str, tuple[list, bool]]:
    """A legacy .h5: per layer (in the root's layer_names order) its weights in weight_names order."""
    found = {}
    for name in map(_text, group.attrs.get("layer_names", list(group))):
        layer = group[name]
        names = [_text(n) for n in layer.attrs.get("weight_names", [])]
        if not names:
            continue
        weights = [layer[n][()] for n in names]
        bidirectional = any("/forward_" in n for n in names) and any("/backward_" in n for n in names)
        per_dir = weights[: len(weights) // 2] if bidirectional else weights
        if len(per_dir) in (2, 3) and _is_lstm(per_dir):
            found[name] = (weights, bidirectional)
    return found


def _is_lstm(weights) -> bool:
    kernel, rec = (np.shape(w) for w in weights[:2])
    return len(kernel) == 2 and len(rec) == 2 and rec[1] == 4 * rec[0] and kernel[1] == rec[1]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bare(found: dict[str, tuple[list, bool]]) -> list[KerasLayer]:
    return [KerasLayer(name, weights, bidi) for name, (weights, bidi) in found.items()]


# The config -------------------------------------------------------------------------------------
def _is_lstm_layer(class_name: str, cfg: dict) -> bool:
    return class_name == "LSTM" or (class_name == "Bidirectional" and _inner(cfg)[0].get("class_name") == "LSTM")


def _mask_note(name: str, after: str | None, entries: dict[str, tuple[str, dict, str | None]]) -> str | None:
    """A note where a layer before this LSTM makes a mask (Embedding(mask_zero=True), Masking): Keras then skips
    each example's masked steps, which a port running every step does not. Looked for up to the previous LSTM."""
    seen = set()
    while after is not None and after in entries and after not in seen:
        seen.add(after)
        cls, cfg, reads = entries[after]
        if _is_lstm_layer(cls, cfg):
            return None  # the stack's first layer says it
        if (cls == "Embedding" and cfg.get("mask_zero")) or cls == "Masking":
            made = "Embedding(mask_zero=True): token 0 is padding" if cls == "Embedding" else \
                f"Masking(mask_value={cfg.get('mask_value', 0.0)})"
            return (f"Keras layer {name!r}: layer {after!r} before it makes a mask ({made}); where the mask reaches "
                    "the LSTM, Keras skips each example's masked steps. The converted LSTM runs every step it is "
                    "given: give it the per-example lengths (torch: pack_padded_sequence; assert_equivalent and "
                    "diagnose: lengths=) to compute what the Keras model computes on padded data (--check runs "
                    "full sequences)")
        after = reads
    return None


def with_config(config: dict, found: dict[str, tuple[list, bool]]) -> list[KerasLayer]:
    """The LSTM layers the config describes, in its order, each with its weights and what it reads."""
    layers = []
    every = model_layers(config)
    entries = {name: (class_name, cfg, after) for name, class_name, cfg, after in every}
    for name, class_name, cfg, after in every:
        if _is_lstm_layer(class_name, cfg):
            if name not in found:
                raise ValueError(f"the config's {class_name} layer {name!r} has no weights in the file "
                                 f"(found weights of {sorted(found)})")
            weights, bidi = found[name]
            mask = _mask_note(name, after, entries)
            layers.append(KerasLayer(name, weights, bidi, cfg, after, class_name, notes=[mask] if mask else []))
    if not layers:
        kinds = sorted({c for _, c, _, _ in model_layers(config)})
        raise ValueError(f"the model has no keras.layers.LSTM (alone or in Bidirectional); its layers are {kinds}")
    return layers


def model_layers(config: dict) -> list[tuple[str, str, dict, str | None]]:
    """(name, class_name, config, the layer it reads) for every layer of a Sequential / Functional config,
    nested models flattened; Dropout-like layers are looked through (the identity at inference)."""
    out: list[tuple[str, str, dict, str | None]] = []
    through: dict[str, str | None] = {}

    def walk(model: dict, before: str | None):
        inner = model.get("config", {})
        entries = inner.get("layers", inner) if isinstance(inner, dict) else inner  # Keras 2.0-2.2: a list
        sequential = model.get("class_name") == "Sequential"
        prev = before
        for entry in entries if isinstance(entries, list) else []:
            cfg = entry.get("config", {})
            name = entry.get("name") or cfg.get("name")
            cls = entry.get("class_name", "")
            reads = prev if sequential else _inbound(entry)
            reads = through.get(reads, reads)
            if cls in MODELS:
                walk(entry, reads)
                last = out[-1][0] if out else None
                through[name] = last
            elif cls in TRANSPARENT or cls == "InputLayer":
                through[name] = None if cls == "InputLayer" else reads
            else:
                out.append((name, cls, cfg, reads))
            prev = name

    walk(config, None)
    return out


def _inbound(entry: dict) -> str | None:
    """The layer whose output this Functional layer reads first (Keras 3 keras_history, or Keras 2 lists)."""
    nodes = entry.get("inbound_nodes") or []
    if not nodes:
        return None
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3: {"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": [...]}}]}
        stack = [node.get("args", [])]
        while stack:
            item = stack.pop(0)
            if isinstance(item, dict):
                history = item.get("config", {}).get("keras_history") if isinstance(item.get("config"), dict) else None
                if history:
                    return history[0]
                stack += list(item.values())
            elif isinstance(item, list):
                stack += item
        return None
    if isinstance(node, list) and node and isinstance(node[0], list):  # Keras 2: [[name, node, tensor, kwargs]]
        return node[0][0]
    return None


def _inner(cfg: dict) -> tuple[dict, dict | None]:
    """A Bidirectional's wrapped layer entry and its explicit backward_layer entry (or None)."""
    return cfg.get("layer", {}), cfg.get("backward_layer")


# Choosing the layers and reading their config -------------------------------------------------------
def _take(layers: list[KerasLayer], select, source: Source, what: str) -> list[list]:
    chain = _chain(layers, select, what)
    source.run["chosen"] = chain
    bias = None
    for k, layer in enumerate(chain):
        source.notes += layer.notes
        if layer.config is not None:
            source.notes += check_config(layer, last=k == len(chain) - 1)
    if any(layer.config is None for layer in chain) and ASSUMED not in source.notes:
        source.notes.append(ASSUMED)
    D = 2 if chain[0].bidirectional else 1
    H = np.shape(chain[0].weights[1])[0]
    for k, layer in enumerate(chain):
        d = 2 if layer.bidirectional else 1
        per_dir = len(layer.weights) // d
        kernel, rec = np.shape(layer.weights[0]), np.shape(layer.weights[1])
        has_bias = per_dir == 3
        if d != D or rec[0] != H or (bias is not None and has_bias != bias):
            raise UnsupportedFeature(
                f"{what}: the stacked layers {[x.name for x in chain]} differ (layer {layer.name!r}: "
                f"{'Bidirectional' if d == 2 else 'LSTM'}, units {rec[0]}, use_bias {has_bias}; layer "
                f"{chain[0].name!r}: {'Bidirectional' if D == 2 else 'LSTM'}, units {H}): one canonical LSTM has "
                "one hidden_size, direction and bias kind; convert each layer alone with --select NAME")
        bias = has_bias
        if k and kernel[0] != D * H:
            raise ValueError(f"{what}: layer {layer.name!r} reads {kernel[0]} features, but {chain[k - 1].name!r} "
                             f"returns {D * H}: they are not one stack")
        units = (layer.config or {}).get("units") if layer.class_name == "LSTM" else \
            _inner(layer.config or {})[0].get("config", {}).get("units")
        if units is not None and units != H:
            raise ValueError(f"{what}: layer {layer.name!r} has units={units} in its config, but its "
                             f"recurrent_kernel is {list(rec)}")
    first = chain[0]
    names = ", ".join(repr(x.name) for x in chain)
    source.fields = {"input_size": int(np.shape(first.weights[0])[0]), "hidden_size": int(H),
                     "num_layers": len(chain), "bidirectional": D == 2, "bias": "single" if bias else "none",
                     "proj_size": 0, "peephole": False, "forget_bias": 0.0, "cell_clip": None, "proj_clip": None, "gate_clip": None}
    source.evidence = {"input_size": f"layer {first.name!r} kernel is {list(np.shape(first.weights[0]))}",
                       "hidden_size": f"layer {first.name!r} recurrent_kernel is {list(np.shape(first.weights[1]))}",
                       "num_layers": f"the stacked layers {names}",
                       "bidirectional": f"layer {first.name!r} is {'a Bidirectional' if D == 2 else 'an LSTM'}",
                       "bias": f"{'a' if bias else 'no'} bias in layer {first.name!r} (Keras has one)"}
    for feature in ("proj_size", "peephole", "forget_bias", "cell_clip", "proj_clip", "gate_clip"):
        source.evidence[feature] = "keras.layers.LSTM has none"
    return [layer.weights for layer in chain]


def _chain(layers: list[KerasLayer], select, what: str) -> list[KerasLayer]:
    by_name = {layer.name: layer for layer in layers}
    if select is not None:
        names = [s.strip() for s in (select.split(",") if isinstance(select, str) else select)]
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"--select: {missing} names none of SRC's LSTM layers {list(by_name)}")
        chain = [by_name[n] for n in names]
        for prev, layer in zip(chain, chain[1:]):
            if layer.config is not None and layer.after != prev.name:
                raise ValueError(f"--select: layer {layer.name!r} reads {layer.after!r}, not {prev.name!r}: "
                                 "the layers named are not one stack")
        return chain
    chains: list[list[KerasLayer]] = []
    tails: dict[str, list[KerasLayer]] = {}
    for layer in layers:
        chain = tails.pop(layer.after, None) if layer.after is not None else None
        if chain is None:
            chain = []
            chains.append(chain)
        chain.append(layer)
        tails[layer.name] = chain
    if len(chains) == 1:
        return chains[0]
    if all(layer.config is None for layer in layers):
        raise ValueError(f"{what} holds LSTM layers {list(by_name)} and no config saying which read which: name "
                         f"the layers of one LSTM in order with --select (e.g. --select {','.join(by_name)})")
    listed = "; ".join(",".join(x.name for x in c) for c in chains)
    raise ValueError(f"{what} holds {len(chains)} LSTMs (stacks: {listed}): name one with --select "
                     f"(e.g. --select {','.join(x.name for x in chains[0])})")


def _activation(value: Any) -> str:
    if isinstance(value, dict):  # a serialised function: {"class_name": "function", "config": "tanh", ...}
        inner = value.get("config")
        return inner if isinstance(inner, str) else str(value.get("class_name"))
    return str(value)


def check_config(layer: KerasLayer, last: bool) -> list[str]:
    """The notes on one layer's config; UnsupportedFeature naming the field where it changes the function."""
    notes = []
    where = f"Keras layer {layer.name!r}"
    cfg = layer.config or {}
    if layer.class_name == "Bidirectional":
        mode = cfg.get("merge_mode", "concat")
        if mode is None and last:
            notes.append(f"{where}: merge_mode=None returns the two directions apart; the converted y holds them "
                         "concatenated, forward first")
        elif mode != "concat":
            raise UnsupportedFeature(f"{where} has merge_mode={mode!r}: the canonical bidirectional y concatenates "
                                     "the two directions (merge_mode='concat'); a sum, product or mean of them "
                                     "(or None before another layer) is another function")
        forward, backward = _inner(cfg)
        halves = [("", forward.get("config", {}), False)]
        if backward:
            halves.append((" backward_layer", backward.get("config", {}), True))
    else:
        halves = [("", cfg, False)]
    for part, c, backward in halves:
        at = where + part
        act, rec = _activation(c.get("activation", "tanh")), _activation(c.get("recurrent_activation", "sigmoid"))
        if act != "tanh":
            raise UnsupportedFeature(f"{at} has activation={act!r}: the canonical LSTM uses tanh")
        if rec == "hard_sigmoid":
            raise UnsupportedFeature(f"{at} has recurrent_activation='hard_sigmoid' (Keras 2: clip(0.2 x + 0.5, 0, 1); "
                                     "Keras 3: clip(x / 6 + 0.5, 0, 1)): the canonical LSTM's gates use the logistic "
                                     "sigmoid, so this is another function")
        if rec != "sigmoid":
            raise UnsupportedFeature(f"{at} has recurrent_activation={rec!r}: the canonical LSTM's gates use sigmoid")
        if bool(c.get("go_backwards", False)) != backward:
            if layer.class_name == "Bidirectional":
                raise UnsupportedFeature(f"{at} has go_backwards={c.get('go_backwards')}: its forward half reads the "
                                         "sequence backwards, which the canonical bidirectional LSTM does not do")
            raise UnsupportedFeature(f"{at} has go_backwards=True: it reads the sequence last step first and returns "
                                     "its outputs in that order; the canonical LSTM has no backward-only layer "
                                     "(a Bidirectional's backward half is read)")
        if c.get("unit_forget_bias"):
            notes.append(f"{at}: unit_forget_bias=True only initialises the forget bias: ignored (the trained "
                         "bias is read)")
        if c.get("dropout") or c.get("recurrent_dropout"):
            notes.append(f"{at}: dropout={c.get('dropout', 0)}, recurrent_dropout={c.get('recurrent_dropout', 0)} "
                         "act in training only: ignored")
        if c.get("stateful"):
            notes.append(f"{at}: stateful=True: Keras carries h, c from one call to the next; the converted LSTM "
                         "takes them as h0, c0")
        if c.get("time_major"):
            notes.append(f"{at}: time_major=True: the layer reads x as [T, B, features] (the LSTM is the same)")
        if not c.get("return_sequences", False):
            if not last:
                raise UnsupportedFeature(f"{at} has return_sequences=False but another LSTM layer reads it")
            if not part:
                notes.append(f"{at}: return_sequences=False returns only the last step, y[-1] (= h_n of the last "
                             "layer); the converted LSTM returns every step, and --check compares them all")
        policy = c.get("dtype")
        name = policy.get("config", {}).get("name") if isinstance(policy, dict) else policy
        if isinstance(name, str) and name.startswith("mixed_"):
            notes.append(f"{at}: dtype policy {name}: Keras computed it in {name.split('_')[1]}; the weights are "
                         "read in float32")
    return notes
