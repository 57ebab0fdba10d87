"""`torch`: torch.nn.LSTM (cuDNN on CUDA), with proj_size, stacking, bidirectional, both biases.

Which kernel ran (cuDNN, oneDNN or ATen's own cells: torch falls back without a word) is read from
the profiler's op names (harness.kernels) and recorded with every result.

Per-example lengths: x is packed with pack_padded_sequence(enforce_sorted=False) (torch sorts the batch and
puts y, h_n and c_n back in the caller's order, h0/c0 included) and y unpacked with pad_packed_sequence(
total_length=T): zeros at padded steps, h_n and c_n at each example's last valid step.

Native parameters: a state_dict-style NativeDict of numpy arrays named as torch names them:
weight_ih_l{k}[_reverse] [4H, in], weight_hh_l{k}[_reverse] [4H, P or H], bias_ih_l{k}[_reverse],
bias_hh_l{k}[_reverse] [4H], weight_hr_l{k}[_reverse] [P, H]. torch's gate order (i, f, g, o) and
layout are the canonical ones, so the conversion is a renaming.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .. import kernels, precision
from ..canonical import CanonicalLSTM, LayerWeights, expected_shapes
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Backend, Capabilities, NativeDict, TimedForward, UnsupportedFeature
from ._names import group_by_prefix, part, pick, take

_LOCAL = r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l\d+(_reverse)?"
_FIELDS = {"weight_ih": "W_ih", "weight_hh": "W_hh", "bias_ih": "b_ih", "bias_hh": "b_hh", "weight_hr": "W_hr"}


def _key(kind: str, layer: int, direction: int) -> str:
    return f"{kind}_l{layer}{'_reverse' if direction else ''}"


class TorchBackend(Backend):
    name = "torch"
    framework = "torch"
    description = "torch.nn.LSTM"
    capabilities = Capabilities(double_bias=True, projection=True, devices=("cpu", "cuda"),
                                dtypes=("float32", "float64", "float16", "bfloat16"), lengths="zeros")

    def check_spec(self, spec: LSTMSpec) -> None:
        super().check_spec(spec)
        if spec.proj_size and spec.proj_size >= spec.hidden_size:
            raise UnsupportedFeature(
                f"torch.nn.LSTM requires proj_size < hidden_size, got proj_size={spec.proj_size}, "
                f"hidden_size={spec.hidden_size}"
            )

    # Conversion -----------------------------------------------------------------------------
    def to_native(self, model: CanonicalLSTM, dtype: np.dtype) -> NativeDict:
        out = NativeDict()
        for (k, d), lw in model.weights.items():
            out[_key("weight_ih", k, d)] = lw.W_ih.astype(dtype)
            out[_key("weight_hh", k, d)] = lw.W_hh.astype(dtype)
            if model.spec.bias != "none":
                out[_key("bias_ih", k, d)] = lw.b_ih.astype(dtype)
                out[_key("bias_hh", k, d)] = lw.b_hh.astype(dtype)
            if model.spec.proj_size:
                out[_key("weight_hr", k, d)] = lw.W_hr.astype(dtype)
        return out

    def import_(self, native, spec: LSTMSpec, select: str | None = None) -> CanonicalLSTM:
        """Read a state_dict (tensors or arrays, any key prefix such as 'encoder.lstm.')."""
        self.check_spec(spec)
        params = pick(group_by_prefix(native, _LOCAL), select, "torch.nn.LSTM")
        wanted = set()
        weights = {}
        for k, d in spec.units():
            fields = {}
            shapes = expected_shapes(spec, k)  # torch's layout is the canonical one
            kinds = ["weight_ih", "weight_hh"]
            if spec.bias != "none":
                kinds += ["bias_ih", "bias_hh"]
            if spec.proj_size:
                kinds.append("weight_hr")
            for kind in kinds:
                key = _key(kind, k, d)
                wanted.add(key)
                if key not in params:
                    raise ValueError(f"torch import: missing parameter {key!r} needed by spec {spec.features()}")
                field = _FIELDS[kind]
                fields[field] = take(params.key(key), params[key], shapes[field], part(k, d, field))
            H = spec.hidden_size
            fields.setdefault("b_ih", np.zeros(4 * H))
            fields.setdefault("b_hh", np.zeros(4 * H))
            weights[(k, d)] = LayerWeights(**fields)
        extra = sorted(set(params) - wanted)
        if extra:
            raise ValueError(f"torch import: parameters {extra} are not part of spec {spec} (wrong num_layers, "
                             "bidirectional, bias or proj_size?)")
        return CanonicalLSTM(spec, weights)

    # Running --------------------------------------------------------------------------------
    def _prepare(self, model: CanonicalLSTM, dtype="float32", device="cpu"):
        import torch

        spec = self.adapt(model).spec  # the exported parameters' (bias='none' + forget_bias: 'single')
        native = self.export(model, dtype=np.float64)  # cast inside torch, once
        tdtype = getattr(torch, precision.dtype_name(dtype))
        lstm = torch.nn.LSTM(
            spec.input_size, spec.hidden_size, num_layers=spec.num_layers, bias=spec.bias != "none",
            bidirectional=spec.bidirectional, proj_size=spec.proj_size, dtype=tdtype, device=device,
        )
        lstm.load_state_dict({k: torch.from_numpy(v).to(tdtype) for k, v in native.items()}, strict=True)
        lstm.eval()
        return lstm

    def _run(self, lstm, x, h0, c0, *, batch_first=False, lengths=None) -> LSTMOutput:
        forward = self._forward_callable(lstm, x, h0, c0, batch_first=batch_first, lengths=lengths)
        return forward.fetch(forward.call())

    def _forward_callable(self, lstm, x, h0, c0, *, batch_first=False, lengths=None) -> TimedForward:
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        p = next(lstm.parameters())
        # Inputs are already rounded to the dtype; float64 -> dtype is exact (and reads bfloat16 arrays).
        place = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64)).to(device=p.device, dtype=p.dtype)  # noqa: E731
        xt = place(x)
        state = None if h0 is None else (place(h0), place(c0))
        on_cuda = p.device.type == "cuda"
        steps = xt.shape[1 if batch_first else 0]
        lengths_t = None if lengths is None else torch.as_tensor(lengths, dtype=torch.int64)  # on the CPU, as torch asks

        def call():
            lstm.batch_first = batch_first  # a plain attribute read in forward(): torch's own batch_first path
            with torch.inference_mode():
                if lengths_t is None:
                    y, (h_n, c_n) = lstm(xt, state)
                else:
                    packed = pack_padded_sequence(xt, lengths_t, batch_first=batch_first, enforce_sorted=False)
                    y, (h_n, c_n) = lstm(packed, state)
                    y, _ = pad_packed_sequence(y, batch_first=batch_first, total_length=steps)
            if on_cuda:
                torch.cuda.synchronize()
            return y, h_n, c_n

        def fetch(out):
            return LSTMOutput.of(*(t.float().cpu().numpy() if t.dtype in (torch.float16, torch.bfloat16)
                                   else t.cpu().numpy() for t in out))

        sync = ", torch.cuda.synchronize()" if on_cuda else ""
        return TimedForward(call, fetch, f"torch.nn.LSTM forward on {p.device.type} tensors{sync}")

    @contextlib.contextmanager
    def _watch_kernel(self, lstm):
        seen = {}
        with kernels.torch_ops() as ops:
            yield seen
        seen["kernel"] = kernels.torch_rnn_kernel(ops) or "no torch LSTM op ran"

    def environment(self) -> dict[str, str]:
        import torch

        env = {"torch": torch.__version__}
        if torch.cuda.is_available():
            env["cuda"] = str(torch.version.cuda)
            env["cudnn"] = str(torch.backends.cudnn.version())
            env["torch.backends.cudnn.enabled"] = str(torch.backends.cudnn.enabled)
            env["gpu"] = torch.cuda.get_device_name()
        return env
