"""A Keras LSTM or Bidirectional(LSTM) layer, or a model holding them (Sequential, Functional, nested; one that
keras.saving.load_model returned too). The layers, their configs and what reads what are taken as the .keras
reader takes a file's (harness.readers.keras_archive: the same stack rules, the same refusals by name); the
weights go through the keras backend's import.

Running: a layer that already returns its sequences and states runs itself; any other is rebuilt by Keras from
its own config with return_sequences and return_state on (stateful off) and its weights copied, because only
then does it return h_n and c_n. port_check runs the layers of a Keras file with the same functions.
"""

from __future__ import annotations

import copy
import weakref

import numpy as np

from .. import backends
from ..backends import UnsupportedFeature
from ..outputs import LSTMOutput
from . import Side, dtype_name, framework_lengths, loaded, renamed

LENIENT = {"hard_sigmoid": "hard_sigmoid_keras3"}  # Keras 3 computes its own hard_sigmoid, whatever trained it


def recognise(obj) -> bool:
    keras = loaded("keras")
    return keras is not None and isinstance(obj, keras.layers.Layer)


def all_layers(model) -> list:
    """Every layer of a model, nested models' layers included (a Bidirectional's halves are not listed)."""
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        if hasattr(layer, "layers") and not hasattr(layer, "forward_layer"):
            out += all_layers(layer)
    return out


def _is_lstm(keras, layer) -> bool:
    return isinstance(layer, keras.layers.LSTM) or (
        isinstance(layer, keras.layers.Bidirectional) and isinstance(layer.forward_layer, keras.layers.LSTM))


def read(obj, select, option: str, lenient: bool) -> Side:
    import keras

    from ..readers import keras_archive as ka

    live = {layer.name: layer for layer in ([obj] if _is_lstm(keras, obj) else all_layers(obj))
            if _is_lstm(keras, layer)}
    if not live:
        kinds = sorted({type(layer).__name__ for layer in all_layers(obj)})
        raise ValueError(f"holds no keras.layers.LSTM (alone or in Bidirectional); its layers are {kinds}")
    found = {name: (layer.get_weights(), isinstance(layer, keras.layers.Bidirectional)) for name, layer in live.items()}
    if _is_lstm(keras, obj):
        layers = [ka.KerasLayer(obj.name, found[obj.name][0], found[obj.name][1], obj.get_config(),
                                class_name=type(obj).__name__)]
    else:
        layers = ka.with_config(keras.saving.serialize_keras_object(obj), found)
    gates, notes = {}, []
    if lenient:  # the catalogue names these: read the weights, run the layers as they are, let diagnose say it
        layers = [_lenient(layer, gates, notes) for layer in layers]
    if isinstance(select, str) and "," in select:
        select = [s.strip() for s in select.split(",")]
    try:
        source = ka.from_layers(layers, select, "live Keras model", "the model")
    except ValueError as exc:
        raise renamed(exc, option) from None
    chosen = source.run["layers"]
    kinds = {gates.get(name, "sigmoid") for name in chosen}
    if len(kinds) > 1:
        raise UnsupportedFeature(f"the layers {chosen} use different recurrent activations {sorted(kinds)}")
    from ..spec import LSTMSpec

    spec = LSTMSpec(**source.fields)
    model = backends.get("keras").import_(source.native, spec)
    stack = [live[name] for name in chosen]
    runnable = [layer if _returns_everything(layer) else twin(keras, layer, spec.layer_input_size(k))
                for k, layer in enumerate(stack)]
    rebuilt = [layer.name for layer, ran in zip(stack, runnable) if ran is not layer]
    dtype = dtype_name(stack[0].compute_dtype)
    how = ("the user's layers themselves" if not rebuilt else
           f"{', '.join(rebuilt)} as Keras builds {'it' if len(rebuilt) == 1 else 'them'} from the config with "
           "return_sequences and return_state on, holding the same weights (only then are h_n, c_n returned)")
    label = f"{type(obj).__name__} {obj.name!r}" + ("" if [obj.name] == chosen else f" (layers {', '.join(chosen)})")
    said = [n.replace(", and --check compares them all", ", and every step is compared") for n in source.notes
            if "training only" not in n and "only initialises" not in n]  # a live layer's training settings: noise
    side = Side(f"keras {label}", "keras", model, dtype,
                lambda x, h0, c0, lengths=None: run_layers(runnable, spec, (x, h0, c0), dtype, lengths), how,
                gate=kinds.pop(), notes=said + notes)
    return framework_lengths(side, "keras")


