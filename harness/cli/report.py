"""`python -m harness report`: rebuild the HTML pages from saved results (JSON lines) and pytest-benchmark JSON,
without running anything; --compare an earlier benchmark JSON to mark regressions, printed here too.

--results and --bench-json repeat, one file each, as LABEL=PATH (the label names the machine of every record
in the file) or a bare PATH (each record keeps the machine it names), so results from several machines make one
report: `report --results cpu=a.jsonl --results gpu=b.jsonl`. Two results for one cell of one machine are refused,
naming both files and lines (exit 2).

A regression is a benchmark whose median is more than --threshold slower than the earlier one's AND whose
interquartile range lies wholly above the earlier one (past the threshold with overlapping ranges it is noisy:
shown, not counted). This is pytest-benchmark's `--benchmark-compare-fail median:10%` (a slow-down over the
percentage fails; 10% is the default --threshold 0.10) with the ranges as a guard against one noisy run;
--fail-on-regression makes a counted regression the exit status, as --benchmark-compare-fail fails the session.

Side files found by default (reports/results.jsonl, reports/bench.json) that are empty or unreadable are
skipped, with what and why; a file named on the command line must be right.

Exit status: 0 the pages were written; 1 --fail-on-regression and a regression was counted; 2 a bad option or
input file, before anything is written.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from . import BENCH_JSON, check_output_paths, input_file, positive, usage

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

    p.add_argument("--compare", default="", metavar="EARLIER_JSON",
                   help="an earlier benchmark JSON: mark and print regressions against it")
    p.add_argument("--threshold", type=positive("--threshold", zero=True), default=REGRESSION_THRESHOLD,
                   help=f"slow-down of the median that counts as a regression, as a fraction (default "
                        f"{REGRESSION_THRESHOLD}: pytest-benchmark's median:{REGRESSION_THRESHOLD:.0%}%)")  # %% for argparse
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when --compare counts a regression (noisy ones, with overlapping IQRs, do not count)")


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="rebuild the HTML reports from saved results",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", action="append", default=[], metavar="[LABEL=]PATH",
                   help=f"results JSON lines, repeatable; LABEL names the machine they ran on "
                        f"(default {RESULTS_JSONL} if usable)")
    p.add_argument("--bench-json", action="append", default=[], metavar="[LABEL=]PATH",
                   help=f"pytest-benchmark JSON, repeatable; LABEL names the machine (default {BENCH_JSON} if usable)")
    p.add_argument("--out", default="reports", help="folder for the pages (default reports)")
    add_page_options(p)
    p.set_defaults(func=cmd_report)


def sources(args, option: str, given: list[str]) -> list[tuple[str, Path]]:
    """(label, path) per [LABEL=]PATH given; each must exist."""
    out = []
    for text in given:
        label, sep, path = text.partition("=")
        if not sep or not _LABEL.fullmatch(label):
            label, path = "", text
        if not path:
            usage(args, f"{option}: expected LABEL=PATH or PATH, got {text!r}")
        out.append((label, input_file(args, option, path)))
    return out


def describe(pairs: list[tuple[str, Path]]) -> str:
    return ", ".join(f"{label}={path}" if label else str(path) for label, path in pairs)


# Side files ------------------------------------------------------------------------------------
def load_bench(path: str | Path):
    """(the benchmark run, None) or (None, why it cannot make a page)."""
    from harness.report.performance import load_run

    try:
        run = load_run(path)
    except FileNotFoundError:
        return None, "it does not exist"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"it is not benchmark JSON ({type(exc).__name__}: {exc})"
    if not run.benchmarks:
        return None, "it holds no benchmarks"
    return run, None


def bench_dates(path: str | Path) -> str:
    """When the benchmarks in a bench JSON were measured: one date, or the span of the runs merged into it."""
    import json

    from harness.bench import run_dates

    oldest, newest = run_dates(json.loads(Path(path).read_text()))

    def day(when: str) -> str:
        return when[:16].replace("T", " ")
    if not oldest:
        return "date unknown"
    return f"measured {day(oldest)} UTC" if day(oldest) == day(newest) else \
        f"measured {day(oldest)} to {day(newest)} UTC"


def bench_for_pages(args, given: list[str], default: str = BENCH_JSON):
    """The benchmark run the performance page is made from (a Run, or None), said with its date.

    Files named on the command line must be right (exit 2); the default (reports/bench.json; run's --bench-json),
    when it cannot make a page, is skipped saying why: it never stops the command."""
    from harness.report import load_runs

    if given:
        pairs = sources(args, "--bench-json", given)
        try:
            run = load_runs(pairs)
        except (ValueError, OSError) as exc:  # not (pytest-benchmark) JSON: load_run names the file
            usage(args, f"--bench-json: {exc}")
        if not run.benchmarks:
            usage(args, f"--bench-json: {describe(pairs)}: no benchmarks in it")
    else:
        if not default:
            return None
        run, why = load_bench(default)
        if run is None:
            if Path(default).exists():
                print(f"skipped {default} (the performance page): {why}; `python -m harness bench` writes it anew")
            return None
        pairs = [("", Path(default))]
    for _, path in pairs:
        print(f"benchmarks from {path}: {sum(s.benchmarks for s in run.sources if s.path == str(path))}, "
              f"{bench_dates(path)}")
    return run


def results_for_pages(args, given: list[str]):
    """(records, source) from results JSON lines; the default file, empty or unreadable, is skipped, named."""
    from harness.results import merge

    pairs = sources(args, "--results", given) if given else \
        ([("", Path(RESULTS_JSONL))] if Path(RESULTS_JSONL).is_file() else [])
    try:
        records = merge(pairs)
    except (ValueError, OSError) as exc:  # not a results file, or one cell twice: name the files and lines
        if given:
            usage(args, f"--results: {exc}")
        print(f"skipped {RESULTS_JSONL} (the agreement page): it is not results JSON lines ({exc})")
        return [], ""
    if pairs and not records and not given:
        print(f"skipped {RESULTS_JSONL} (the agreement page): it holds no results")
    return records, describe(pairs)


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


def check_compare(args, have_bench: bool) -> None:
    """--compare and --fail-on-regression, before any work (pytest-benchmark: compare-fail needs a compare)."""
    if args.fail_on_regression and not args.compare:
        usage(args, "--fail-on-regression: needs --compare EARLIER_JSON, the run to compare with")
    if not args.compare:
        return
    check_bench_json(args, "--compare", args.compare)
    if not have_bench:
        usage(args, f"--compare: there is no benchmark JSON to compare with {args.compare} "
                    f"(--bench-json, or {BENCH_JSON} from `python -m harness bench`)")


# The pages, and the comparison on the terminal ---------------------------------------------------
def write_pages(out_dir, results, results_source, bench, compare, threshold) -> None:
    from harness.report import write_reports

    for path in write_reports(out_dir, results=results, results_source=results_source or "", bench=bench,
                              compare=compare, threshold=threshold):
        print(f"report written to {path}")


def print_comparison(now, compare, threshold: float) -> int:
    """Print every counted regression (and the noisy ones, not counted); return how many were counted."""
    from harness.report.performance import compare_runs, load_run

    earlier = load_run(compare)
    changes = compare_runs(now, earlier, threshold)
    by_verdict: dict[str, list] = {}
    for b in now.benchmarks:
        if b.key in changes:
            by_verdict.setdefault(changes[b.key].verdict, []).append((b, changes[b.key]))
    count = {v: len(by_verdict.get(v, [])) for v in ("regression", "noisy", "improvement")}
    print(f"compared with {compare} ({bench_dates(compare)}): {len(changes)} of {len(now.benchmarks)} benchmarks "
          f"matched; {count['regression']} regression(s) over {threshold:.0%}, {count['noisy']} noisy (not counted), "
          f"{count['improvement']} improvement(s)")
    for verdict, label in (("regression", "REGRESSION"), ("noisy", "noisy, not counted")):
        for b, change in by_verdict.get(verdict, []):
            old = change.earlier
            print(f"  {label}: {b.series} {b.size_label}: median {_ms(old.median)} -> {_ms(b.median)} "
                  f"({change.ratio - 1:+.0%}); IQR {_ms(old.q1)}-{_ms(old.q3)} -> {_ms(b.q1)}-{_ms(b.q3)}")
    return count["regression"]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def cmd_report(args) -> int:
    records, source = results_for_pages(args, args.results)
    bench = bench_for_pages(args, args.bench_json)
    check_compare(args, bench is not None)
    check_output_paths(args, folders={"--out": args.out})
    if not records and bench is None:
        usage(args, f"nothing to report: no results ({RESULTS_JSONL}, from `python -m harness run`) and no "
                    f"benchmarks ({BENCH_JSON}, from `python -m harness bench`); name them with --results / --bench-json")
    write_pages(args.out, records, source, bench, args.compare, args.threshold)
    return finish_comparison(args, bench)


def finish_comparison(args, bench) -> int:
    """After the pages: the comparison on the terminal; 1 when --fail-on-regression and one was counted."""
    if not args.compare or bench is None:
        return 0
    regressions = print_comparison(bench, args.compare, args.threshold)
    return 1 if regressions and args.fail_on_regression else 0
