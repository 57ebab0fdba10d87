"""`python -m harness bench`: the forward-pass benchmarks, one pytest process per backend and precision mode
(threads, TF32 and jax x64 are fixed once per process), merged into one pytest-benchmark JSON (default
reports/bench.json; per-process files in reports/bench/).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import BENCH_JSON, check_output_paths, csv, pytest, subjects
from .report import add_machine_option


def add_common_options(p) -> None:
    """Options bench and gpu share."""
    threads = len(os.sched_getaffinity(0))
    p.add_argument("--backend", default="", help="comma-separated backends (default: all but the reference)")
    p.add_argument("--threads", type=int, default=threads, help=f"CPU threads per runtime (default {threads})")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per benchmark (default 2)")
    p.add_argument("-k", default="", help="pytest -k expression to narrow the benchmarks")
    add_machine_option(p)


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="forward-pass benchmarks, a process per backend and mode")
    add_common_options(p)
    p.add_argument("--device", default="cpu", help="comma-separated: cpu, cuda (default cpu)")
    p.add_argument("--precision", default="exact", help="comma-separated modes: exact, tf32 (tf32 runs on GPU devices only)")
    p.add_argument("--out", default=BENCH_JSON, help="the merged JSON")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    import json

    from harness import atomic, devices

    names = subjects(args)
    check_output_paths(args, files={"--out": args.out})  # before the first benchmark, not after the last
    out = Path(args.out).resolve()
    parts = out.parent / "bench"
    parts.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in names:
        for mode in csv(args.precision):
            devs = [d for d in csv(args.device) if mode == "exact" or d != "cpu"]  # tf32 is a GPU matter
            if not devs:
                continue
            stem = parts / f"{name}-{mode}"
            json_path, not_run = stem.with_suffix(".json"), stem.with_suffix(".not_run.json")
            for stale in (json_path, not_run):
                stale.unlink(missing_ok=True)
            cmd, rc = pytest(
                ["--bench", "cases/bench_forward.py", "-q", "-rs", "--backend", name, "--device", ",".join(devs),
                 "--precision", mode, "--bench-threads", str(args.threads), "--bench-seconds", str(args.seconds),
                 f"--benchmark-json={json_path}", f"--bench-not-run={not_run}", *(["-k", args.k] if args.k else []),
                 *(["--machine", args.machine] if args.machine else [])],
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
