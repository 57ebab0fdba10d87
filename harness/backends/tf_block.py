"""`tf-block`, `tf-block-cell`, `tf-block-v2`: TensorFlow's fused LSTM kernels, called as raw ops
(tf.raw_ops.BlockLSTM, LSTMBlockCell one step at a time, BlockLSTMV2), time-major, eagerly.

The ops are one direction of one layer; a bidirectional layer runs the op on the time-reversed input
and reverses its outputs back, and layer k+1 reads both directions of layer k, as the canonical model.

Native parameters: raw ops hold no variable names, so the parameters are the op's inputs, under the op
version whose layout they are in (a NativeDict):
    {op}/layer_{k}/{fw,bw}/w     [in + H, 4H], applied to concat([x, h_prev])
    {op}/layer_{k}/{fw,bw}/b     [4H]   one bias (zeros for bias="none")
    {op}/layer_{k}/{fw,bw}/wci, wcf, wco   [H]  peepholes (zeros, and use_peephole=False, without)
with op = BlockLSTM or LSTMBlockCell (gate order i, c, f, o; c is the canonical g; the same layout) or
BlockLSTMV2 (gate order i, f, c, o). Importing one version's parameters as another's is refused.

Attributes (op_attributes): BlockLSTM and LSTMBlockCell add a forget_bias attribute (default 1.0) to the
forget gate: it is set to spec.forget_bias, 0.0 included. BlockLSTMV2 has none (forget_bias is folded into
b). cell_clip DEFAULTS TO 3.0 in BlockLSTM/LSTMBlockCell (0 in V2) and clips c unless set: it is always set,
to spec.cell_clip or to -1 (off). The kernels clip only when cell_clip > 0, so a spec's cell_clip=0 (TF1
LSTMCell's clip to zero) is declared unsupported. The ops take float16 and float32 only, declared in capabilities.dtypes
(float64 and bfloat16 are rejected by the op). No projection.

Per-example lengths: the ops have none (BlockLSTM's seq_len_max is one length for the whole batch), so they
are applied around the op the way TensorFlow's own wrapper of it did (contrib.rnn's LSTMBlockFusedCell and
TimeReversedFusedRNN): the op runs every step, y is zeroed past each example's length, h_n and c_n are
gathered at its last valid step, and the backward direction runs on tf.reverse_sequence of the input (each
example reversed within its own length), so it starts at its last valid step. An LSTM is causal, so the
steps run past a length change nothing before it.
"""

from __future__ import annotations

import numpy as np

from ..canonical import CanonicalLSTM
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Backend, Capabilities, NativeDict, UnsupportedFeature
from ._concat_kernel import layer_weights, to_bias, to_kernel
from ._names import group_by_prefix, part, pick, take

GATE_ORDERS = {"BlockLSTM": "igfo", "LSTMBlockCell": "igfo", "BlockLSTMV2": "ifgo"}
CELL_CLIP_OFF = -1.0  # the kernels clip only when cell_clip > 0
_DIRS = ("fw", "bw")
_INPUTS = ("w", "b", "wci", "wcf", "wco")
_LOCAL = r"(?:LSTMBlockCell|BlockLSTMV2|BlockLSTM)/layer_\d+/(?:fw|bw)/(?:w|b|wci|wcf|wco)"


