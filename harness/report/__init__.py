"""HTML reports a reviewer can open: agreement.html from result records, performance.html from
pytest-benchmark JSON. Each page is one self-contained file (inline CSS and SVG, no script, font or
image from elsewhere), made from jinja2 templates with autoescaping; charts are matplotlib SVG.

    write_reports("reports", results=read_jsonl("reports/results.jsonl"), bench="reports/benchmark.json")
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..results import Result
from .agreement import build_agreement
from .performance import REGRESSION_THRESHOLD, build_performance, load_run
from .page import write

AGREEMENT_PAGE, PERFORMANCE_PAGE = "agreement.html", "performance.html"


def write_reports(out_dir: str | Path, *, results: Iterable[Result] | None = None, results_source: str = "",
                  bench: str | Path | None = None, compare: str | Path | None = None,
                  threshold: float = REGRESSION_THRESHOLD) -> list[Path]:
    """Write the pages there is input for; return their paths."""
    out_dir = Path(out_dir)
    written = []
    results = list(results or [])
    if results:
        written.append(write(build_agreement(results, source=results_source), out_dir / AGREEMENT_PAGE))
    if bench is not None:
        earlier = load_run(compare) if compare else None
        written.append(write(build_performance(load_run(bench), earlier, threshold=threshold), out_dir / PERFORMANCE_PAGE))
    elif compare:
        raise ValueError(f"compare={compare!s} given without a benchmark JSON to compare it with")
    return written


__all__ = ["AGREEMENT_PAGE", "PERFORMANCE_PAGE", "REGRESSION_THRESHOLD", "build_agreement", "build_performance",
           "load_run", "write_reports"]
