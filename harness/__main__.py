"""Command line: `python -m harness run | report | measure | bench | gpu | convert`.

  run      the main job: the agreement matrix over every installed framework, printed as a table,
           saved as JSON lines and written as reports/agreement.html (plus reports/performance.html
           when reports/bench.json is there; --bench then runs `python -m harness bench`);
           --case/--backend/--dtype/--device narrow it, and a failing cell prints its full message.
           Exit status 1 if anything failed or errored; 2 (run, measure, bench, gpu, report) a bad option.
  report   rebuild the pages from saved results: results JSON lines, pytest-benchmark JSON, and
           --compare an earlier benchmark JSON to mark regressions.
  measure  the errors behind the tolerance table in harness/compare.py, over the catalogue and
           extra seeds, per backend, device, dtype and --precision (run it after changing a backend
           or on a new device, and update the evidence); a combination with no bound yet is
           measured without one.
  bench    the forward-pass benchmarks, one pytest process per backend and precision mode (threads,
           TF32 and jax x64 are fixed once per process), merged into one pytest-benchmark JSON
           (default reports/bench.json; per-process files in reports/bench/).
  gpu      everything a CUDA machine is for, in a prepared environment (no installs): the agreement
           cases on the GPU in exact mode (float32, float64, float16, bfloat16) and in tf32 mode
           (float32), then `bench` on cpu and cuda, then the pages (reports/agreement.html from the
           GPU results, reports/performance.html). Without a GPU every GPU step is skipped with
           its reason. `tox -e gpu` runs this after installing the CUDA builds.
  convert  a trained LSTM's parameter file from one framework's form to another's, never unpickling
           (harness/convert_cli.py; file forms in harness/files.py); --check runs both and compares.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ chatter (as in conftest.py)

if importlib.util.find_spec("torch") is not None:  # torch before tensorflow, as in conftest.py
    import torch  # noqa: F401


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _usage(args, message: str):
    """A bad command line: the message names the option, what is known and what was given (exit 2, as argparse)."""
    print(f"python -m harness {args.command}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _subjects(args) -> list[str]:
    """--backend's names (default: every backend but the reference), each known and not the reference."""
    from harness import backends

    if not args.backend:
        return backends.subjects()
    names = _csv(args.backend)
    if not names:
        _usage(args, f"--backend: expected at least one backend, got {args.backend!r}")
    for name in names:
        try:
            if backends.get(name).reference:
                _usage(args, f"--backend: {name} is the reference the others are compared with, not a subject; "
                             f"expected some of {', '.join(backends.subjects())}")
        except KeyError as exc:
            _usage(args, f"--backend: {exc.args[0]}")
    return names


def _select(args):
    """The cases and backends to run; every name, dtype, device and mode is checked before anything runs."""
    from harness import catalogue, devices, precision

    everything = list(catalogue.CASES) + (list(catalogue.SIZE_SWEEP) if getattr(args, "sweep", False) else [])
    try:
        cases = [catalogue.get_case(n) for n in _csv(args.case)] if args.case else everything
    except KeyError as exc:
        _usage(args, f"--case: {exc.args[0]}")
    names = _subjects(args)
    for option, values, check in (("--dtype", _csv(args.dtype), precision.dtype_name),
                                  ("--device", _csv(args.device), devices.check_device),
                                  ("--precision", [args.precision], precision.check_mode)):
        if not values:
            _usage(args, f"{option}: expected at least one value, got {getattr(args, option[2:])!r}")
        for value in values:
            try:
                check(value)
            except (KeyError, ValueError) as exc:
                _usage(args, f"{option}: {str(exc.args[0]).removeprefix(option[2:] + ': ')}")
    return cases, names


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
    cases, names = _select(args)
    results = []
    for case in cases:
        for name in names:
            for device in _csv(args.device):
                for dtype in _csv(args.dtype):
                    results.append(run_case(case, name, dtype, device, args.precision).result)
    _print_matrix(results, cases, names, _csv(args.device), _csv(args.dtype), args.precision)
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
    try:
        records = read_jsonl(results) if results else []
    except ValueError as exc:  # not a results file: name it and the line, no traceback
        _usage(args, f"--results: {exc}")
    _write_pages(args.out, records, str(results or ""), bench, args.compare, args.threshold)
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
    import numpy as np

    from harness.compare import Tolerance, tolerance_for
    from harness.runner import run_case

    cases, names = _select(args)
    worst: dict[tuple[str, str, str], tuple[float, float, str]] = {}
    runs = defaultdict(int)
    unbounded = set()
    for case in cases:
        for name in names:
            for device in _csv(args.device):
                for dtype in _csv(args.dtype):
                    try:
                        tol = None
                        tolerance_for(dtype, args.precision, name, device)
                    except KeyError:  # no bound yet: measure the errors without one
                        tol = Tolerance(rtol=0.0, atol=np.inf, evidence="measurement only: no bound yet")
                        unbounded.add((name, device, dtype))
                    for seed in range(args.seeds):
                        if case.weights is not None and seed:
                            continue  # fixed weights: one seed says all
                        r = run_case(case, name, dtype, device, args.precision, seed=seed, tolerance=tol).result
                        if r.status not in ("pass", "fail"):
                            if r.status == "error":
                                print(f"error: {case.name} {name} {device} {dtype} seed {seed}: {r.reason.splitlines()[0]}")
                            continue
                        key = (name, device, dtype)
                        runs[key] += 1
                        prev = worst.get(key, (0.0, 0.0, ""))
                        where = f"{case.name} seed {seed}" if r.worst_abs > prev[0] else prev[2]
                        worst[key] = (max(prev[0], r.worst_abs), max(prev[1], r.worst_ratio), where)
    print(f"precision {args.precision}")
    w = max([len("backend")] + [len(name) for name, _, _ in worst])  # onnx-reference, tf-block-cell
    print(f"{'backend':<{w}} {'device':<6} {'dtype':<9} {'runs':>5} {'max abs err':>12} {'max ratio':>10}  where")
    for key, (abs_err, ratio, where) in sorted(worst.items()):
        name, device, dtype = key
        shown = "no bound" if key in unbounded else f"{ratio:.3g}"
        print(f"{name:<{w}} {device:<6} {dtype:<9} {runs[key]:>5} {abs_err:>12.3g} {shown:>10}  {where}")
    return 0


