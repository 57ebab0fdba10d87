"""TensorFlow's object-based files: a SavedModel folder's variables, and TF2 checkpoints (tf.train.Checkpoint,
Keras 2's model.save_weights in TF format), read with tf.train.load_checkpoint: the variables only. No graph
is loaded and no function traced (tf.saved_model.load would run the saved functions): a SavedModel is read
as the checkpoint in its variables/ folder.

Keras LSTM variables in an object-based checkpoint are named by the path of attributes from the root:
    <layer>/cell/{kernel, recurrent_kernel, bias}/.ATTRIBUTES/VARIABLE_VALUE
    <layer>/{forward_layer, backward_layer}/cell/...                       (Bidirectional)
where <layer> is layer_with_weights-0 (Keras 2 / tf.keras), _layers/1 (Keras 3 under tf.saved_model.save)
or model/_functional/_operations/1 (Keras 3 under tf.train.Checkpoint(model=...)). Optimizer slots
(.../.OPTIMIZER_SLOT/...) are not weights and are left out. The layers are ordered by the numbers in their
paths; with more than one, --select names the layers of one LSTM in order (no config says which reads which).
Keras 3's Model.export writes its variables as variables/0, variables/1, ...: no layer names, so it is refused
with the fix. For --from tf1, a SavedModel's variables are a TF1 checkpoint, read as one.
"""

from __future__ import annotations

import re
from pathlib import Path

from .. import files
from . import Source, fill_fields

_KERAS = re.compile(r"^(?P<layer>.+?)/(?:(?P<dir>forward_layer|backward_layer)/)?cell/"
                    r"(?P<var>kernel|recurrent_kernel|bias)/\.ATTRIBUTES/VARIABLE_VALUE$")
_VARS = ("kernel", "recurrent_kernel", "bias")
OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


def saved_model(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").is_file() and (path / "variables").is_dir()


def handles(path: Path) -> bool:
    return saved_model(path) or files._checkpoint_prefix(path) is not None


def read(path: Path, family: str, select, what: str = "SRC") -> Source:
    prefix = str(path / "variables" / "variables") if saved_model(path) else files._checkpoint_prefix(path)
    form = "SavedModel's variables" if saved_model(path) else "TF checkpoint"
    variables = files._read_checkpoint(prefix)
    object_based = OBJECT_GRAPH in variables
    variables.pop(OBJECT_GRAPH, None)
    if family == "tf1":
        if object_based and not any("lstm_cell/" in n for n in variables):
            raise ValueError(f"{what}: {path} is an object-based (TF2) {form}, written by Keras or "
                             "tf.train.Checkpoint, not by TF1 cells: read it with --from keras")
        source = Source(variables, form, select=select)
        fill_fields("tf1", source, what)
        return source
    if not object_based:
        raise ValueError(f"{what}: {path} is a name-based (TF1) checkpoint, written by tf.compat.v1.train.Saver: "
                         "read it with --from tf1")
    return keras_source(variables, form, select, what)


def keras_source(variables: dict, form: str, select, what: str) -> Source:
    from .keras_archive import KerasLayer, _is_lstm, _take

    found: dict[str, dict] = {}
    for name, value in variables.items():
        m = _KERAS.match(name)
        if m:
            d = {"forward_layer": "forward", "backward_layer": "backward"}.get(m["dir"], "")
            found.setdefault(m["layer"], {})[(d, m["var"])] = value
    layers = []
    for name in sorted(found, key=_natural):
        dirs = {d for d, _ in found[name]}
        bidi = dirs == {"forward", "backward"}
        weights = [found[name][(d, v)] for d in (("forward", "backward") if bidi else ("",)) for v in _VARS
                   if (d, v) in found[name]]
        if _is_lstm(weights[:2]):
            layers.append(KerasLayer(name, weights, bidi))
    if not layers:
        if any(re.fullmatch(r"variables/\d+/\.ATTRIBUTES/VARIABLE_VALUE", n) for n in variables):
            raise ValueError(f"{what}: the {form} names its variables variables/0, variables/1, ... (Keras 3's "
                             "Model.export): nothing says which layer each belongs to. Convert the model's .keras "
                             "file instead (model.save('model.keras'))")
        raise ValueError(f"{what}: no Keras LSTM variables (<layer>/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE) in the "
                         f"{form}; it holds {sorted(variables)[:6]}")
    source = Source(None, form, run={"loader": "set_weights"})
    source.native = _take(layers, select, source, what)
    source.run["layers"] = [layer.name for layer in source.run.pop("chosen")]
    return source


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
