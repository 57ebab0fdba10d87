"""`python -m harness bench`: the forward-pass benchmarks, one pytest process per backend and precision mode
(threads, TF32 and jax x64 are fixed once per process; a backend's process_env() too: KERAS_BACKEND=b for
keras-<b>, so Keras runs in-process, never through a worker), merged into one pytest-benchmark JSON (default
reports/bench.json; per-process files and logs in reports/bench/).

The merge adds to what is there: a benchmark this run measured (or found it could not run) replaces the earlier
one of the same backend, precision mode and name; the others stay, each with the date of its run. A run in
which a process failed, or that measured nothing, writes nothing: the earlier file stays as it was.

Exit status: 0 the JSON was written; 1 a benchmark process failed or nothing was measured (nothing written);
2 a bad option, before anything runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import (BENCH_JSON, add_backend_option, add_device_options, check_output_paths, check_values, csv, positive,
               pytest, require, subjects, tail, usage)
from .report import add_machine_option


def add_common_options(p) -> None:
    """Options bench and gpu share."""
    threads = len(os.sched_getaffinity(0))
    add_backend_option(p)
    p.add_argument("--threads", type=positive("--threads", int), default=threads,
                   help=f"CPU threads per runtime (default {threads}, the cores this process may use)")
    p.add_argument("--seconds", type=positive("--seconds"), default=2.0,
                   help="timed seconds to aim for per benchmark (default 2); rounds = seconds / one call, at least 3")
    p.add_argument("-k", default="", metavar="EXPRESSION",
                   help="pytest -k expression to narrow the benchmarks (e.g. 'cpu-float32-B1-')")
    add_machine_option(p)


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="forward-pass benchmarks, a process per backend and mode",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(p)
    add_device_options(p, several_modes=True)
    p.add_argument("--out", default=BENCH_JSON, help=f"the merged JSON to add to (default {BENCH_JSON})")
    p.set_defaults(func=cmd_bench)


def check(args) -> tuple[list[str], dict | None]:
    """Every option, and the JSON to merge into, before anything runs: (backends, the earlier JSON or None)."""
    from harness import devices, precision

    names = subjects(args)
    check_values(args, ("--device", devices.check_device), ("--precision", precision.check_mode))
    require(args, "pytest_benchmark", "pytest-benchmark (the benchmarks' timer)")
    check_output_paths(args, files={"--out": args.out})  # before the first benchmark, not after the last
    out = Path(args.out)
    if not out.exists():
        return names, None
    try:
        earlier = json.loads(out.read_text() or "{}")
    except (OSError, ValueError) as exc:
        usage(args, f"--out: {out} is there but is not benchmark JSON ({exc}); the new results are merged into it, "
                    "so move it away or name another --out")
    if not isinstance(earlier, dict) or not isinstance(earlier.get("benchmarks", []), list):
        usage(args, f"--out: {out} is there but is not pytest-benchmark JSON (no 'benchmarks' list); "
                    "move it away or name another --out")
    return names, earlier


def plan(names: list[str], args) -> list[tuple[str, str, list[str]]]:
    """(backend, mode, devices) per process; tf32 is a GPU matter, so a tf32 process runs on GPU devices only."""
    out = []
    for name in names:
        for mode in csv(args.precision):
            devs = [d for d in csv(args.device) if mode == "exact" or d != "cpu"]
            if devs:
                out.append((name, mode, devs))
    return out


def warn_if_busy(seconds: float = 1.0) -> None:
    """Say before the first benchmark when other processes already keep this machine's cores busy: the timings
    taken meanwhile will be flagged busy (harness.machine_load), and are not results."""
    from harness import machine_load

    load = machine_load.sample(seconds)
    if load.busy:
        print(f"warning: the machine is busy: {machine_load.describe(load)} over {seconds:g} s before the benchmarks; "
              "their timings will be flagged busy. Check `uptime` and run them on a quiet machine.", file=sys.stderr,
              flush=True)


def cmd_bench(args) -> int:
    from harness import atomic, backends, devices
    from harness.bench import merge

    from . import progress

    names, earlier = check(args)
    warn_if_busy()
    out = Path(args.out).resolve()
    parts = out.parent / "bench"
    parts.mkdir(parents=True, exist_ok=True)
    runs = []
    processes = plan(names, args)
    with progress.steps("bench", len(processes)) as steps:
        for name, mode, devs in processes:
            steps.now(f"{name} {mode} on {','.join(devs)}")
            stem = parts / f"{name}-{mode}"
            json_path, not_run, log = stem.with_suffix(".json"), stem.with_suffix(".not_run.json"), stem.with_suffix(".log")
            for stale in (json_path, not_run):
                stale.unlink(missing_ok=True)
            start = time.perf_counter()
            cmd, rc = pytest(
                ["--bench", "cases/bench_forward.py", "-q", "-rs", "--backend", name, "--device", ",".join(devs),
                 "--precision", mode, "--bench-threads", str(args.threads), "--bench-seconds", str(args.seconds),
                 f"--benchmark-json={json_path}", f"--bench-not-run={not_run}", *(["-k", args.k] if args.k else []),
                 *(["--machine", args.machine] if args.machine else [])],
                env={**devices.process_env(args.threads), **backends.get(name).process_env()}, log=log)
            runs.append({"backend": name, "precision": mode, "devices": devs, "command": " ".join(cmd),
                         "returncode": rc, "json": str(json_path), "not_run": str(not_run), "log": log})
            done = merge([runs[-1]])
            print(f"{name} {mode} on {','.join(devs)}: {len(done['benchmarks'])} benchmarks, "
                  f"{len(done['lstm_harness']['not_run'])} not run, {time.perf_counter() - start:.0f} s "
                  f"({'exit status ' + str(rc) + ', ' if rc not in (0, 5) else ''}log {log})", flush=True)
            steps.advance()
    merged = merge(runs, earlier)
    fresh = merge(runs)
    for item in sorted({(n["backend"], n["device"], n["status"], n["reason"]) for n in fresh["lstm_harness"]["not_run"]}):
        print("  not run: {}: {} {}: {}".format(*item))
    failed = [r for r in runs if r["returncode"] not in (0, 5)]  # 5: nothing collected (e.g. -k)
    for r in failed:
        print(f"FAILED (exit status {r['returncode']}): {r['command']}\n{tail(r['log'])}")
    if failed or not fresh["benchmarks"]:
        why = f"{len(failed)} benchmark process(es) failed" if failed else "no benchmark ran"
        print(f"{why}: nothing written, {out} is left as it was")
        return 1
    atomic.write_text(out, json.dumps(merged, indent=1))
    busy = [b["name"] for b in fresh["benchmarks"] if (b.get("extra_info") or {}).get("busy")]
    if busy:
        print(f"warning: {len(busy)} of {len(fresh['benchmarks'])} benchmarks ran while other processes kept their cores "
              f"busy (flagged busy in {out.name} and on the performance page): {', '.join(busy[:5])}"
              + (" ..." if len(busy) > 5 else ""), file=sys.stderr)
    kept = len(merged["benchmarks"]) - len(fresh["benchmarks"])
    print(f"\n{len(fresh['benchmarks'])} benchmarks measured" + (f", {kept} earlier ones kept" if kept else "")
          + f": {out}")
    return 0
