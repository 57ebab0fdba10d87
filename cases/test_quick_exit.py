"""harness.quick_exit: a process that leaves without the frameworks' teardown still flushes what it wrote, runs
the atexit handlers registered after it, and still fails loudly on an uncaught exception."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as a plain run is
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_at_exit_flushes_runs_later_handlers_and_skips_the_teardown():
    run = _python("""
        import atexit, sys
        from harness import quick_exit
        quick_exit.at_exit()
        atexit.register(lambda: sys.stdout.write("handler registered later ran\\n"))
        class Teardown:  # a module-level object's finaliser runs only in the interpreter's teardown
            def __del__(self):
                sys.stdout.write("teardown ran\\n")
        keep = Teardown()
        sys.stdout.write("buffered, not flushed")  # stdout to a pipe is block-buffered: lost without a flush
    """)
    assert run.returncode == 0, run.stderr
    assert "handler registered later ran" in run.stdout and "buffered, not flushed" in run.stdout
    assert "teardown ran" not in run.stdout


def test_an_uncaught_exception_still_exits_non_zero_with_its_traceback():
    run = _python("""
        from harness import quick_exit
        quick_exit.at_exit()
        raise RuntimeError("the work failed")
    """)
    assert run.returncode == 1 and "RuntimeError: the work failed" in run.stderr


def test_now_keeps_the_code_and_flushes_logging():
    run = _python("""
        import logging, logging.handlers, sys
        from harness import quick_exit
        held = logging.handlers.MemoryHandler(100, target=logging.StreamHandler(sys.stdout))  # writes on close only
        logging.getLogger().addHandler(held)
        logging.warning("logged")
        print("printed", end="")
        quick_exit.now(3)
    """)
    assert run.returncode == 3 and "logged" in run.stdout and "printed" in run.stdout


def test_a_process_measured_by_coverage_tears_down_as_usual():
    """coverage.py saves its data from an atexit handler registered at start-up, before at_exit's: leaving early
    would lose it. A stand-in coverage module whose Coverage.current() is running."""
    run = _python("""
        import sys, types
        from harness import quick_exit
        fake = types.ModuleType("coverage")
        fake.Coverage = type("Coverage", (), {"current": staticmethod(lambda: object())})
        sys.modules["coverage"] = fake
        quick_exit.at_exit()
        class Teardown:
            def __del__(self):
                sys.stdout.write("teardown ran\\n")
        keep = Teardown()
    """)
    assert run.returncode == 0 and "teardown ran" in run.stdout, run.stdout + run.stderr
