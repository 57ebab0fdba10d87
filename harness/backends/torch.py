"""`torch`: torch.nn.LSTM (cuDNN on CUDA), with proj_size, stacking, bidirectional, both biases.

Native parameters: a state_dict-style NativeDict of numpy arrays named as torch names them:
weight_ih_l{k}[_reverse] [4H, in], weight_hh_l{k}[_reverse] [4H, P or H], bias_ih_l{k}[_reverse],
bias_hh_l{k}[_reverse] [4H], weight_hr_l{k}[_reverse] [P, H]. torch's gate order (i, f, g, o) and
layout are the canonical ones, so the conversion is a renaming.
"""

from __future__ import annotations

import numpy as np

from ..canonical import CanonicalLSTM, LayerWeights
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Backend, Capabilities, NativeDict, UnsupportedFeature
from ._names import group_by_prefix, pick, to_numpy

_LOCAL = r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l\d+(_reverse)?"
_FIELDS = {"weight_ih": "W_ih", "weight_hh": "W_hh", "bias_ih": "b_ih", "bias_hh": "b_hh", "weight_hr": "W_hr"}


def _key(kind: str, layer: int, direction: int) -> str:
    return f"{kind}_l{layer}{'_reverse' if direction else ''}"


class TorchBackend(Backend):
    name = "torch"
    framework = "torch"
    description = "torch.nn.LSTM"
    capabilities = Capabilities(double_bias=True, projection=True, devices=("cpu", "cuda"))

    def check_spec(self, spec: LSTMSpec) -> None:
        super().check_spec(spec)
        if spec.proj_size and spec.proj_size >= spec.hidden_size:
            raise UnsupportedFeature(
                f"torch.nn.LSTM requires proj_size < hidden_size, got proj_size={spec.proj_size}, "
                f"hidden_size={spec.hidden_size}"
            )

    def device_missing(self, device: str) -> str | None:
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            return "no CUDA device visible to torch"
        return None

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
                fields[_FIELDS[kind]] = to_numpy(key, params[key])
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
    def prepare(self, model: CanonicalLSTM, dtype="float32", device="cpu"):
        import torch

        spec = model.spec
        native = self.export(model, dtype=np.float64)  # cast inside torch, once
        tdtype = getattr(torch, str(np.dtype(dtype)))
        lstm = torch.nn.LSTM(
            spec.input_size, spec.hidden_size, num_layers=spec.num_layers, bias=spec.bias != "none",
            bidirectional=spec.bidirectional, proj_size=spec.proj_size, dtype=tdtype, device=device,
        )
        lstm.load_state_dict({k: torch.from_numpy(v).to(tdtype) for k, v in native.items()}, strict=True)
        lstm.eval()
        return lstm

    def run(self, lstm, x, h0, c0, *, batch_first=False) -> LSTMOutput:
        import torch

        p = next(lstm.parameters())
        as_t = lambda a: torch.as_tensor(np.asarray(a), device=p.device).to(p.dtype)  # noqa: E731
        lstm.batch_first = batch_first  # a plain attribute read in forward(): exercise torch's own batch_first path
        with torch.inference_mode():
            state = None if h0 is None else (as_t(h0), as_t(c0))
            y, (h_n, c_n) = lstm(as_t(x), state)
            if p.device.type == "cuda":
                torch.cuda.synchronize()
        return LSTMOutput.of(*(t.float().cpu().numpy() if t.dtype in (torch.float16, torch.bfloat16) else t.cpu().numpy()
                               for t in (y, h_n, c_n)))

    def environment(self) -> dict[str, str]:
        import torch

        env = {"torch": torch.__version__}
        if torch.cuda.is_available():
            env["cuda"] = str(torch.version.cuda)
            env["cudnn"] = str(torch.backends.cudnn.version())
            env["gpu"] = torch.cuda.get_device_name()
        return env
