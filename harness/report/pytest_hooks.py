"""`pytest --report DIR`: the reports from a normal test run (conftest.py calls these).

The agreement page comes from the Result records the agreement tests kept; the performance page from
pytest-benchmark's JSON: the --benchmark-json file when given, else DIR/bench.json, which is asked
of pytest-benchmark here when benchmarks ran (so `python -m harness report` can rebuild both later).
"""

from __future__ import annotations

from pathlib import Path

from . import write_reports
from ..results import write_jsonl


def _benchmark_session(config):
    return getattr(config, "_benchmarksession", None)  # None without pytest-benchmark


def before_benchmark_saving(config) -> None:
    bs = _benchmark_session(config)
    if bs is not None and bs.benchmarks and not bs.json:
        bs.json = Path(config.getoption("--report")) / "bench.json"
        bs.json.parent.mkdir(parents=True, exist_ok=True)


def write_session_reports(config) -> list[Path]:
    out = Path(config.getoption("--report"))
    results = list(config._lstm_results)
    written = []
    if results and not config.getoption("--results"):
        written.append(write_jsonl(results, out / "results.jsonl"))  # so `python -m harness report` can rebuild
    bs = _benchmark_session(config)
    bench = Path(bs.json) if bs is not None and bs.benchmarks and bs.json and Path(bs.json).exists() else None
    return written + write_reports(out, results=results, results_source=config.getoption("--results") or "",
                                   bench=bench)