def _root():
    """The checkout that holds cases/ (benchmarks and agreement cases are run from there)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "cases" / "bench_forward.py").exists():
        raise SystemExit(f"{root} has no cases/bench_forward.py: run this from a checkout of the harness")
    return root


def _pytest(args: list[str], env: dict[str, str] | None = None) -> tuple[list[str], int]:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    print("$ " + " ".join(cmd), flush=True)
    return cmd, subprocess.run(cmd, cwd=_root(), env={**os.environ, **(env or {})}).returncode


def cmd_bench(args) -> int:
    import json

    from harness import atomic, devices

    names = _subjects(args)
    out = Path(args.out).resolve()
    parts = out.parent / "bench"
    parts.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in names:
        for mode in _csv(args.precision):
            devs = [d for d in _csv(args.device) if mode == "exact" or d != "cpu"]  # tf32 is a GPU matter
            if not devs:
                continue
            stem = parts / f"{name}-{mode}"
            json_path, not_run = stem.with_suffix(".json"), stem.with_suffix(".not_run.json")
            for stale in (json_path, not_run):
                stale.unlink(missing_ok=True)
            cmd, rc = _pytest(
                ["--bench", "cases/bench_forward.py", "-q", "-rs", "--backend", name, "--device", ",".join(devs),
                 "--precision", mode, "--bench-threads", str(args.threads), "--bench-seconds", str(args.seconds),
                 f"--benchmark-json={json_path}", f"--bench-not-run={not_run}", *(["-k", args.k] if args.k else [])],
                env=devices.process_env(args.threads))
            runs.append({"backend": name, "precision": mode, "devices": devs, "command": " ".join(cmd),
                         "returncode": rc, "json": str(json_path), "not_run": str(not_run)})
    from harness.bench import merge

    merged = merge(runs)
    atomic.write_text(out, json.dumps(merged, indent=1))
    print(f"\n{len(merged['benchmarks'])} benchmarks, {len(merged['lstm_harness']['not_run'])} not run: {out}")
    for item in {(n["backend"], n["device"], n["status"], n["reason"]) for n in merged["lstm_harness"]["not_run"]}:
        print("  {}: {} {}: {}".format(*item))
    failed = [r for r in runs if r["returncode"] not in (0, 5)]  # 5: nothing collected (e.g. -k)
    for r in failed:
        print(f"FAILED ({r['returncode']}): {r['command']}")
    return 1 if failed else 0


def cmd_gpu(args) -> int:
    """GPU agreement in both modes, then CPU and GPU benchmarks; the exit status says if any failed.

    A process per backend and mode: the precision flags are per process, and each framework brings
    its own CUDA libraries (a crash in one must not take the others' results with it).
    """
    from harness import devices

    reports = Path(args.reports).resolve()
    names = _subjects(args)
    status = 0
    for mode, dtypes in (("exact", "float32,float64,float16,bfloat16"), ("tf32", "float32")):
        for name in names:
            _, rc = _pytest(["-m", "gpu", "-q", "-rs", "--backend", name, "--dtype", dtypes, "--precision", mode,
                             f"--results={reports / f'gpu-agreement-{name}-{mode}.jsonl'}", "cases/test_agreement.py"],
                            env=devices.process_env(args.threads))
            status |= rc not in (0, 5)  # 5: nothing selected
    bench_args = argparse.Namespace(backend=",".join(names), device="cpu,cuda", precision="exact,tf32",
                                    threads=args.threads, seconds=args.seconds, k=args.k,
                                    out=str(reports / "bench.json"))
    status |= cmd_bench(bench_args)
    from harness.report.performance import REGRESSION_THRESHOLD
    from harness.results import read_jsonl

    results = [r for path in sorted(reports.glob("gpu-agreement-*.jsonl")) for r in read_jsonl(path)]
    bench = reports / "bench.json"
    _write_pages(reports, results, str(reports / "gpu-agreement-*.jsonl"), bench if bench.exists() else None, "",
                 REGRESSION_THRESHOLD)
    return int(status)


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
    threads = len(os.sched_getaffinity(0))
    for name, func, helptext in (("bench", cmd_bench, "forward-pass benchmarks, a process per backend and mode"),
                                 ("gpu", cmd_gpu, "GPU agreement (exact and tf32) and CPU + GPU benchmarks")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--backend", default="", help="comma-separated backends (default: all but the reference)")
        p.add_argument("--threads", type=int, default=threads, help=f"CPU threads per runtime (default {threads})")
        p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per benchmark (default 2)")
        p.add_argument("-k", default="", help="pytest -k expression to narrow the benchmarks")
        p.set_defaults(func=func)
    sub.choices["bench"].add_argument("--device", default="cpu", help="comma-separated: cpu, cuda (default cpu)")
    sub.choices["bench"].add_argument("--precision", default="exact",
                                      help="comma-separated modes: exact, tf32 (tf32 runs on GPU devices only)")
    sub.choices["bench"].add_argument("--out", default="reports/bench.json", help="the merged JSON")
    sub.choices["gpu"].add_argument("--reports", default="reports", help="where the results go")
    from harness.convert_cli import add_parser as add_convert

    add_convert(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
