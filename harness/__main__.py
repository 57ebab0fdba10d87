"""Command line: `python -m harness run | measure`.

  run      the agreement matrix over every installed framework, printed as a table (and saved as
           JSON lines for the reports); --case/--backend/--dtype/--device narrow it, and a failing
           cell prints its full message. Exit status 1 if anything failed or errored.
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
    return 1 if any(r.status in (FAIL, ERROR) for r in results) else 0


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
    sub.choices["measure"].add_argument("--seeds", type=int, default=8, help="seeds per case (default 8)")
    sub.choices["measure"].add_argument("--no-sweep", dest="sweep", action="store_false",
                                        help="leave out the larger sizes of catalogue.SIZE_SWEEP")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
