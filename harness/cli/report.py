"""`python -m harness report`: rebuild the HTML pages from saved results (JSON lines) and pytest-benchmark JSON,
without running anything; --compare marks regressions against an earlier benchmark JSON.

--results and --bench-json repeat, one file each, as LABEL=PATH (the label names the machine of every record
in the file) or a bare PATH (each record keeps the machine it names), so results from several machines make one
report: `report --results cpu=a.jsonl --results gpu=b.jsonl`. Two results for one cell of one machine are refused,
naming both files and lines (exit 2).
"""

from __future__ import annotations

import re
from pathlib import Path

from . import BENCH_JSON, check_output_paths, input_file, usage

RESULTS_JSONL = "reports/results.jsonl"  # where `python -m harness run` leaves its results
_LABEL = re.compile(r"[A-Za-z0-9_.+-]+")  # a machine label: no "/", so "dir/a=b.jsonl" stays a path


def add_machine_option(p) -> None:
    """The machine the results name (run, bench, gpu; pytest has the same option): where several machines'
    results meet in one report (`report --results`), it tells their columns apart."""
    p.add_argument("--machine", default="", metavar="LABEL",
                   help="the machine the results name (default: this host's name)")


def add_page_options(p) -> None:
    """The performance page's comparison options (run and report)."""
    from harness.report.performance import REGRESSION_THRESHOLD

    p.add_argument("--compare", default="", help="an earlier benchmark JSON: mark regressions against it")
    p.add_argument("--threshold", type=float, default=REGRESSION_THRESHOLD,
                   help=f"slow-down that counts as a regression, as a fraction (default {REGRESSION_THRESHOLD})")


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="rebuild the HTML reports from saved results")
    p.add_argument("--results", action="append", default=[], metavar="[LABEL=]PATH",
                   help=f"results JSON lines, repeatable; LABEL names the machine they ran on "
                        f"(default {RESULTS_JSONL} if present)")
    p.add_argument("--bench-json", action="append", default=[], metavar="[LABEL=]PATH",
                   help=f"pytest-benchmark JSON, repeatable; LABEL names the machine (default {BENCH_JSON} if present)")
    p.add_argument("--out", default="reports", help="folder for the pages (default reports)")
    add_page_options(p)
    p.set_defaults(func=cmd_report)


def write_pages(out_dir, results, results_source, bench, compare, threshold) -> None:
    from harness.report import write_reports

    for path in write_reports(out_dir, results=results, results_source=results_source or "", bench=bench,
                              compare=compare, threshold=threshold):
        print(f"report written to {path}")


def sources(args, option: str, given: list[str], default: str) -> list[tuple[str, Path]]:
    """(label, path) per [LABEL=]PATH given (each must exist), else the default file where it exists."""
    out = []
    for text in given:
        label, sep, path = text.partition("=")
        if not sep or not _LABEL.fullmatch(label):
            label, path = "", text
        if not path:
            usage(args, f"{option}: expected LABEL=PATH or PATH, got {text!r}")
        out.append((label, input_file(args, option, path)))
    if not given and Path(default).is_file():
        out.append(("", Path(default)))
    return out


def describe(pairs: list[tuple[str, Path]]) -> str:
    return ", ".join(f"{label}={path}" if label else str(path) for label, path in pairs)


def check_bench_json(args, option: str, path) -> None:
    """Exit 2 naming `option` when `path` is not pytest-benchmark JSON (read here only to say so before any
    page is written; the pages read it again)."""
    from harness.report import load_run

    if not path:
        return
    try:
        load_run(input_file(args, option, path))
    except (ValueError, OSError) as exc:
        usage(args, f"{option}: {exc}")


def cmd_report(args) -> int:
    from harness.report import load_runs
    from harness.results import merge

    results = sources(args, "--results", args.results, RESULTS_JSONL)
    bench = sources(args, "--bench-json", args.bench_json, BENCH_JSON)
    check_bench_json(args, "--compare", args.compare)
    check_output_paths(args, folders={"--out": args.out})
    if not results and not bench:
        raise SystemExit(f"nothing to report: no {RESULTS_JSONL} (python -m harness run) and no "
                         f"{BENCH_JSON} (python -m harness bench); name them with --results / --bench-json")
    try:
        records = merge(results)
    except (ValueError, OSError) as exc:  # not a results file, or one cell twice: name the files and lines
        usage(args, f"--results: {exc}")
    try:
        run = load_runs(bench) if bench else None
    except (ValueError, OSError) as exc:  # not (pytest-benchmark) JSON: load_run names the file
        usage(args, f"--bench-json: {exc}")
    write_pages(args.out, records, describe(results), run, args.compare, args.threshold)
    return 0
