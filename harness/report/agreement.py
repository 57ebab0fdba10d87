"""The agreement page: cases x (backend, device, dtype, precision), one cell per Result.

A cell shows its status (pass / fail / unsupported / not installed / skipped / error, each with its
own colour and symbol), the worst absolute error, its ratio to the tolerance and where it was (output
path and index). Reasons for the cells that did not run are numbered notes under the matrix; a failing
or erroring cell opens a detail with the spec, the seed, the message and the command that reproduces it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from ..results import ERROR, FAIL, PASS, STATUSES, Result
from . import page

# Symbol and one-line meaning per status (the legend; the colours are in the template's CSS).
STATUS_INFO = {
    "pass": ("✓", "agrees with the float64 oracle within the tolerance"),
    "fail": ("✗", "differs from the oracle by more than the tolerance"),
    "unsupported": ("⊘", "the framework cannot express this spec, dtype or device"),
    "not installed": ("∅", "the framework cannot be imported here"),
    "skipped": ("↷", "could run, but not here (e.g. no GPU present)"),
    "error": ("⚠", "the harness or the framework raised: a bug to look at"),
}
assert set(STATUS_INFO) == set(STATUSES)

_PATH = re.compile(r"^(?P<name>\w+)(?:\[(?:layer=(?P<layer>\d+), )?direction=(?P<dir>\w+)\])?$")


def short_path(path: str) -> str:
    """h_n[layer=1, direction=backward] -> h_n[1,bwd]; y[direction=forward] -> y[fwd]; y -> y."""
    m = _PATH.match(path or "")
    if not m or not m["dir"]:
        return path or ""
    direction = {"forward": "fwd", "backward": "bwd"}.get(m["dir"], m["dir"])
    parts = ([m["layer"]] if m["layer"] is not None else []) + [direction]
    return f"{m['name']}[{','.join(parts)}]"


@dataclass(frozen=True)
class Column:
    backend: str
    device: str
    dtype: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.device} · {self.dtype} · {self.precision}"


@dataclass
class Cell:
    result: Result
    symbol: str
    note: int | None = None  # number of the reason in the notes under the matrix
    detail_id: str | None = None  # anchor of the failure/error detail

    @property
    def css(self) -> str:
        return "st-" + self.result.status.replace(" ", "-")

    @property
    def short_path(self) -> str:
        return short_path(self.result.worst_path)

    @property
    def index(self) -> str:
        return "(" + ",".join(str(i) for i in self.result.worst_index) + ")"

    @property
    def title(self) -> str:
        """The cell's tooltip: everything about it in plain words."""
        r = self.result
        lines = [f"{r.case} on {r.backend} ({r.device}, {r.dtype}, precision {r.precision}): {r.status}"]
        if r.worst_abs is not None:
            lines.append(f"worst |error| {r.worst_abs:.3g} = {r.worst_ratio:.3g} of the tolerance "
                         f"(rtol {r.rtol:g}, atol {r.atol:g}) in {r.worst_path} at index {tuple(r.worst_index)}")
        if r.folded:
            lines.append("folded: " + ", ".join(r.folded))
        if r.status not in (PASS,):
            lines.append(r.reason.splitlines()[0] if r.status in (FAIL, ERROR) else r.reason)
        return "\n".join(lines)


@dataclass
class Matrix:
    cases: list[str]
    columns: list[Column]
    cells: dict[tuple[str, Column], Cell]
    notes: list[tuple[int, str, str]] = field(default_factory=list)  # (number, status, reason)
    details: list[Cell] = field(default_factory=list)  # failures and errors, in matrix order

    @property
    def backends(self) -> list[tuple[str, int]]:
        """(backend, number of its columns), for the grouped header."""
        return list(Counter(c.backend for c in self.columns).items())

    def column_counts(self, column: Column) -> list[tuple[str, str, int]]:
        counts = Counter(self.cells[(case, column)].result.status for case in self.cases if (case, column) in self.cells)
        return [(s, STATUS_INFO[s][0], counts[s]) for s in STATUSES if counts[s]]


def matrix(results: Iterable[Result]) -> Matrix:
    """Lay the results out; a (case, column) given twice is an error, not silently overwritten."""
    results = list(results)
    cases = list(dict.fromkeys(r.case for r in results))
    backends = list(dict.fromkeys(r.backend for r in results))
    columns = sorted(dict.fromkeys(Column(r.backend, r.device, r.dtype, r.precision) for r in results),
                     key=lambda c: backends.index(c.backend))
    cells: dict[tuple[str, Column], Cell] = {}
    notes: dict[tuple[str, str], int] = {}
    for r in results:
        key = (r.case, Column(r.backend, r.device, r.dtype, r.precision))
        if key in cells:
            raise ValueError(f"two results for case {r.case!r} on {key[1]}: one result per cell expected")
        cell = Cell(r, STATUS_INFO[r.status][0])
        if r.status not in (PASS, FAIL, ERROR):
            cell.note = notes.setdefault((r.status, r.reason), len(notes) + 1)
        cells[key] = cell
    details = []
    for case in cases:
        for col in columns:
            cell = cells.get((case, col))
            if cell and cell.result.status in (FAIL, ERROR):
                cell.detail_id = f"detail-{len(details) + 1}"
                details.append(cell)
    return Matrix(cases, columns, cells, [(n, s, reason) for (s, reason), n in notes.items()], details)


def environment_rows(results: list[Result]) -> list[dict[str, str]]:
    """Versions, devices and precision flags as the backends recorded them (Result.environment)."""
    ran = [r for r in results if r.environment]
    entries = [(k, v, r.backend) for r in ran for k, v in r.environment.items()]
    host = ("python", "platform", "machine")
    rows = page.env_rows(entries, {r.backend for r in ran})
    return sorted(rows, key=lambda row: (row["key"] not in host, row["source"] != "all", row["source"], row["key"]))


def build_agreement(results: Iterable[Result], *, source: str = "") -> str:
    """The agreement page as one self-contained HTML string."""
    results = list(results)
    if not results:
        raise ValueError("build_agreement: no results to report")
    m = matrix(results)
    counts = Counter(r.status for r in results)
    return page.render(
        "agreement.html.j2",
        title="LSTM agreement",
        m=m,
        counts=[(s, STATUS_INFO[s][0], counts[s]) for s in STATUSES if counts[s]],
        status_info=STATUS_INFO,
        env_rows=environment_rows(results),
        specs={r.case: r.spec for r in results},
        devices=sorted({r.device for r in results}),
        precisions=sorted({r.precision for r in results}),
        source=source,
        bad=counts[FAIL] + counts[ERROR],
    )
