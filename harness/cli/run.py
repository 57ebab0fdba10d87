"""`python -m harness run`: the agreement matrix over every installed framework, printed as a table that fits the
terminal, saved as JSON lines and written as reports/agreement.html (plus reports/performance.html from the bench
JSON; --bench runs `python -m harness bench` after the matrix). --case/--backend/--dtype/--device narrow it; a
failing cell prints its full message and a command that reproduces it.

A bench JSON found by default that is empty or unreadable is skipped, saying so; the one used is named with
the date its benchmarks were measured.

Exit status: 0 no cell failed or errored; 1 one did (or --bench failed, or --fail-on-regression counted a
regression); 2 a bad option, before anything runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import BENCH_JSON, add_selection_options, check_output_paths, csv, positive, select, usage
from .report import (add_machine_option, add_page_options, bench_for_pages, check_bench_json, check_compare,
                     finish_comparison, load_bench, write_pages)


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run the agreement matrix", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_selection_options(p)
    p.add_argument("--results", default="reports/results.jsonl",
                   help="where to save the results as JSON lines (default reports/results.jsonl; '' to skip)")
    add_machine_option(p)
    p.add_argument("--reports", default="reports",
                   help="folder for agreement.html and performance.html (default reports; '' to skip)")
    p.add_argument("--bench", action="store_true",
                   help="then run the benchmarks (python -m harness bench) on --backend, --device and --precision")
    p.add_argument("--bench-json", default=None,
                   help=f"benchmark JSON (default {BENCH_JSON}): --bench merges into it; the performance page is "
                        "made from it (the default is skipped, saying why, when it holds no benchmarks; one named "
                        "here must be pytest-benchmark JSON)")
    p.add_argument("--bench-seconds", type=positive("--bench-seconds"), default=2.0,
                   help="with --bench: timed seconds per benchmark (bench --seconds; default 2)")
    add_page_options(p)
    p.set_defaults(func=cmd_run)


def _bench_args(args) -> argparse.Namespace:
    import os

    return argparse.Namespace(command=args.command, backend=args.backend, device=args.device,
                              precision=args.precision, threads=len(os.sched_getaffinity(0)),
                              seconds=args.bench_seconds, k="", machine=args.machine, out=args.bench_json)


def check(args):
    """Every option before anything runs: the selection, the output paths, the benchmark JSON and the comparison."""
    cases, names = select(args)
    explicit, args.bench_json = args.bench_json is not None, BENCH_JSON if args.bench_json is None else args.bench_json
    check_output_paths(args, files={"--results": args.results, "--bench-json": args.bench_json if args.bench else ""},
                       folders={"--reports": args.reports})
    if explicit and not args.bench and args.bench_json and Path(args.bench_json).exists():  # read for the page
        check_bench_json(args, "--bench-json", args.bench_json)
    if args.bench:
        if not args.bench_json:
            usage(args, "--bench: needs --bench-json, the JSON the benchmarks go into")
        from .bench import check as check_bench

        check_bench(_bench_args(args))
    if args.compare:
        have = args.bench or (bool(args.bench_json) and load_bench(args.bench_json)[0] is not None)
        check_compare(args, have)
    elif args.fail_on_regression:
        check_compare(args, False)
    return cases, names


def preload(names: list[str], steps) -> None:
    """Import each backend's framework now, with the start-up chatter filtered out (harness.quiet)."""
    from harness import backends, quiet

    with quiet.filtered_stderr():
        elsewhere = [name for name in names if backends.get(name).in_worker()]  # asks Keras its backend: imports it
    for name in elsewhere:  # a worker (keras-<b>) imports alongside; started outside the block, it keeps our stderr
        backends.get(name).start_in_background()
    with quiet.filtered_stderr():
        for name in names:
            steps.now(f"importing {backends.get(name).framework}")
            backends.get(name).installed()


def cmd_run(args) -> int:
    from harness import quiet
    from harness.results import ERROR, FAIL, write_jsonl
    from harness.runner import run_case

    from . import matrix, progress

    cases, names = check(args)
    devices, dtypes = csv(args.device), csv(args.dtype)
    cells = [(case, name, device, dtype) for case in cases for name in names for device in devices for dtype in dtypes]
    results = []
    with progress.steps("run", len(cells)) as steps:
        preload(names, steps)  # every Keras worker starts there, outside the filter, with our stderr
        with quiet.filtered_stderr():  # what a framework says at its first call (a Keras mask's DT_BOOL notice)
            for case, name, device, dtype in cells:
                steps.now(f"{name}: {case.name} {dtype} {device}")
                results.append(run_case(case, name, dtype, device, args.precision).result)
                steps.advance()
    if args.machine:
        for r in results:
            r.machine = args.machine
    columns = matrix.width()
    lines = matrix.matrix_lines(results, cases, names, devices, dtypes, args.precision, columns)
    print("\n".join(lines + [""] + matrix.summary_lines(results, columns)))
    if args.results:
        print(f"\nresults written to {write_jsonl(results, args.results)}")
    status = 1 if any(r.status in (FAIL, ERROR) for r in results) else 0
    if args.bench:
        from .bench import cmd_bench

        print("\nbenchmarks (python -m harness bench):", flush=True)
        status = max(status, cmd_bench(_bench_args(args)))
    bench = bench_for_pages(args, [], default=args.bench_json) if args.reports or args.compare else None
    if args.reports:
        write_pages(args.reports, results, args.results, bench, args.compare if bench else "", args.threshold)
    return max(status, finish_comparison(args, bench))
