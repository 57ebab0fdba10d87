"""Command line: `python -m harness run | report | measure`.

  run      the main job: the agreement matrix over every installed framework, printed as a table,
           saved as JSON lines and written as reports/agreement.html (plus reports/performance.html
           when reports/bench.json is there; --bench runs `python -m harness bench` first);
           --case/--backend/--dtype/--device narrow it, and a failing cell prints its full message.
           Exit status 1 if anything failed or errored.
  report   rebuild the pages from saved results: results JSON lines, pytest-benchmark JSON, and
           --compare an earlier benchmark JSON to mark regressions.
  measure  the float32/float64 errors behind the tolerance table in harness/compare.py, over the
           catalogue and extra seeds (run it after changing a backend, and update the evidence).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections import defaultdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ chatter (as in conftest.py)

if importlib.util.find_spec("torch") is not None:  # torch before tensorflow, as in conftest.py
    import torch  # noqa: F401


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _select(args):
    from harness import backends, catalogue

    everything = list(catalogue.CASES) + (list(catalogue.SIZE_SWEEP) if getattr(args, "sweep", False) else [])
    cases = [catalogue.get_case(n) for n in _csv(args.case)] if args.case else everything
    names = _csv(args.backend) if args.backend else backends.subjects()
    for n in names:
        backends.get(n)
    return cases, names


def cmd_run(args) -> int:
    from harness.results import ERROR, FAIL, STATUSES, write_jsonl
    from harness.runner import run_case

    if args.bench and (not args.bench_json or importlib.util.find_spec("harness.bench") is None):
        raise SystemExit("--bench needs --bench-json and the benchmark suite (harness.bench, python -m harness bench)")
    cases, names = _select(args)
    results = []
    for case in cases:
        for name in names:
            for device in _csv(args.device):
                for dtype in _csv(args.dtype):
                    results.append(run_case(case, name, dtype, device, args.precision).result)
    cols = [(n, dev, dt) for n in names for dev in _csv(args.device) for dt in _csv(args.dtype)]
    heads = [f"{n} {dt}" + ("" if dev == "cpu" else f" {dev}") for n, dev, dt in cols]
    cell = {}
    for r in results:
        if r.status == "pass":
            text = f"pass {r.worst_ratio:.2f}"
        elif r.status == "fail":
            text = f"FAIL {r.worst_ratio:.3g}"
        else:
            text = r.status
        cell[(r.case, r.backend, r.device, r.dtype)] = text
    width = max(len(c.name) for c in cases)
    widths = [max(len(h), 13) for h in heads]
    print(f"{'case':<{width}}  " + "  ".join(f"{h:<{w}}" for h, w in zip(heads, widths)))
    for case in cases:
        print(f"{case.name:<{width}}  " + "  ".join(
            f"{cell[(case.name, *col)]:<{w}}" for col, w in zip(cols, widths)))
    print("\n(pass N: the worst error as a fraction of the allowed tolerance)")
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
        from pathlib import Path

        bench = Path(args.bench_json) if args.bench_json and Path(args.bench_json).exists() else None
        _write_pages(args.reports, results, args.results, bench, args.compare, args.threshold)
    return status


# The HTML reports (harness.report) ---------------------------------------------------------------
BENCH_JSON = "reports/bench.json"  # where `python -m harness bench` leaves its merged pytest-benchmark JSON


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


def _write_pages(out_dir, results, results_source, bench, compare, threshold) -> None:
    from harness.report import write_reports

    for path in write_reports(out_dir, results=results, results_source=results_source or "", bench=bench,
                              compare=compare, threshold=threshold):
        print(f"report written to {path}")


def cmd_report(args) -> int:
    from pathlib import Path

    from harness.results import read_jsonl

    def given(path, default, what):
        """The explicit path (which must exist), else the default where it exists."""
        if path:
            if not Path(path).exists():
                raise SystemExit(f"--{what}: {path} does not exist")
            return Path(path)
        return Path(default) if Path(default).exists() else None

    results = given(args.results, "reports/results.jsonl", "results")
    bench = given(args.bench_json, BENCH_JSON, "bench-json")
    if args.compare and not Path(args.compare).exists():
        raise SystemExit(f"--compare: {args.compare} does not exist")
    if results is None and bench is None:
        raise SystemExit(f"nothing to report: no reports/results.jsonl (python -m harness run) and no "
                         f"{BENCH_JSON} (python -m harness bench); name them with --results / --bench-json")
    _write_pages(args.out, read_jsonl(results) if results else [], str(results or ""), bench, args.compare,
                 args.threshold)
    return 0


def _add_report_commands(sub) -> None:
    """`run`'s report options, and the `report` command."""
    from harness.report.performance import REGRESSION_THRESHOLD

    run = sub.choices["run"]
    run.add_argument("--reports", default="reports", help="folder for agreement.html and performance.html ('' to skip)")
    run.add_argument("--bench", action="store_true", help="run the benchmarks first (python -m harness bench)")
    run.add_argument("--bench-json", default=BENCH_JSON,
                     help="benchmark JSON: written by --bench; the performance page is made from it when present")
    report = sub.add_parser("report", help="rebuild the HTML reports from saved results")
    report.add_argument("--results", default="", help="results JSON lines (default reports/results.jsonl if present)")
    report.add_argument("--bench-json", default="", help=f"pytest-benchmark JSON (default {BENCH_JSON} if present)")
    report.add_argument("--out", default="reports", help="folder for the pages (default reports)")
    report.set_defaults(func=cmd_report)
    for p in (run, report):
        p.add_argument("--compare", default="", help="an earlier benchmark JSON: mark regressions against it")
        p.add_argument("--threshold", type=float, default=REGRESSION_THRESHOLD,
                       help=f"slow-down that counts as a regression, as a fraction (default {REGRESSION_THRESHOLD})")


