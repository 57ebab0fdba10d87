"""`python -m harness run`: the agreement matrix over every installed framework, printed as a table, saved as
JSON lines and written as reports/agreement.html (plus reports/performance.html when the bench JSON is
there; --bench runs `python -m harness bench` after the matrix). --case/--backend/--dtype/--device narrow it;
a failing cell prints its full message. Exit status 0, 1 if a cell failed or errored, 2 a bad option.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

from . import BENCH_JSON, add_selection_options, check_output_paths, csv, select
from .report import add_machine_option, add_page_options, check_bench_json, write_pages


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run the agreement matrix")
    add_selection_options(p)
    p.add_argument("--results", default="reports/results.jsonl",
                   help="where to save the results as JSON lines ('' to skip)")
    add_machine_option(p)
    p.add_argument("--reports", default="reports", help="folder for agreement.html and performance.html ('' to skip)")
    p.add_argument("--bench", action="store_true", help="run the benchmarks after the matrix (python -m harness bench)")
    p.add_argument("--bench-json", default=BENCH_JSON,
                   help="benchmark JSON: written by --bench; the performance page is made from it when present")
    add_page_options(p)
    p.set_defaults(func=cmd_run)


_CELL = {"pass": "ok", "fail": "FAIL", "unsupported": "-", "not installed": "n/i", "skipped": "skip", "error": "ERROR"}


def _print_matrix(results, cases, names, devices, dtypes, mode) -> None:
    """One table per (device, dtype): cases down, backends across, so it fits a terminal."""
    cell = {(r.case, r.backend, r.device, r.dtype): r for r in results}
    width = max(len(c.name) for c in cases)
    widths = [max(len(n), 8) for n in names]
    for device in devices:
        for dtype in dtypes:
            print(f"\n{dtype} on {device}, precision {mode}")
            print(f"{'case':<{width}}  " + "  ".join(f"{n:<{w}}" for n, w in zip(names, widths)))
            for case in cases:
                texts = []
                for n in names:
                    r = cell[(case.name, n, device, dtype)]
                    text = _CELL[r.status]
                    if r.status in ("pass", "fail"):
                        text += f" {r.worst_ratio:.2f}" if r.worst_ratio < 10 else f" {r.worst_ratio:.3g}"
                    texts.append(text)
                print(f"{case.name:<{width}}  " + "  ".join(f"{t:<{w}}" for t, w in zip(texts, widths)))
    print("\nok N / FAIL N: the worst error as a fraction of the tolerance (<= 1 passes); "
          "- unsupported, n/i not installed, skip: no such device here (reasons below)")


def cmd_run(args) -> int:
    from harness.results import ERROR, FAIL, STATUSES, write_jsonl
    from harness.runner import run_case

    if args.bench and (not args.bench_json or importlib.util.find_spec("harness.bench") is None):
        raise SystemExit("--bench needs --bench-json and the benchmark suite (harness.bench, python -m harness bench)")
    cases, names = select(args)
    check_output_paths(args, files={"--results": args.results, "--bench-json": args.bench_json if args.bench else ""},
                       folders={"--reports": args.reports})
    check_bench_json(args, "--compare", args.compare)
    if not args.bench and args.bench_json and Path(args.bench_json).exists():  # read for the performance page
        check_bench_json(args, "--bench-json", args.bench_json)
    results = []
    for case in cases:
        for name in names:
            for device in csv(args.device):
                for dtype in csv(args.dtype):
                    results.append(run_case(case, name, dtype, device, args.precision).result)
    if args.machine:
        for r in results:
            r.machine = args.machine
    _print_matrix(results, cases, names, csv(args.device), csv(args.dtype), args.precision)
    counts = defaultdict(int)
    for r in results:
        counts[r.status] += 1
    print(", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]))
    reasons = sorted({(r.backend, r.status, r.reason) for r in results if r.status not in ("pass", "fail", "error")})
    for backend, status, reason in reasons:
        print(f"  {backend}: {status}: {reason}")
    for r in results:
        if r.status in (FAIL, ERROR):
            print(f"\n{r.status.upper()} {r.case} {r.backend} {r.device} {r.dtype}:\n{r.reason}")
    if args.results:
        print(f"\nresults written to {write_jsonl(results, args.results)}")
    status = 1 if any(r.status in (FAIL, ERROR) for r in results) else 0
    if args.bench:
        status = max(status, _run_benchmarks(args))
    if args.reports:
        bench = Path(args.bench_json) if args.bench_json and Path(args.bench_json).exists() else None
        write_pages(args.reports, results, args.results, bench, args.compare, args.threshold)
    return status


def _run_benchmarks(args) -> int:
    """`python -m harness bench` (its own processes: benchmarks fix per-process settings)."""
    import shlex
    import subprocess

    cmd = [sys.executable, "-m", "harness", "bench", "--out", args.bench_json, "--device", args.device,
           "--precision", args.precision] + (["--backend", args.backend] if args.backend else [])
    print("\nbenchmarks:", shlex.join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc:
        print(f"benchmark run exited with status {rc}")
    return 1 if rc else 0
