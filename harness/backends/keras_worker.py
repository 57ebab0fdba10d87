"""keras-<b> where b is not this process's Keras backend: run in a persistent worker process.

Keras 3 fixes its backend when it is first imported (KERAS_BACKEND), so one process holds one Keras
backend. A keras-<b> subject whose b is this process's runs in-process; any other runs here, in one
worker per Keras backend: a fresh interpreter (`python -m harness.backends.keras_worker`) with
KERAS_BACKEND=b in its environment from the start, started on first use, kept alive for the life of this
process, stopped at exit (its stderr is this process's real one, even when started inside harness.quiet's
filter); requests and answers are pickled over a multiprocessing Pipe. Not
multiprocessing's 'spawn' start: it re-runs the caller's __main__ module in the child (a user's script
without a main guard would run again inside the worker; `python -m harness` would import torch there).
The worker runs the very same backend class in-process (there b *is* the process's backend): the
weights go to it as the CanonicalLSTM, the inputs (and per-example lengths) as numpy arrays, and an
LSTMOutput of numpy arrays comes back. So pytest, `python -m harness` and the API see one protocol, and results come back into
the calling process: there is nothing to merge.

What stays in the calling process: everything framework-free (supports, export, import_, adapt).
What goes to the worker: installed (the import itself), device_missing, environment, set_threads,
prepare (the live model stays in the worker; Prepared.model is a Handle to it), run, forward_callable
(call and fetch each one round trip; timings through it include the pipe, see timing_missing) and
watch_kernel (entered and left in the worker around the calls made inside it); and a Keras file that
`convert --check` or `diagnose` runs as keras-<b> (harness.port_check: loaded and run by that backend's Keras,
not this process's). Precision: the mode in
force here is applied in the worker before each prepare, and the flags the worker had in force come
back in watch_kernel's dict, so a result records the flags of the process that ran it.

An exception in the worker is raised here with its own type when that type is a builtin or the
harness's (ValueError, TypeError, UnsupportedFeature, ...), otherwise as a RuntimeError naming it; the
worker's traceback is attached as a note. A worker that dies (a crash in a framework) raises
WorkerDied here, and the next request starts a fresh one; what was prepared in the dead one is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import itertools
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
import traceback
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .. import quick_exit, quiet
from . import NotInstalled, TimedForward

_WORKERS: dict[str, Worker] = {}


class WorkerDied(RuntimeError):
    """The worker process exited (or never started) while a request was in flight."""


@dataclass(eq=False)
class Handle:
    """Prepared.model of a backend run in a worker: the key of the live model held there."""

    worker: Worker
    key: int
    generation: int  # the worker process it lives in; a restarted worker does not have it

    def __repr__(self) -> str:
        return f"<{self.worker.name} model {self.key} in worker process {self.generation}>"


class Worker:
    """The calling side of one worker process: requests go one at a time, answers come back in order."""

    def __init__(self, name: str, env: dict[str, str]):
        self.name, self.env = name, dict(env)
        self._lock = threading.RLock()
        self._process = None
        self._conn = None
        self._answered = False  # the child has sent its first message: whether it could import its framework
        self._reason: str | None = None  # why it could not (None: it could)
        self._keys = itertools.count(1)
        self._dropped: list[int] = []  # keys whose handles were garbage-collected: freed with the next request
        self.generation = 0

    def __repr__(self) -> str:
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"<worker for {self.name} ({env})>"

    @property
    def pid(self) -> int | None:
        """The worker process's id while one is running."""
        return None if self._process is None else self._process.pid

    # Life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker if none is running (returns at once; the child imports in the background).
        One that died is noticed by the next request (WorkerDied), which forgets it."""
        with self._lock:
            if self._process is not None:
                return
            parent, child = multiprocessing.Pipe()
            root = str(Path(__file__).resolve().parents[2])  # the checkout or site-packages holding harness
            env = {**os.environ, **self.env,
                   "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(child.fileno()), self.name, json.dumps(self.env)],
                env=env, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
                stderr=quiet.real_stderr())  # the terminal's, even when started inside a stderr filter
            child.close()  # only the child holds its end now: its exit is an EOF here
            self._conn, self._answered = parent, False
            self._dropped.clear()
            self.generation += 1

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the worker to exit (terminate it if it does not, or if it is still importing: never used)."""
        with self._lock:
            process, conn, self._process, self._conn = self._process, self._conn, None, None
            if process is None:
                return
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
            try:
                process.wait(timeout if self._answered else 0)
            except subprocess.TimeoutExpired:
                process.terminate()
                process.wait(timeout)
            conn.close()

    def installed(self) -> str | None:
        """None once the worker has imported the framework, else why it could not."""
        with self._lock:
            self._started()
            return self._reason

    def _started(self):
        """The live connection, after the child's first message (its import of the framework)."""
        self.start()
        if not self._answered:
            _, self._reason = self._receive()  # ("ready", None or why not)
            self._answered = True
        return self._conn

    # Requests -------------------------------------------------------------------------------
    def call(self, op: str, *args: Any) -> Any:
        with self._lock:
            conn = self._started()
            if self._reason is not None:
                raise NotInstalled(f"{self.name}: its worker process could not import its framework: {self._reason}")
            if self._dropped:
                keys, self._dropped = self._dropped, []
                self._send(conn, ("drop", (keys,)))
                self._receive()
            self._send(conn, (op, args))
            kind, *rest = self._receive()
        if kind == "error":
            raise _rebuild(self, *rest)
        return rest[0]

    def _send(self, conn, message) -> None:
        try:
            conn.send(message)
        except (OSError, ValueError) as exc:
            raise self._died(f"sending {message[0]!r}: {exc}") from exc

    def _receive(self):
        try:
            return self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died(f"waiting for its answer ({type(exc).__name__})") from exc

    def _died(self, when: str) -> WorkerDied:
        process, code = self._process, None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(5)
        self._process, self._conn, self._answered = None, None, False  # the next request starts a fresh worker
        return WorkerDied(f"the {self.name} worker process exited (exit code {code}) {when}; "
                          f"what was prepared in it is gone, and the next request starts a new one")

    def prepare(self, *args: Any) -> Handle:
        handle = Handle(self, self.call("prepare", *args), self.generation)
        weakref.finalize(handle, self._dropped.append, handle.key)  # appended only: never a request inside GC
        return handle

    def on(self, handle: Handle, op: str, *args: Any) -> Any:
        """A request about a prepared model, refused if the model died with an earlier worker process."""
        if handle.generation != self.generation or self._process is None:
            raise WorkerDied(f"{handle!r} was prepared in a worker process that has exited; prepare it again")
        return self.call(op, handle.key, *args)

    # The protocol pieces that need a round trip -----------------------------------------------
    def forward_callable(self, handle: Handle, x, h0, c0, batch_first: bool, variant: str,
                         lengths=None) -> TimedForward:
        key, what = self.on(handle, "forward", x, h0, c0, batch_first, variant, lengths)
        keep = Handle(self, key, handle.generation)
        weakref.finalize(keep, self._dropped.append, key)
        return TimedForward(call=lambda: self.on(keep, "forward_call"),
                            fetch=lambda _: self.on(keep, "forward_fetch"),
                            what=f"{what}; run in the {self.name} worker process, so a host timer here adds the pipe "
                                 "round trip")

    @contextlib.contextmanager
    def watch_kernel(self, handle: Handle) -> Iterator[dict[str, str]]:
        seen: dict[str, str] = {}
        self.on(handle, "watch_start")
        try:
            yield seen
        finally:
            seen.update(self.on(handle, "watch_stop"))


