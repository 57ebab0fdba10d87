"""torch.nn.LSTM, or a torch.nn.Module holding one: the spec from the LSTM's own attributes, the weights from its
state_dict through the torch backend's import, run as the user's LSTM itself."""

from __future__ import annotations

import numpy as np

from .. import backends
from ..outputs import LSTMOutput
from ..spec import LSTMSpec
from . import Side, choose, dtype_name, framework_lengths, loaded


def recognise(obj) -> bool:
    torch = loaded("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def read(obj, select, option: str, lenient: bool) -> Side:
    import torch

    found = {name: m for name, m in obj.named_modules() if isinstance(m, torch.nn.LSTM)}
    if not found:
        kinds = sorted({type(m).__name__ for m in obj.modules() if isinstance(m, torch.nn.RNNBase)})
        raise ValueError("holds no torch.nn.LSTM" + (f" (its recurrent modules: {kinds})" if kinds else ""))
    name, lstm = choose(found, select, option, "torch.nn.LSTM")
    spec = LSTMSpec(input_size=lstm.input_size, hidden_size=lstm.hidden_size, num_layers=lstm.num_layers,
                    bidirectional=lstm.bidirectional, proj_size=lstm.proj_size,
                    bias="double" if lstm.bias else "none")
    model = backends.get("torch").import_(lstm.state_dict(), spec)
    param = next(lstm.parameters())
    notes = []
    if lstm.dropout and lstm.num_layers > 1:
        notes.append(f"dropout={lstm.dropout} acts in training only: the LSTM runs in eval mode for the comparison")

    label = f"torch.nn.LSTM {name!r}" if name else "torch.nn.LSTM"
    how = "the user's torch.nn.LSTM itself" + (f", batch_first={lstm.batch_first}" if lstm.batch_first else "")
    side = Side(label, "torch", model, dtype_name(param.dtype),
                lambda x, h0, c0, lengths=None: run_lstm(lstm, x, h0, c0, lengths), how, notes=notes)
    return framework_lengths(side, "torch")


def run_lstm(lstm, x, h0, c0, lengths=None) -> LSTMOutput:
    """A torch.nn.LSTM on time-major numpy x, h0, c0 (in its own dtype, device and layout, in eval mode for the
    call: dropout between layers is training-time only); the outputs time-major, as numpy. With per-example
    lengths, x is packed (pack_padded_sequence, enforce_sorted=False) and y padded back with zeros to x's steps,
    as torch users run a padded batch."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    param = next(lstm.parameters())
    place = lambda a: torch.as_tensor(np.asarray(a)).to(device=param.device, dtype=param.dtype)  # noqa: E731
    xt = place(x.transpose(1, 0, 2) if lstm.batch_first else x)
    training = lstm.training
    lstm.train(False)
    try:
        with torch.no_grad():
            if lengths is None:
                y, (h_n, c_n) = lstm(xt, (place(h0), place(c0)))
            else:
                packed = pack_padded_sequence(xt, torch.as_tensor(np.asarray(lengths), dtype=torch.int64),
                                              batch_first=lstm.batch_first, enforce_sorted=False)
                y, (h_n, c_n) = lstm(packed, (place(h0), place(c0)))
                y, _ = pad_packed_sequence(y, batch_first=lstm.batch_first, total_length=x.shape[0])
    finally:
        lstm.train(training)
    y, h_n, c_n = (t.detach().float().cpu().numpy() if t.dtype in (torch.float16, torch.bfloat16)
                   else t.detach().cpu().numpy() for t in (y, h_n, c_n))
    return LSTMOutput(y.transpose(1, 0, 2) if lstm.batch_first else y, h_n, c_n)
