"""One record per (case, backend, device, dtype, precision), and its JSON-lines store.

Statuses are kept apart because they mean different things to a reviewer:
  pass, fail           - ran, and agreed with the oracle or not
  unsupported          - the framework cannot express this spec/dtype/device (reason says what)
  not installed        - the framework cannot be imported here
  skipped              - could have run, but not here (no GPU present, ...)
  error                - the harness or the framework raised; a bug to look at
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from . import atomic

PASS, FAIL, UNSUPPORTED, NOT_INSTALLED, SKIPPED, ERROR = (
    "pass", "fail", "unsupported", "not installed", "skipped", "error")
STATUSES = (PASS, FAIL, UNSUPPORTED, NOT_INSTALLED, SKIPPED, ERROR)


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
    rtol: float | None = None
    atol: float | None = None
    folded: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    reproduce: str = ""
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Result.status must be one of {STATUSES}, got {self.status!r}")

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.case, self.backend, self.device, self.dtype, self.precision)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=float)


def write_jsonl(results: Iterable[Result], path: str | Path) -> Path:
    path = Path(path)
    with atomic.open_for_writing(path, "w") as fh:
        for r in results:
            fh.write(r.to_json() + "\n")
    return path


def read_jsonl(path: str | Path) -> list[Result]:
    out = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(Result(**json.loads(line)))
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{path}:{n}: not a result record ({exc})") from exc
    return out


def host_environment() -> dict[str, str]:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine()}
