"""`python -m harness`'s subcommands, one module each: run, report, measure, bench, gpu, convert.

Each module has `add_parser(sub)` (its options, its help, `func`) and its command; harness/__main__.py only
builds the parser from them and dispatches. What several commands share is here: the selection options
(--case, --backend, --dtype, --device, --precision), checked before any work starts, and the usage error.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
from pathlib import Path

from harness.atomic import cannot_write

BENCH_JSON = "reports/bench.json"  # where `python -m harness bench` leaves its merged pytest-benchmark JSON


def csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def usage(args, message: str):
    """A bad command line: the message names the option, what is known and what was given (exit 2, as argparse)."""
    print(f"python -m harness {args.command}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_output_paths(args, files: dict[str, str] | None = None, folders: dict[str, str] | None = None) -> None:
    """Every output a command will write, checked before any work runs (a bad --results fails in the first
    second, not after the matrix): {option: path} of files (which must not be folders) and of folders (which
    must not be files), each under a folder that exists or can be made, and writable. An empty path (that
    output switched off) is skipped."""
    wanted = [(o, p, "file") for o, p in (files or {}).items()] + [(o, p, "folder") for o, p in (folders or {}).items()]
    for option, path, kind in wanted:
        problem = cannot_write(path, kind) if path else None  # an empty path: that output is switched off
        if problem:
            usage(args, f"{option}: {problem}")


def input_file_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be an input file a command reads (it must exist and be a file), or None."""
    path = Path(path)
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_file():
        return f"{path} is a folder; expected a file"
    return None


def input_file(args, option: str, path: str) -> Path:
    """An input file the command reads: it must exist and be a file (exit 2 naming the option otherwise)."""
    problem = input_file_problem(path)
    if problem:
        usage(args, f"{option}: {problem}")
    return Path(path)


def in_cli_terms(message: str) -> str:
    """A library message in the command line's words: the Python API's `select=` is the CLI's `--select`."""
    return re.sub(r"\bselect=", "--select ", message)


def add_backend_option(p) -> None:
    p.add_argument("--backend", default="", metavar="NAMES",
                   help="comma-separated backends (default: every one but the reference; "
                        "`python -m harness list backends` shows them, with their status)")


def add_device_options(p, *, several_modes: bool = False) -> None:
    """--device and --precision (run, measure, bench)."""
    from harness import devices, precision

    p.add_argument("--device", default="cpu", metavar="DEVICES",
                   help=f"comma-separated devices, of {', '.join(devices.DEVICES)} (default cpu); a device "
                        "missing here makes its cells 'skipped', with the reason")
    modes = ", ".join(precision.MODES)
    p.add_argument("--precision", default="exact", metavar="MODES" if several_modes else "MODE",
                   help=(f"comma-separated precision modes, of {modes}" if several_modes else
                         f"precision mode, one of {modes}") +
                        " (default exact: TF32 off everywhere; tf32 lets float32 products on a GPU use TF32)")


def add_selection_options(p) -> None:
    """The cases x backends x dtypes x devices to run (run, measure)."""
    from harness import precision

    p.add_argument("--case", default="", metavar="NAMES",
                   help="comma-separated case names (default: all; `python -m harness list cases` shows them)")
    add_backend_option(p)
    p.add_argument("--dtype", default="float32,float64", metavar="DTYPES",
                   help=f"comma-separated dtypes, of {', '.join(precision.DTYPES)} (default float32,float64); "
                        "each has its own tolerance (harness/compare.py)")
    add_device_options(p)


def positive(option: str, kind=float, zero: bool = False):
    """An argparse type: a number > 0 (>= 0 with zero=True); `--seeds -1` is refused before anything runs."""
    bound = ">= 0" if zero else "> 0"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or math.isnan(value) or not (value >= 0 if zero else value > 0):
            raise argparse.ArgumentTypeError(f"expected a {'whole ' if kind is int else ''}number {bound}, "
                                             f"got {text!r}")
        return value
    parse.__name__ = option  # argparse names the type in its message
    return parse


