"""`python -m harness measure`: the errors behind the tolerance table in harness/compare.py, over the catalogue
and extra seeds, per backend, device, dtype and --precision (run it after changing a backend or on a new device,
and update the evidence); a combination with no bound yet is measured without one.

Exit status: 0 measured; 1 a run errored (a bug to look at) or nothing could be measured here (every backend
chosen is not installed, unsupported or without the device); 2 a bad option, before anything runs.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from . import add_selection_options, csv, positive, select


def add_parser(sub) -> None:
    p = sub.add_parser("measure", help="measure the errors behind the tolerances", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_selection_options(p)
    p.add_argument("--seeds", type=positive("--seeds", int), default=8,
                   help="seeds per case, at least 1 (default 8); a case with fixed weights runs once")
    p.add_argument("--no-sweep", dest="sweep", action="store_false",
                   help="leave out the larger sizes of catalogue.SIZE_SWEEP")
    p.set_defaults(func=cmd_measure)


def cmd_measure(args) -> int:
    import numpy as np

    from harness.compare import Tolerance, tolerance_for
    from harness.runner import run_case

    from . import progress
    from .run import preload

    cases, names = select(args)
    worst: dict[tuple[str, str, str], tuple[float, float, str]] = {}
    runs = defaultdict(int)
    unbounded = set()
    errors = []
    cells = [(case, name, device, dtype, seed) for case in cases for name in names for device in csv(args.device)
             for dtype in csv(args.dtype) for seed in range(args.seeds if case.weights is None else 1)]
    with progress.steps("measure", len(cells)) as steps:  # fixed weights: one seed says all
        preload(names, steps)
        for case, name, device, dtype, seed in cells:
            steps.now(f"{name}: {case.name} {dtype} {device} seed {seed}")
            try:
                tol = None
                tolerance_for(dtype, args.precision, name, device)
            except KeyError:  # no bound yet: measure the errors without one
                tol = Tolerance(rtol=0.0, atol=np.inf, evidence="measurement only: no bound yet")
                unbounded.add((name, device, dtype))
            r = run_case(case, name, dtype, device, args.precision, seed=seed, tolerance=tol).result
            steps.advance()
            if r.status not in ("pass", "fail"):
                if r.status == "error":
                    errors.append(r)
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
    if not worst:
        print("nothing measured: no backend chosen could run here (`python -m harness list backends` says why)")
    return 1 if errors or not worst else 0
