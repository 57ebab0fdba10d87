"""The agreement page: cases x (backend, machine, device, precision, dtype), one cell per Result.

A cell shows its status (pass / fail / unsupported / not installed / skipped / error, each with its
own colour and symbol), the worst absolute error, its ratio to the tolerance and where it was (output
path and index). Reasons for the cells that did not run are numbered notes under the matrix; a failing
or erroring cell opens a detail with the spec, the seed, the message and the command that reproduces it.

Page order, for a reviewer: the verdict, the matrix (sticky header row and case column; checkboxes that hide
cells by status and columns by backend, in CSS alone), the notes, the tolerance table (harness.compare's, with
the cells each bound judged), the environment folded per machine and framework, the failures in full.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from .. import compare
from ..results import ERROR, FAIL, PASS, STATUSES, DuplicateResult, Result
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


# The column levels under each backend, outermost first: a level with one value over the whole matrix is said
# once above it instead of in every column (dtype always keeps its row, so every column has a label).
LEVELS = ("machine", "device", "precision", "dtype")
# Above this many columns the cells start compact (ratio or symbol only), so 28+ columns fit a wide screen.
COMPACT_ABOVE = 12


@dataclass(frozen=True)
class Column:
    backend: str
    machine: str
    device: str
    precision: str
    dtype: str

    @property
    def label(self) -> str:
        return f"{self.backend} · {self.device} · {self.dtype} · precision {self.precision} · machine {self.machine}"


@dataclass
class HeaderSpan:
    text: str
    span: int
    backend: int  # index of the backend it sits under (its filter)


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
        lines = [f"{r.case} on {r.backend} ({r.device}, {r.dtype}, precision {r.precision}, machine {r.machine}): "
                 f"{r.status}"]
        if r.worst_abs is not None:
            lines.append(f"worst |error| {r.worst_abs:.3g} = {r.worst_ratio:.3g} of the tolerance "
                         f"(rtol {r.rtol:g}, atol {r.atol:g}) in {r.worst_path} at index {tuple(r.worst_index)}")
            if r.widened:
                lines.append(f"bound widened: {r.widened}")
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
    def backends(self) -> list[str]:
        return list(dict.fromkeys(c.backend for c in self.columns))

    def backend_index(self, column: Column) -> int:
        return self.backends.index(column.backend)

    @property
    def backend_spans(self) -> list[tuple[str, int]]:
        """(backend, number of its columns), for the grouped header."""
        return list(Counter(c.backend for c in self.columns).items())

    @property
    def shown_levels(self) -> list[str]:
        return [level for level in LEVELS
                if level == LEVELS[-1] or len({getattr(c, level) for c in self.columns}) > 1]

    @property
    def common(self) -> list[tuple[str, str]]:
        """(level, value) of the levels every column shares (said once, above the matrix)."""
        return [(level, getattr(self.columns[0], level)) for level in LEVELS
                if level not in self.shown_levels or len({getattr(c, level) for c in self.columns}) == 1]

    def header_rows(self) -> list[tuple[str, list[HeaderSpan]]]:
        """Per shown level, its header row: neighbouring columns that agree on the backend and on every level
        down to this one share one header cell."""
        rows = []
        shown = self.shown_levels
        for depth, level in enumerate(shown):
            spans: list[HeaderSpan] = []
            previous = None
            for col in self.columns:
                prefix = (col.backend, *(getattr(col, lv) for lv in shown[:depth + 1]))
                if prefix == previous:
                    spans[-1].span += 1
                else:
                    spans.append(HeaderSpan(getattr(col, level), 1, self.backend_index(col)))
                previous = prefix
            rows.append((level, spans))
        return rows

    def column_counts(self, column: Column) -> list[tuple[str, str, int]]:
        counts = Counter(self.cells[(case, column)].result.status for case in self.cases if (case, column) in self.cells)
        return [(s, STATUS_INFO[s][0], counts[s]) for s in STATUSES if counts[s]]


def _first_seen(values) -> dict[str, int]:
    return {v: i for i, v in enumerate(dict.fromkeys(values))}


def matrix(results: Iterable[Result]) -> Matrix:
    """Lay the results out; a (case, column) given twice is an error, not silently overwritten.

    Columns are grouped by backend, then machine, device, precision and dtype, each in the order first seen."""
    results = list(results)
    cases = list(dict.fromkeys(r.case for r in results))
    order = {f: _first_seen(getattr(r, f) for r in results) for f in ("backend", *LEVELS)}
    column_of = {id(r): Column(r.backend, r.machine, r.device, r.precision, r.dtype) for r in results}
    columns = sorted(dict.fromkeys(column_of.values()),
                     key=lambda c: tuple(order[f][getattr(c, f)] for f in ("backend", *LEVELS)))
    cells: dict[tuple[str, Column], Cell] = {}
    notes: dict[tuple[str, str], int] = {}
    for r in results:
        key = (r.case, column_of[id(r)])
        if key in cells:
            raise DuplicateResult(f"two results for {r.cell}: one result per cell and machine expected")
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


# Keys every result records (results.host_environment and the precision mode): the host's, not a framework's.
HOST_KEYS = ("python", "platform", "machine", "precision")


def environment(results: list[Result]) -> list[page.MachineEnv]:
    """Versions, devices and precision flags as the backends recorded them (Result.environment), per machine
    and framework."""
    return page.env_by_machine(((r.machine, r.backend, k, v) for r in results for k, v in r.environment.items()),
                            HOST_KEYS)


@dataclass
class BoundRow:
    bound: compare.Bound
    cells: int = 0  # cells of this report judged by it


def tolerance_rows(results: list[Result]) -> tuple[list[BoundRow], list[Result]]:
    """The tolerance tables (harness.compare) with the number of cells each bound judged here, and the cells
    whose recorded bound is not the one the table gives now (results from another version of the harness)."""
    rows = [BoundRow(b) for b in compare.tolerance_table()]
    changed = []
    for r in results:
        if r.rtol is None:
            continue  # did not run
        try:
            tol = compare.tolerance_for(r.dtype, r.precision, r.backend, r.device)
        except (KeyError, ValueError):
            changed.append(r)
            continue
        row = next((row for row in rows if row.bound.tolerance == tol), None)
        if row is not None:
            row.cells += 1
        if (tol.rtol, tol.atol) != (r.rtol, r.atol):
            changed.append(r)
    return rows, changed


def build_agreement(results: Iterable[Result], *, source: str = "") -> str:
    """The agreement page as one self-contained HTML string: the verdict, the matrix (filters by status and
    backend), the notes, the tolerance table, the environment (folded), then the failures in full."""
    results = list(results)
    if not results:
        raise ValueError("build_agreement: no results to report")
    m = matrix(results)
    counts = Counter(r.status for r in results)
    bounds, changed = tolerance_rows(results)
    return page.render(
        "agreement.html.j2",
        title="LSTM agreement",
        m=m,
        counts=[(s, STATUS_INFO[s][0], counts[s]) for s in STATUSES if counts[s]],
        status_info=STATUS_INFO,
        status_ids={s: i for i, s in enumerate(STATUSES)},
        machines=environment(results),
        machine_names=list(dict.fromkeys(r.machine for r in results)),
        bounds=bounds,
        changed_bounds=changed,
        specs={r.case: r.spec for r in results},
        source=source,
        bad=counts[FAIL] + counts[ERROR],
        ran=counts[PASS] + counts[FAIL],
        compact_above=COMPACT_ABOVE,
    )
