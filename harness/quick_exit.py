"""Leaving a harness-owned process without the interpreter's teardown of the frameworks it imported.

That teardown (module finalisation, the frameworks' own C++ destructors and thread pools) is pure cost in
a process whose work is done and sent: measured on a 2-core machine, 1.1 s for a keras-jax worker, 1.8 s
for keras-torch, 2-3 s for a pytest-xdist worker holding every framework, all waited out by the process
that started it. Only processes the harness starts and owns leave this way: the Keras worker processes,
and pytest-xdist's workers, whose results have reached the controller over execnet before they exit.
A user's own process (python -m harness, pytest without -n, the API) always tears down normally.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys


def now(code: int = 0) -> None:
    """Flush what is buffered (the standard streams, logging's handlers), then exit with `code` at once."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed or replaced: nothing left to flush
            pass
    os._exit(code)


def at_exit() -> None:
    """From here on, this process leaves through now() once every atexit handler registered after this call
    has run (atexit runs them last-in, first-out), unless it is leaving on an uncaught exception (then the
    interpreter reports it and exits non-zero as usual) or coverage.py is measuring it (its data is saved by
    an atexit handler that may have been registered before this one, and would be lost)."""

    def leave() -> None:
        if hasattr(sys, "last_value") or hasattr(sys, "last_exc"):  # set when the interpreter printed a traceback
            return
        if _coverage_running():
            return
        now(0)

    atexit.register(leave)


def _coverage_running() -> bool:
    coverage = sys.modules.get("coverage")  # never imported here: only asked of a coverage.py already running
    current = getattr(getattr(coverage, "Coverage", None), "current", None)
    return current is not None and current() is not None
