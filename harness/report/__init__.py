"""HTML reports a reviewer can open: agreement.html from result records, performance.html from
pytest-benchmark JSON. Each page is one self-contained file (inline CSS and SVG, no script, font or
image from elsewhere), made from jinja2 templates with autoescaping; charts are matplotlib SVG.

    write_reports("reports", results=read_jsonl("reports/results.jsonl"), bench="reports/bench.json")
    write_reports("reports", results=merge([("cpu", "a.jsonl"), ("gpu", "b.jsonl")]),
                  bench=[("cpu", "cpu-bench.json"), ("gpu", "gpu-bench.json")])      # several machines
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from ..results import Result
from .agreement import build_agreement
from .performance import REGRESSION_THRESHOLD, Run, build_performance, load_run, load_runs
from .page import write

AGREEMENT_PAGE, PERFORMANCE_PAGE = "agreement.html", "performance.html"


def write_reports(out_dir: str | Path, *, results: Iterable[Result] | None = None, results_source: str = "",
                  bench: str | Path | Sequence[tuple[str, str | Path]] | Run | None = None,
                  compare: str | Path | None = None, threshold: float = REGRESSION_THRESHOLD) -> list[Path]:
    """Write the pages there is input for; return their paths. bench: one benchmark JSON, (machine label, path)
    pairs for several ("" as the label takes the machine the file records), or a Run already loaded."""
    out_dir = Path(out_dir)
    written = []
    results = list(results or [])
    if results:
        written.append(write(build_agreement(results, source=results_source), out_dir / AGREEMENT_PAGE))
    if isinstance(bench, (str, Path)):
        bench = [("", bench)]
    if bench:
        run = bench if isinstance(bench, Run) else load_runs(bench)
        earlier = load_run(compare) if compare else None
        written.append(write(build_performance(run, earlier, threshold=threshold), out_dir / PERFORMANCE_PAGE))
    elif compare:
        raise ValueError(f"compare={compare!s} given without a benchmark JSON to compare it with")
    return written


__all__ = ["AGREEMENT_PAGE", "PERFORMANCE_PAGE", "REGRESSION_THRESHOLD", "build_agreement", "build_performance",
           "load_run", "load_runs", "write_reports"]
