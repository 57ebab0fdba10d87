"""One record per (case, backend, device, dtype, precision, machine), and its JSON-lines store.

Statuses are kept apart because they mean different things to a reviewer:
  pass, fail           - ran, and agreed with the oracle or not
  unsupported          - the framework cannot express this spec/dtype/device (reason says what)
  not installed        - the framework cannot be imported here
  skipped              - could have run, but not here (no GPU present, ...)
  error                - the harness or the framework raised; a bug to look at

Each record names the machine it ran on (`machine`: the host name, or the label given with `run --machine`,
`pytest --machine`, `gpu --machine`), so results from several machines merge into one report: `merge`
reads labelled files and refuses two results for one cell of one machine, naming both files and lines.
"""

from __future__ import annotations

import json
import platform
import socket
import sys
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from . import atomic

PASS, FAIL, UNSUPPORTED, NOT_INSTALLED, SKIPPED, ERROR = (
    "pass", "fail", "unsupported", "not installed", "skipped", "error")
STATUSES = (PASS, FAIL, UNSUPPORTED, NOT_INSTALLED, SKIPPED, ERROR)
UNKNOWN_MACHINE = "unknown"  # the machine of a record written before records named theirs, read without a label


def host_name() -> str:
    """The machine a result records by default: this host's name."""
    return socket.gethostname() or platform.node() or UNKNOWN_MACHINE


@dataclass
class Result:
    case: str
    backend: str
    device: str
    dtype: str
    precision: str
    status: str
    reason: str = ""  # why unsupported / not installed / skipped, or the failure/error message
    spec: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    worst_path: str = ""  # e.g. "h_n[layer=1, direction=backward]"
    worst_index: list[int] = field(default_factory=list)
    worst_abs: float | None = None
    worst_ratio: float | None = None  # worst |a - e| / allowed: <= 1 passes
    rtol: float | None = None  # the table's bound (harness.compare.tolerance_for)
    atol: float | None = None
    widened: str = ""  # the bound applied instead, widened for a long run or a large cell state (compare.growth)
    folded: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    reproduce: str = ""
    seconds: float | None = None
    machine: str = field(default_factory=host_name)  # where it ran: host name or a label (--machine)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Result.status must be one of {STATUSES}, got {self.status!r}")

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        """One cell of the agreement matrix: the same case, backend, device, dtype and mode on two machines
        are two cells."""
        return (self.case, self.backend, self.device, self.dtype, self.precision, self.machine)

    @property
    def cell(self) -> str:
        """The key in words, for messages."""
        return (f"case {self.case!r} on {self.backend} ({self.device}, {self.dtype}, precision {self.precision}) "
                f"from machine {self.machine!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=float)


def to_record(result: Result) -> dict[str, Any]:
    """The JSON object of a Result (one line of a results file; what a pytest-xdist worker sends back)."""
    return json.loads(result.to_json())


def from_record(record: Any) -> Result:
    """A Result from its JSON object, its fields' types checked (ValueError or TypeError naming the field)."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    record = {"machine": UNKNOWN_MACHINE, **record}
    _check_types(record)
    return Result(**record)


def write_jsonl(results: Iterable[Result], path: str | Path) -> Path:
    path = Path(path)
    with atomic.open_for_writing(path, "w") as fh:
        for r in results:
            fh.write(r.to_json() + "\n")
    return path


def read_jsonl(path: str | Path) -> list[Result]:
    return [r for _, r in numbered_records(path)]


def numbered_records(path: str | Path) -> Iterator[tuple[int, Result]]:
    """(line number, Result) per record. A record without `machine` (written before records named it) gets
    UNKNOWN_MACHINE, never this host's name: it may have run anywhere. A line that is not a record (not JSON, an
    unknown or missing field, a field of the wrong type) is a ValueError naming the file, the line and the field."""
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield n, from_record(json.loads(line))
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{path}:{n}: not a result record ({exc})") from exc


class DuplicateResult(ValueError):
    """Two results for one cell (Result.key) of one machine: which one the report should show is not for it
    to guess."""


def merge(sources: Sequence[tuple[str, str | Path]]) -> list[Result]:
    """The records of several results files, as (label, path): a label names the machine of every record in
    its file ("" keeps the machine each record names). Raises DuplicateResult naming both files and lines
    where two records are the same cell of the same machine."""
    seen: dict[tuple, str] = {}
    out = []
    for label, path in sources:
        for n, r in numbered_records(path):
            if label:
                r.machine = label
            where = f"{path}:{n}"
            if r.key in seen:
                raise DuplicateResult(
                    f"two results for {r.cell}: {seen[r.key]} and {where}. One result per cell and machine: "
                    f"if these files come from different machines, label them (--results LABEL=PATH)")
            seen[r.key] = where
            out.append(r)
    return out


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value has the type a Result field declares (a bool is not a number here)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint in (int, float):
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _fits(v, args[1]) for k, v in value.items())
    return isinstance(value, hint)


def _check_types(data: dict[str, Any]) -> None:
    hints = typing.get_type_hints(Result)
    for name, value in data.items():
        if name in hints and not _fits(value, hints[name]):
            raise ValueError(f"field {name!r}: expected {_type_name(hints[name])}, got {type(value).__name__} "
                             f"{value!r}")


def _type_name(hint: Any) -> str:
    """'int', 'float | null', 'list[int]', 'dict[str, Any]': as the field declares it, in JSON's words for None."""
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "").replace("None", "null")


def host_environment() -> dict[str, str]:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine()}
