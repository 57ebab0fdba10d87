"""Keep the frameworks' start-up chatter off the terminal (absl, oneDNN, TensorFlow's C++ logs, XLA, gRPC).

Two layers, because neither suffices alone:

  environment()     the frameworks' own switches, set before any of them is imported (a value the user has set
                    wins: `TF_CPP_MIN_LOG_LEVEL=0 python -m harness run` shows everything again);
  filtered_stderr() what the switches cannot reach: TensorFlow >= 2.18 writes "WARNING: All log messages before
                    absl::InitializeLog() is called are written to STDERR" and its oneDNN note through absl
                    before TF_CPP_MIN_LOG_LEVEL is read. Inside the block, file descriptor 2 goes to a temporary
                    file; afterwards every line is written back to stderr except absl/glog INFO and WARNING
                    lines and that notice. Errors (E/F lines) and Python's own messages pass through.

TF_ENABLE_ONEDNN_OPTS is left alone: it changes which kernels run, not only what is said.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow's C++ logging: errors only
    "GRPC_VERBOSITY": "ERROR",  # gRPC, which TensorFlow links
    "GLOG_minloglevel": "2",  # glog-based libraries (older XLA / jaxlib)
}

# absl / glog INFO and WARNING lines: severity, date (MMDD), time (before absl::InitializeLog: 00:00:<epoch>),
# thread id, file:line] message
_GLOG = re.compile(r"^[IW]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] ")
CHATTER = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    _GLOG,
    re.compile(r"oneDNN custom operations are on"),
    # the second line of TensorFlow's cpu_feature_guard INFO message (the first is a glog line)
    re.compile(r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"),
    # XLA / TensorFlow with CUDA: each registers the same CUDA plugins, and says so at error level
    re.compile(r"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered"),
    # TensorFlow at error level on a CPU without AVX-512, at a Keras mask's first use (a padded batch): it then runs
    # Eigen's kernel for the boolean op, as it says; nothing went wrong
    re.compile(r"oneDNN supports DT_BOOL only on platforms with AVX-512\. Falling back to the default Eigen-based "
               r"implementation if present\.$"),
)


# Python warnings that say what the results already record (as pyproject.toml's filterwarnings for pytest):
# torch on the CPU runs LSTMP on ATen cells, not oneDNN; every result's "kernel" names the kernel that ran.
WARNINGS = ("LSTM with projections is not supported with oneDNN",)


def environment() -> None:
    """Set the frameworks' logging switches (before they are imported; a value already set is kept)."""
    import warnings

    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for message in WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(message))


def is_chatter(line: str) -> bool:
    return any(p.search(line) for p in CHATTER)


_REAL_STDERR: list[int] = []  # inside filtered_stderr blocks: the saved descriptors of the stderr they replaced


def real_stderr() -> int | None:
    """The descriptor of the stderr in place before any filtered_stderr block now running (None: no block runs,
    fd 2 is it). A process started inside a block writes there, so that it does not write into a capture that is
    gone when the block ends (a Keras worker restarted in the middle of a run)."""
    return _REAL_STDERR[0] if _REAL_STDERR else None


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Run the block with fd 2 captured; then write back every line of it that is not start-up chatter.

    A process that dies inside the block (a framework's segfault or abort) never writes the capture back: so that
    it does not die silently, Python's fault handler writes its fatal error and traceback to the real stderr
    meanwhile (where nothing else, such as pytest, has enabled it already)."""
    import faulthandler

    sys.stderr.flush()
    saved = os.dup(2)
    ours = not faulthandler.is_enabled()
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        _REAL_STDERR.append(saved)
        if ours:
            faulthandler.enable(file=saved)
        try:
            yield
        finally:
            _REAL_STDERR.pop()
            if ours:
                faulthandler.disable()
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                    if not is_chatter(line)]
            if kept:
                os.write(2, "".join(kept).encode())
