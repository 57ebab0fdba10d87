"""`python -m harness`'s subcommands, one module each: run, report, measure, bench, gpu, convert.

Each module has `add_parser(sub)` (its options, its help, `func`) and its command; harness/__main__.py only
builds the parser from them and dispatches. What several commands share is here: the selection options
(--case, --backend, --dtype, --device, --precision), checked before any work starts, and the usage error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
        if not path:
            continue
        path = Path(path)
        if kind == "file" and path.is_dir():
            usage(args, f"{option}: {path} is a folder; expected a file to write")
        if kind == "folder" and path.exists() and not path.is_dir():
            usage(args, f"{option}: {path} is a file; expected a folder to write into (it is made if missing)")
        above = path if kind == "folder" else path.parent
        while not above.exists() and above != above.parent:  # the nearest folder that exists: made below it
            above = above.parent
        if not above.is_dir():
            usage(args, f"{option}: cannot write {path}: {above} is a file, not a folder")
        if not os.access(above, os.W_OK | os.X_OK):
            usage(args, f"{option}: cannot write {path}: {above} is not writable")


def input_file(args, option: str, path: str) -> Path:
    """An input file the command reads: it must exist and be a file (exit 2 naming the option otherwise)."""
    path = Path(path)
    if not path.exists():
        usage(args, f"{option}: {path} does not exist")
    if not path.is_file():
        usage(args, f"{option}: {path} is a folder; expected a file")
    return path


def add_selection_options(p) -> None:
    """The cases x backends x dtypes x devices to run (run, measure)."""
    p.add_argument("--case", default="", help="comma-separated case names (default: all)")
    p.add_argument("--backend", default="", help="comma-separated backends (default: all but the reference)")
    p.add_argument("--dtype", default="float32,float64")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="exact")


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

    everything = list(catalogue.CASES) + (list(catalogue.SIZE_SWEEP) if getattr(args, "sweep", False) else [])
    if args.case and not csv(args.case):
        usage(args, f"--case: expected at least one case name, got {args.case!r}")
    try:
        cases = [catalogue.get_case(n) for n in csv(args.case)] if args.case else everything
    except KeyError as exc:
        usage(args, f"--case: {exc.args[0]}")
    names = subjects(args)
    for option, values, check in (("--dtype", csv(args.dtype), precision.dtype_name),
                                  ("--device", csv(args.device), devices.check_device),
                                  ("--precision", [args.precision], precision.check_mode)):
        if not values:
            usage(args, f"{option}: expected at least one value, got {getattr(args, option[2:])!r}")
        for value in values:
            try:
                check(value)
            except (KeyError, ValueError) as exc:
                usage(args, f"{option}: {str(exc.args[0]).removeprefix(option[2:] + ': ')}")
    return cases, names


def root() -> Path:
    """The checkout that holds cases/ (benchmarks and agreement cases are run from there)."""
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "cases" / "bench_forward.py").exists():
        raise SystemExit(f"{checkout} has no cases/bench_forward.py: run this from a checkout of the harness")
    return checkout


def pytest(args: list[str], env: dict[str, str] | None = None) -> tuple[list[str], int]:
    """Run pytest in the checkout, in its own process; return the command and its exit status."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    print("$ " + " ".join(cmd), flush=True)
    return cmd, subprocess.run(cmd, cwd=root(), env={**os.environ, **(env or {})}).returncode
