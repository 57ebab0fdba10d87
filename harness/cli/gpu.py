"""`python -m harness gpu`: everything a CUDA machine is for, in a prepared environment (no installs): the
agreement cases on the GPU in exact mode (float32, float64, float16, bfloat16) and in tf32 mode (float32), then
`bench` on cpu and cuda, then the pages (reports/agreement.html from the GPU results, reports/performance.html).
Without a GPU every GPU step is skipped with its reason. `tox -e gpu` runs this after installing the CUDA builds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import pytest, subjects
from .bench import add_common_options, cmd_bench
from .report import write_pages


def add_parser(sub) -> None:
    p = sub.add_parser("gpu", help="GPU agreement (exact and tf32) and CPU + GPU benchmarks")
    add_common_options(p)
    p.add_argument("--reports", default="reports", help="where the results go")
    p.set_defaults(func=cmd_gpu)


def cmd_gpu(args) -> int:
    """GPU agreement in both modes, then CPU and GPU benchmarks; the exit status says if any failed.

    A process per backend and mode: the precision flags are per process, and each framework brings
    its own CUDA libraries (a crash in one must not take the others' results with it).
    """
    from harness import devices

    reports = Path(args.reports).resolve()
    names = subjects(args)
    status = 0
    for mode, dtypes in (("exact", "float32,float64,float16,bfloat16"), ("tf32", "float32")):
        for name in names:
            _, rc = pytest(["-m", "gpu", "-q", "-rs", "--backend", name, "--dtype", dtypes, "--precision", mode,
                            *(["--machine", args.machine] if args.machine else []),
                             f"--results={reports / f'gpu-agreement-{name}-{mode}.jsonl'}", "cases/test_agreement.py"],
                            env=devices.process_env(args.threads))
            status |= rc not in (0, 5)  # 5: nothing selected
    bench_args = argparse.Namespace(backend=",".join(names), device="cpu,cuda", precision="exact,tf32",
                                    threads=args.threads, seconds=args.seconds, k=args.k, machine=args.machine,
                                    out=str(reports / "bench.json"))
    status |= cmd_bench(bench_args)
    from harness.report.performance import REGRESSION_THRESHOLD
    from harness.results import merge

    results = merge([("", path) for path in sorted(reports.glob("gpu-agreement-*.jsonl"))])
    bench = reports / "bench.json"
    write_pages(reports, results, str(reports / "gpu-agreement-*.jsonl"), bench if bench.exists() else None, "",
                 REGRESSION_THRESHOLD)
    return int(status)
