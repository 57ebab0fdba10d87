"""`python -m harness gpu`: everything a CUDA machine is for, in a prepared environment (no installs): the
agreement cases on the GPU in exact mode (float32, float64, float16, bfloat16) and in tf32 mode (float32), then
`bench` on cpu and cuda, then the pages (reports/agreement.html from the GPU results, reports/performance.html).
Without a GPU every GPU step is skipped with its reason. `tox -e gpu` runs this after installing the CUDA builds.

Exit status: 0 everything ran and agreed; 1 an agreement run or a benchmark failed; 2 a bad option, before
anything runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import check_output_paths, pytest, require, subjects, tail
from .bench import add_common_options, cmd_bench
from .report import write_pages


def add_parser(sub) -> None:
    p = sub.add_parser("gpu", help="GPU agreement (exact and tf32) and CPU + GPU benchmarks",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(p)
    p.add_argument("--reports", default="reports",
                   help="folder for the results, bench.json and the pages (default reports)")
    p.set_defaults(func=cmd_gpu)


def cmd_gpu(args) -> int:
    """GPU agreement in both modes, then CPU and GPU benchmarks; the exit status says if any failed.

    A process per backend and mode: the precision flags are per process, and each framework brings
    its own CUDA libraries (a crash in one must not take the others' results with it).
    """
    from harness import backends, devices

    from . import progress

    names = subjects(args)
    require(args, "pytest_benchmark", "pytest-benchmark (the benchmarks' timer)")
    check_output_paths(args, folders={"--reports": args.reports})
    reports = Path(args.reports).resolve()
    reports.mkdir(parents=True, exist_ok=True)
    bench_args = argparse.Namespace(command=args.command, backend=",".join(names), device="cpu,cuda",
                                    precision="exact,tf32", threads=args.threads, seconds=args.seconds, k=args.k,
                                    machine=args.machine, out=str(reports / "bench.json"))
    from .bench import check

    check(bench_args)  # the JSON the benchmarks go into, before the agreement runs
    status = 0
    runs = [(mode, dtypes, name) for mode, dtypes in (("exact", "float32,float64,float16,bfloat16"), ("tf32", "float32"))
            for name in names]
    with progress.steps("gpu agreement", len(runs)) as steps:
        for mode, dtypes, name in runs:
            steps.now(f"{name} {mode}")
            log = reports / f"gpu-agreement-{name}-{mode}.log"
            cmd, rc = pytest(["-m", "gpu", "-q", "-rs", "--backend", name, "--dtype", dtypes, "--precision", mode,
                              *(["--machine", args.machine] if args.machine else []),
                              f"--results={reports / f'gpu-agreement-{name}-{mode}.jsonl'}", "cases/test_agreement.py"],
                             env={**devices.process_env(args.threads), **backends.get(name).process_env()}, log=log)
            print(f"agreement on the GPU, {name} {mode}: exit status {rc} (log {log})", flush=True)
            if rc not in (0, 5):  # 5: nothing selected
                status = 1
                print(f"FAILED: {' '.join(cmd)}\n{tail(log)}")
            steps.advance()
    status |= cmd_bench(bench_args)
    from harness.report.performance import REGRESSION_THRESHOLD
    from harness.results import merge

    results = merge([("", path) for path in sorted(reports.glob("gpu-agreement-*.jsonl"))])
    bench = reports / "bench.json"
    write_pages(reports, results, str(reports / "gpu-agreement-*.jsonl"), bench if bench.exists() else None, "",
                REGRESSION_THRESHOLD)
    return int(status)