class RunsInWorker:
    """Mixin before a Backend class: in-process where in_process() says so, else in this process's worker for
    it (started with process_env()). Dispatches the protocol's framework-bound pieces (the module docstring);
    a live model prepared in-process stays in-process, a Handle goes to its worker."""

    def in_process(self) -> bool:
        raise NotImplementedError

    def modules_missing(self) -> str | None:
        """Why the worker could not import its framework, judged here without importing it (or None)."""
        return None

    def worker(self) -> Worker:
        return worker_for(self.name, self.process_env())

    def in_worker(self) -> bool:
        return not self.in_process()

    def start_in_background(self):
        if self.in_worker() and self.modules_missing() is None:
            self.worker().start()

    def installed(self):
        if self.in_process():
            return super().installed()
        return self.modules_missing() or self.worker().installed()

    def timing_missing(self):
        if self.in_process():
            return super().timing_missing()
        env = " ".join(f"{k}={v}" for k, v in self.process_env().items())
        return (f"{self.name} runs in a worker process here, so a timing from this process would include the pipe; "
                f"it is timed in a process started with {env} (python -m harness bench does that)")

    def _remote(self, method: str, *args):
        return self.worker().call("method", method, *args)

    def device_missing(self, device):
        if device == "cpu" or self.in_process():
            return super().device_missing(device)
        return self._remote("device_missing", device)

    def environment(self):
        return super().environment() if self.in_process() else self._remote("environment")

    def set_threads(self, threads):
        return super().set_threads(threads) if self.in_process() else self._remote("set_threads", threads)

    def _prepare(self, model, dtype="float32", device="cpu"):
        from .. import precision

        if self.in_process():
            return super()._prepare(model, dtype, device)
        return self.worker().prepare(model, dtype, device, precision.current())

    def _run(self, live, x, h0, c0, *, batch_first=False, **lengths):
        if isinstance(live, Handle):
            return live.worker.on(live, "run", x, h0, c0, batch_first, lengths.get("lengths"))
        return super()._run(live, x, h0, c0, batch_first=batch_first, **lengths)

    def _forward_callable(self, live, x, h0, c0, *, batch_first=False, **variant_and_lengths):
        if isinstance(live, Handle):
            return live.worker.forward_callable(live, x, h0, c0, batch_first, variant_and_lengths.get("variant", ""),
                                                variant_and_lengths.get("lengths"))
        return super()._forward_callable(live, x, h0, c0, batch_first=batch_first, **variant_and_lengths)

    def _watch_kernel(self, live):
        if isinstance(live, Handle):
            return live.worker.watch_kernel(live)
        return super()._watch_kernel(live)


