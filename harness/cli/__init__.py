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