def subjects(args) -> list[str]:
    """--backend's names (default: every backend but the reference), each known and not the reference."""
    from harness import backends

    if not args.backend:
        return backends.subjects()
    names = csv(args.backend)
    if not names:
        usage(args, f"--backend: expected at least one backend, got {args.backend!r}")
    for name in names:
        try:
            if backends.get(name).reference:
                usage(args, f"--backend: {name} is the reference the others are compared with, not a subject; "
                            f"expected some of {', '.join(backends.subjects())}")
        except KeyError as exc:
            usage(args, f"--backend: {exc.args[0]}")
    return names


def select(args):
    """The cases and backends to run; every name, dtype, device and mode is checked before anything runs."""
    from harness import catalogue, devices, precision

    everything = [*catalogue.CASES, *(catalogue.SIZE_SWEEP if getattr(args, "sweep", False) else ())]
    if args.case and not csv(args.case):
        usage(args, f"--case: expected at least one case name, got {args.case!r}")
    try:
        cases = [catalogue.get_case(n) for n in csv(args.case)] if args.case else everything
    except KeyError as exc:
        usage(args, f"--case: {exc.args[0]}")
    names = subjects(args)
    check_values(args, ("--dtype", precision.check_dtype), ("--device", devices.check_device),
                 ("--precision", precision.check_mode))
    if len(csv(args.precision)) > 1:  # the flags are per process: one mode per command
        usage(args, f"--precision: expected one mode, got {args.precision!r} (run one command per mode)")
    args.precision = csv(args.precision)[0]
    return cases, names


def check_values(args, *checks) -> None:
    """Each comma-separated value of each (option, check) through its check; the first bad one is a usage error."""
    for option, check in checks:
        text = getattr(args, option[2:].replace("-", "_"))
        values = csv(text)
        if not values:
            usage(args, f"{option}: expected at least one value, got {text!r}")
        for value in values:
            try:
                check(value)
            except (KeyError, ValueError) as exc:
                usage(args, f"{option}: {str(exc.args[0]).removeprefix(option[2:] + ': ')}")


def root() -> Path:
    """The checkout that holds cases/ (benchmarks and agreement cases are run from there)."""
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "cases" / "bench_forward.py").exists():
        raise SystemExit(f"{checkout} has no cases/bench_forward.py: run this from a checkout of the harness")
    return checkout


def pytest(args: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> tuple[list[str], int]:
    """Run pytest in the checkout, in its own process; return the command and its exit status.

    With `log`, its output goes to that file (the progress line stays readable); without, to the terminal.
    """
    from harness import atomic

    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    # Its own session, not a pytest-xdist worker's: pytest-benchmark disables itself where it sees PYTEST_XDIST_WORKER.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}, **(env or {})}
    if log is None:
        print("$ " + " ".join(cmd), flush=True)
        return cmd, subprocess.run(cmd, cwd=root(), env=env).returncode
    with atomic.open_for_writing(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        return cmd, subprocess.run(cmd, cwd=root(), env=env, stdout=fh, stderr=subprocess.STDOUT,
                                   check=False).returncode


def tail(log: Path, lines: int = 30) -> str:
    """The last lines of a log, indented, for a failure message."""
    text = log.read_text(errors="replace").splitlines() if log.exists() else ["(no log)"]
    return "\n".join("    " + line for line in text[-lines:])


def require(args, module: str, what: str) -> None:
    """A dependency the command cannot do without: named with how to install it (exit 1), before any work."""
    import importlib.util

    from harness import extras

    if importlib.util.find_spec(module) is None:
        how = extras.hint(module).removeprefix("; ") or "pip install -c constraints.txt -e ."
        print(f"python -m harness {args.command}: error: {what} is not installed; {how}", file=sys.stderr)
        raise SystemExit(1)