class BlockLSTMBackend(Backend):
    name = "tf-block"
    framework = "tensorflow"
    op = "BlockLSTM"
    description = "tf.raw_ops.BlockLSTM"
    capabilities = Capabilities(forget_bias=True, peephole=True, cell_clip=True, dtypes=("float16", "float32"),
                                lengths="zeros")

    def op_attributes(self, spec: LSTMSpec) -> dict:
        """The op's attributes for `spec`, every one set explicitly (the defaults clip c at 3.0 and add forget_bias 1)."""
        attrs = {"cell_clip": CELL_CLIP_OFF if spec.cell_clip is None else spec.cell_clip, "use_peephole": spec.peephole}
        if self.capabilities.forget_bias:
            attrs["forget_bias"] = spec.forget_bias
        return attrs

    def check_spec(self, spec: LSTMSpec) -> None:
        if spec.cell_clip == 0:
            raise UnsupportedFeature(f"{self.name} cannot express cell_clip=0 (c clipped to zero, as TF1's LSTMCell "
                                     f"does): {self.op} clips only when cell_clip > 0 and reads 0 as off (an op "
                                     "that ran with cell_clip <= 0 is described by cell_clip=None)")
        super().check_spec(spec)

    # Conversion -----------------------------------------------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeDict:
        spec, order = model.spec, GATE_ORDERS[self.op]
        out = NativeDict()
        zeros = np.zeros(spec.hidden_size)
        for (k, d), lw in model.weights.items():
            key = f"{self.op}/layer_{k}/{_DIRS[d]}/"
            out[key + "w"] = to_kernel(lw.W_ih, lw.W_hh, order).astype(dtype)
            out[key + "b"] = to_bias(lw.b_ih + lw.b_hh, order).astype(dtype)  # b_hh is zero once adapted
            for name, value in (("wci", lw.w_i), ("wcf", lw.w_f), ("wco", lw.w_o)):
                out[key + name] = (zeros if value is None else value).astype(dtype)
        return out

    def import_(self, native, spec: LSTMSpec, select: str | None = None) -> CanonicalLSTM:
        """Read the op inputs of one LSTM ({op}/layer_{k}/{fw,bw}/{w,b,wci,wcf,wco}, under any prefix).

        `spec` says the attributes the op ran with: forget_bias (BlockLSTM/LSTMBlockCell; its default
        is 1.0) and cell_clip (their default 3.0: say cell_clip=3.0 if it was left at the default).
        """
        self.check_spec(spec)
        if spec.bias == "double":
            raise ValueError(f"{self.name} import: {self.op} has one bias b; describe it with bias='single' "
                             "(or bias='none' if it is all zero)")
        if spec.forget_bias and not self.capabilities.forget_bias:
            raise ValueError(f"{self.name} import: {self.op} has no forget_bias; describe it with forget_bias=0")
        params = pick(group_by_prefix(native, _LOCAL), select, "fused-LSTM op input")
        order = GATE_ORDERS[self.op]
        ops = {key.split("/")[0] for key in params}
        wrong = sorted(op for op in ops if GATE_ORDERS[op] != order)
        if wrong:
            raise ValueError(f"{self.name} import: the parameters are {wrong[0]}'s (gate order "
                             f"{GATE_ORDERS[wrong[0]]}), not {self.op}'s ({order}): import them with the backend "
                             f"of that op")
        by_unit: dict[tuple[int, int], dict[str, tuple[str, object]]] = {}
        for key, value in params.items():
            _, layer, direction, name = key.split("/")
            by_unit.setdefault((int(layer.removeprefix("layer_")), _DIRS.index(direction)), {})[name] = (key, value)
        if set(by_unit) != set(spec.units()):
            raise ValueError(f"{self.name} import: found (layer, direction) {sorted(by_unit)}, "
                             f"spec {spec.features()} has {spec.units()}")
        H = spec.hidden_size
        weights = {}
        gates = " ".join(order.replace("g", "c"))
        holds = {"w": f"[W_ih, W_hh] transposed, gates {gates}", "b": f"b_ih + b_hh, gates {gates}", "wci": "w_i",
                 "wcf": "w_f", "wco": "w_o"}
        for (k, d), found in by_unit.items():
            where = f"layer_{k}/{_DIRS[d]}"
            shapes = {"w": (spec.layer_input_size(k) + H, 4 * H), "b": (4 * H,), "wci": (H,), "wcf": (H,), "wco": (H,)}
            needed = ("w", "b", "wci", "wcf", "wco") if spec.peephole else ("w", "b")
            missing = [n for n in needed if n not in found]
            if missing:
                raise ValueError(f"{self.name} import: {where}: missing op input(s) {missing} for spec {spec.features()}")
            arrays = {name: take(params.key(key), value, shapes[name], part(k, d, holds[name]))
                      for name, (key, value) in found.items()}
            if not spec.peephole and any(np.any(arrays.get(n, 0)) for n in ("wci", "wcf", "wco")):
                raise ValueError(f"{self.name} import: {where}: nonzero peephole inputs wci/wcf/wco, but spec.peephole=False")
            peepholes = (arrays["wci"], arrays["wcf"], arrays["wco"]) if spec.peephole else None
            weights[(k, d)] = layer_weights(arrays["w"], arrays["b"], spec, k, order,
                                            f"{self.name} import: {where}/b", peepholes)
        return CanonicalLSTM(spec, weights)

    # Running --------------------------------------------------------------------------------
    def _prepare(self, model: CanonicalLSTM, dtype="float32", device="cpu"):
        import tensorflow as tf

        dtype = str(np.dtype(dtype))
        native = self.export(model, dtype=dtype)
        with tf.device("/CPU:0"):
            params = {(k, d): {n: tf.constant(native[f"{self.op}/layer_{k}/{_DIRS[d]}/{n}"]) for n in _INPUTS}
                      for k, d in model.spec.units()}
        return {"spec": model.spec, "dtype": dtype, "params": params, "attrs": self.op_attributes(model.spec)}

    def _one_direction(self, x, cs, h, p, attrs):
        """(h [T, B, H], cs [T, B, H]) of the op over time-major x."""
        import tensorflow as tf

        if self.op == "LSTMBlockCell":
            hs, css = [], []
            for t in range(x.shape[0]):
                r = tf.raw_ops.LSTMBlockCell(x=x[t], cs_prev=cs, h_prev=h, **p, **attrs)
                h, cs = r.h, r.cs
                hs.append(h)
                css.append(cs)
            return tf.stack(hs), tf.stack(css)
        r = getattr(tf.raw_ops, self.op)(seq_len_max=tf.constant(x.shape[0], tf.int64), x=x, cs_prev=cs, h_prev=h,
                                         **p, **attrs)
        return r.h, r.cs

    def _run(self, prepared, x, h0, c0, *, batch_first=False, lengths=None) -> LSTMOutput:
        import tensorflow as tf

        spec, dtype = prepared["spec"], prepared["dtype"]
        D = spec.num_directions
        xs = np.asarray(x, dtype)
        if batch_first:
            xs = xs.transpose(1, 0, 2)  # the ops are time-major only
        T, B, H = xs.shape[0], xs.shape[1], spec.hidden_size
        ragged = lengths is not None
        lengths = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
        last = np.stack([lengths - 1, np.arange(B)], axis=1)  # (t, b) of each example's last valid step
        h_n, c_n = [], []
        with tf.device("/CPU:0"):
            seq = tf.constant(xs)
            valid = tf.constant((np.arange(T)[:, None] < lengths[None, :])[..., None].astype(dtype))

            def reverse(a):  # each example reversed within its own length; padding stays where it is
                return tf.reverse_sequence(a, lengths, seq_axis=0, batch_axis=1)

            for k in range(spec.num_layers):
                outs = []
                for d in range(D):
                    i = k * D + d
                    h_prev = tf.constant(np.zeros((B, H), dtype) if h0 is None else np.asarray(h0[i], dtype))
                    c_prev = tf.constant(np.zeros((B, H), dtype) if c0 is None else np.asarray(c0[i], dtype))
                    inputs = seq if d == 0 else reverse(seq)
                    h, cs = self._one_direction(inputs, c_prev, h_prev, prepared["params"][(k, d)], prepared["attrs"])
                    h_n.append(tf.gather_nd(h, last).numpy())
                    c_n.append(tf.gather_nd(cs, last).numpy())
                    if ragged:
                        h = h * valid  # zeros past each length (the op ran on over the padding)
                    outs.append(h if d == 0 else reverse(h))
                seq = tf.concat(outs, axis=-1)
        y = seq.numpy()
        if batch_first:
            y = np.ascontiguousarray(y.transpose(1, 0, 2))
        return LSTMOutput(y, np.stack(h_n), np.stack(c_n))

    def environment(self) -> dict[str, str]:
        import tensorflow as tf

        return {"tensorflow": tf.__version__, "op": f"tf.raw_ops.{self.op}"}


class LSTMBlockCellBackend(BlockLSTMBackend):
    name = "tf-block-cell"
    op = "LSTMBlockCell"
    description = "tf.raw_ops.LSTMBlockCell (one step per call)"


class BlockLSTMV2Backend(BlockLSTMBackend):
    name = "tf-block-v2"
    op = "BlockLSTMV2"
    description = "tf.raw_ops.BlockLSTMV2"
    capabilities = Capabilities(peephole=True, cell_clip=True, dtypes=("float16", "float32"), lengths="zeros")
