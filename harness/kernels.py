"""Which kernel actually ran, where a framework can fall back silently.

torch.nn.LSTM picks cuDNN on CUDA, oneDNN on CPU, or its own per-step ATen cells (for example an
LSTM with a projection on CPU, or a dtype cuDNN refuses) without a word; Keras 3's torch backend
swallows any cuDNN error and runs its own loop. The torch profiler's op names say which ran; it
records operator dispatch on the host, so it sees `aten::_cudnn_rnn` for CUDA work too.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

# aten op name -> the kernel it means, most specific first.
TORCH_RNN_OPS = (
    ("aten::_cudnn_rnn", "cuDNN (aten::_cudnn_rnn)"),
    ("aten::miopen_rnn", "MIOpen (aten::miopen_rnn)"),
    ("aten::mkldnn_rnn_layer", "oneDNN (aten::mkldnn_rnn_layer)"),
    ("aten::_thnn_fused_lstm_cell", "ATen fused CUDA LSTM cell per step (aten::_thnn_fused_lstm_cell)"),
)
TORCH_NATIVE = "ATen per-step LSTM cells (no fused kernel)"


@contextlib.contextmanager
def _quiet_stderr_fd() -> Iterator[None]:
    """Silence file descriptor 2 for a moment: the profiler's start/stop print a line each from C++."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


@contextlib.contextmanager
def torch_ops() -> Iterator[set[str]]:
    """Collect the names of the aten ops dispatched inside the block (filled in when it exits)."""
    from torch.profiler import ProfilerActivity, profile

    seen: set[str] = set()
    prof = profile(activities=[ProfilerActivity.CPU])
    with _quiet_stderr_fd():  # only around start and stop: warnings of the forward itself still show
        prof.__enter__()
    try:
        yield seen
    finally:
        with _quiet_stderr_fd():
            prof.__exit__(None, None, None)
        seen.update(_op_names(prof))


def _op_names(prof) -> set[str]:
    """The names of the recorded ops. The raw events' names, read straight from kineto's results: grouping them
    with key_averages() took 1.5 s for a 200-step LSTM on ATen's per-step cells (thousands of events), 0.02 s so."""
    results = getattr(getattr(prof, "profiler", None), "kineto_results", None)
    if results is not None and hasattr(results, "events"):
        return {event.name() for event in results.events()}
    return {event.key for event in prof.key_averages()}  # the public, slower way, where the internals moved


def torch_rnn_kernel(ops: set[str]) -> str | None:
    """The torch LSTM kernel the op names show, or None if no torch LSTM ran."""
    for op, kernel in TORCH_RNN_OPS:
        if op in ops:
            return kernel
    return TORCH_NATIVE if "aten::lstm" in ops else None