def cmd_measure(args) -> int:
    from harness.runner import run_case

    cases, names = _select(args)
    worst: dict[tuple[str, str], tuple[float, float, str]] = {}
    runs = defaultdict(int)
    for case in cases:
        for name in names:
            for dtype in _csv(args.dtype):
                for seed in range(args.seeds):
                    if case.weights is not None and seed:
                        continue  # fixed weights: one seed says all
                    r = run_case(case, name, dtype, "cpu", args.precision, seed=seed).result
                    if r.status not in ("pass", "fail"):
                        continue
                    runs[(name, dtype)] += 1
                    prev = worst.get((name, dtype), (0.0, 0.0, ""))
                    if r.worst_abs > prev[0]:
                        worst[(name, dtype)] = (r.worst_abs, max(prev[1], r.worst_ratio), f"{case.name} seed {seed}")
                    else:
                        worst[(name, dtype)] = (prev[0], max(prev[1], r.worst_ratio), prev[2])
    print(f"{'backend':<10} {'dtype':<8} {'runs':>5} {'max abs err':>12} {'max ratio':>10}  where")
    for (name, dtype), (abs_err, ratio, where) in sorted(worst.items()):
        print(f"{name:<10} {dtype:<8} {runs[(name, dtype)]:>5} {abs_err:>12.3g} {ratio:>10.3g}  {where}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, helptext in (("run", cmd_run, "run the agreement matrix"),
                                 ("measure", cmd_measure, "measure the errors behind the tolerances")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--case", default="", help="comma-separated case names (default: all)")
        p.add_argument("--backend", default="", help="comma-separated backends (default: all but the reference)")
        p.add_argument("--dtype", default="float32,float64")
        p.add_argument("--device", default="cpu")
        p.add_argument("--precision", default="exact")
        p.set_defaults(func=func)
    sub.choices["run"].add_argument("--results", default="reports/results.jsonl",
                                    help="where to save the results as JSON lines ('' to skip)")
    _add_report_commands(sub)
    sub.choices["measure"].add_argument("--seeds", type=int, default=8, help="seeds per case (default 8)")
    sub.choices["measure"].add_argument("--no-sweep", dest="sweep", action="store_false",
                                        help="leave out the larger sizes of catalogue.SIZE_SWEEP")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