def worker_for(name: str, env: dict[str, str]) -> Worker:
    """The one worker of backend `name` in this process (created, not yet started, on first use)."""
    if name not in _WORKERS:
        _WORKERS[name] = Worker(name, env)
    return _WORKERS[name]


@atexit.register
def _stop_all() -> None:
    for worker in list(_WORKERS.values()):
        worker.stop()


def modules_missing(*modules: str) -> str | None:
    """Why one of `modules` cannot be found here (without importing it), or None."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (ModuleNotFoundError: No module named {module!r})"
    return None


# The errors that cross the pipe ------------------------------------------------------------------
def _portable(exc: BaseException) -> BaseException | None:
    """`exc` itself if it can be rebuilt on the calling side without importing a framework there."""
    module = type(exc).__module__
    if module != "builtins" and not module.startswith("harness."):
        return None
    try:
        return pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - an exception that does not survive pickling goes as its name and text
        return None


def _rebuild(worker: Worker, portable: BaseException | None, kind: str, message: str, tb: str) -> BaseException:
    exc = portable if portable is not None else RuntimeError(f"{kind}: {message}")
    exc.add_note(f"raised in the {worker.name} worker process ({' '.join(f'{k}={v}' for k, v in worker.env.items())}):\n{tb}")
    return exc


# The worker process ------------------------------------------------------------------------------
def serve(conn, name: str, env: dict[str, str]) -> None:
    """The child: import the backend in-process, answer requests until told to stop or the parent goes."""
    from .. import backends, precision, quiet

    quiet.environment()
    backend = backends.get(name)
    with quiet.filtered_stderr():  # the frameworks' start-up chatter, as the calling process keeps it out
        try:
            wrong = {k: os.environ.get(k) for k, v in env.items() if os.environ.get(k) != v}
            reason = f"the worker's environment has {wrong}, not {env}" if wrong else backend.installed()
            if reason is None and not getattr(backend, "in_process", lambda: True)():
                reason = f"{name} does not run in-process in its own worker ({env})"
        except Exception as exc:  # noqa: BLE001 - a broken install is "not installed" too
            reason = f"{type(exc).__name__}: {exc}"
        conn.send(("ready", reason))
        if reason is None and hasattr(backend, "warm_up"):
            # Started ahead of need (start_in_background), the worker pays its one-time costs while the caller
            # does other work; a failure here is the first request's to report, with its context.
            with contextlib.suppress(Exception):
                backend.warm_up()
    live: dict[int, Any] = {}
    watches: dict[int, tuple[contextlib.ExitStack, dict]] = {}
    keys = itertools.count(1)

    def prepare(model, dtype, device, mode):
        precision.apply(mode)
        key = next(keys)
        live[key] = backend.prepare(model, dtype, device)
        return key

    def forward(key, x, h0, c0, batch_first, variant, lengths=None):
        timed = backend.forward_callable(live[key], x, h0, c0, batch_first=batch_first, variant=variant,
                                         lengths=lengths)
        k = next(keys)
        live[k] = [timed, None]
        return k, timed.what

    def forward_call(key):
        live[key][1] = live[key][0].call()

    def watch_start(key):
        stack = contextlib.ExitStack()
        watches[key] = (stack, stack.enter_context(backend.watch_kernel(live[key])))

    def watch_stop(key):
        stack, seen = watches.pop(key)
        stack.close()
        return {**seen, **precision.state()}  # the flags in force where it ran

    def run_file(source, spec, xs, dtype, lengths=None):  # a Keras file, loaded and run by this process's Keras
        from ..port_check import keras_file_here

        return keras_file_here(source, spec, xs, dtype, lengths)

    ops = {
        "prepare": prepare,
        "run": lambda key, x, h0, c0, batch_first, lengths=None: backend.run(
            live[key], x, h0, c0, batch_first=batch_first, lengths=lengths),
        "forward": forward,
        "forward_call": forward_call,
        "forward_fetch": lambda key: live[key][0].fetch(live[key][1]),
        "watch_start": watch_start,
        "watch_stop": watch_stop,
        "drop": lambda keys_: [live.pop(k, None) for k in keys_] and None,
        "method": lambda method, *args: getattr(backend, method)(*args),
        "run_file": run_file,
    }
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent has gone
            return
        if message is None:
            return
        op, args = message
        try:
            answer = ("ok", ops[op](*args))
        except BaseException as exc:  # noqa: BLE001 - every error goes back to the caller
            answer = ("error", _portable(exc), f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc),
                      traceback.format_exc(limit=-8))
        conn.send(answer)


if __name__ == "__main__":  # the worker: python -m harness.backends.keras_worker FD NAME ENV_JSON
    serve(Connection(int(sys.argv[1])), sys.argv[2], json.loads(sys.argv[3]))
    quick_exit.now()  # the parent's stop() would otherwise wait out the frameworks' teardown