def _returns_everything(layer) -> bool:
    return bool(getattr(layer, "return_sequences", False) and getattr(layer, "return_state", False)
                and not getattr(layer, "stateful", False))


def _lenient(layer, gates: dict, notes: list):
    """A copy of the layer's config description with hard_sigmoid and go_backwards taken as the catalogue's
    (the layer itself still computes them)."""
    if layer.config is None:
        return layer
    layer = copy.copy(layer)
    layer.config = copy.deepcopy(layer.config)
    halves = [layer.config] if layer.class_name == "LSTM" else \
        [layer.config.get("layer", {}).get("config", {}), (layer.config.get("backward_layer") or {}).get("config", {})]
    for cfg in halves:
        rec = cfg.get("recurrent_activation")
        rec = rec.get("config") if isinstance(rec, dict) else rec
        if rec in LENIENT:
            gates[layer.name] = LENIENT[rec]
            cfg["recurrent_activation"] = "sigmoid"
    if layer.class_name == "LSTM" and layer.config.get("go_backwards"):
        layer.config["go_backwards"] = False
        notes.append(f"Keras layer {layer.name!r} has go_backwards=True: read with its weights, run as it is")
    return layer


_TWINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # a user's layer -> its rebuilt twin


def twin(keras, layer, input_size: int):
    """rebuild(), once per live layer (a new Keras layer traces its call again): later reads copy the layer's
    current weights into the same twin."""
    fresh = _TWINS.get(layer)
    if fresh is None:
        fresh = _TWINS[layer] = rebuild(keras, layer, input_size)
    else:
        fresh.set_weights(layer.get_weights())
    return fresh


def rebuild(keras, layer, input_size: int):
    """The layer again, built by Keras from its own config with return_sequences and return_state on (and no state
    kept between calls), holding the layer's weights."""
    config = layer.get_config()
    switches = dict(return_sequences=True, return_state=True, stateful=False)
    if isinstance(layer, keras.layers.Bidirectional):
        for key in ("layer", "backward_layer"):
            if config.get(key):
                config[key]["config"].update(switches)
        config["merge_mode"] = config.get("merge_mode") or "concat"
    else:
        config.update(switches)
    fresh = type(layer).from_config(config)
    fresh.build((None, None, input_size))
    fresh.set_weights(layer.get_weights())
    return fresh


def run_layers(layers: list, spec, xs, dtype: str, lengths=None) -> LSTMOutput:
    """Keras LSTM / Bidirectional layers (returning sequences and states) run one after another on time-major
    x, h0, c0; the outputs time-major, h_n and c_n in the canonical layer * D + direction order. Per-example
    lengths reach every layer as Keras's mask [B, T] (True at valid steps), as a Masking layer would pass it."""
    import keras

    from ..backends.keras import lengths_mask

    D = spec.num_directions
    x, h0, c0 = (np.asarray(a, dtype=dtype) for a in xs)
    seq, hs, cs = x.transpose(1, 0, 2), [], []
    mask = lengths_mask(lengths, x.shape[0])
    for k, layer in enumerate(layers):
        outs = layer(seq, initial_state=[s[k * D + d] for d in range(D) for s in (h0, c0)], mask=mask)
        seq = outs[0]
        for d in range(D):  # LSTM -> [y, h, c]; Bidirectional -> [y, fh, fc, bh, bc]
            hs.append(keras.ops.convert_to_numpy(outs[1 + 2 * d]))
            cs.append(keras.ops.convert_to_numpy(outs[2 + 2 * d]))
    y = keras.ops.convert_to_numpy(seq).transpose(1, 0, 2)
    return LSTMOutput(y, np.stack(hs), np.stack(cs))
