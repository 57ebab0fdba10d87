"""`python -m harness report`: rebuild the HTML pages from saved results (JSON lines) and pytest-benchmark JSON,
without running anything; --compare marks regressions against an earlier benchmark JSON.
"""

from __future__ import annotations

from pathlib import Path

from . import BENCH_JSON, usage


def add_page_options(p) -> None:
    """The performance page's comparison options (run and report)."""
    from harness.report.performance import REGRESSION_THRESHOLD

    p.add_argument("--compare", default="", help="an earlier benchmark JSON: mark regressions against it")
    p.add_argument("--threshold", type=float, default=REGRESSION_THRESHOLD,
                   help=f"slow-down that counts as a regression, as a fraction (default {REGRESSION_THRESHOLD})")


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="rebuild the HTML reports from saved results")
    p.add_argument("--results", default="", help="results JSON lines (default reports/results.jsonl if present)")
    p.add_argument("--bench-json", default="", help=f"pytest-benchmark JSON (default {BENCH_JSON} if present)")
    p.add_argument("--out", default="reports", help="folder for the pages (default reports)")
    add_page_options(p)
    p.set_defaults(func=cmd_report)


def write_pages(out_dir, results, results_source, bench, compare, threshold) -> None:
    from harness.report import write_reports

    for path in write_reports(out_dir, results=results, results_source=results_source or "", bench=bench,
                              compare=compare, threshold=threshold):
        print(f"report written to {path}")


def cmd_report(args) -> int:
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
    try:
        records = read_jsonl(results) if results else []
    except ValueError as exc:  # not a results file: name it and the line, no traceback
        usage(args, f"--results: {exc}")
    write_pages(args.out, records, str(results or ""), bench, args.compare, args.threshold)
    return 0
