"""What both report pages share: the jinja2 environment (autoescaped), number formats, the header, and the
environment table (per machine, per framework, each key once).

Everything a page shows is escaped by the template engine; the only markup let through unescaped is
the SVG that matplotlib writes for the charts (harness.report.charts).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jinja2

from .. import atomic

TEMPLATES = Path(__file__).with_name("templates")

_ENV: jinja2.Environment | None = None


def seconds(value: float | None) -> str:
    """A duration with a unit that keeps 3 significant digits: 312 µs, 4.21 ms, 1.05 s."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(value) >= scale or unit == "ns":
            return f"{value / scale:.3g} {unit}"
    raise AssertionError("unreachable")


def si(value: float | None, unit: str = "") -> str:
    """A rate with an SI prefix: 1.2 GFLOP/s, 350 k/s."""
    if value is None or not math.isfinite(value):
        return "–"
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def sig(value: float | None, digits: int = 2) -> str:
    """A number to `digits` significant digits (errors and ratios): 3.1e-07, 0.12, ∞."""
    if value is None:
        return "–"
    if math.isinf(value):
        return "∞"
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}g}"


def when(value: str) -> str:
    """An ISO date and time as a reader wants it: 2026-11-23 11:25 UTC (anything else as it is)."""
    try:
        moment = _dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return value or "not recorded"
    return moment.strftime("%Y-%m-%d %H:%M") + (f" {moment.tzname()}" if moment.tzinfo else "")


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.3g}%"


def environment() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,  # every template is HTML; reasons and names come from outside
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _ENV.filters.update(seconds=seconds, si=si, sig=sig, percent=percent, when=when)
    return _ENV


# The framework a recorded key belongs to, by its first word: "torch.backends.cudnn.allow_tf32" -> torch.
FRAMEWORK_WORDS = {"torch": "torch", "tensorflow": "tensorflow", "tf": "tensorflow", "tf1": "tensorflow",
                   "keras": "keras", "jax": "jax", "jaxlib": "jax", "flax": "flax", "equinox": "equinox",
                   "onnx": "onnx", "onnxruntime": "onnx", "numpy": "numpy", "cuda": "cuda", "cudnn": "cuda"}
HOST, BACKEND_SETTINGS = "host", "backend settings"
_VERSION_KEYS = ("python", "python_version", *dict.fromkeys(FRAMEWORK_WORDS))  # shown in a machine's one-line summary


@dataclass
class EnvRow:
    key: str
    values: list[tuple[str, str]]  # (value, who reported it; "" when every source on the machine did)


@dataclass
class EnvGroup:
    name: str  # "host", a framework, or "backend settings"
    rows: list[EnvRow]


@dataclass
class MachineEnv:
    machine: str
    groups: list[EnvGroup]

    @property
    def summary(self) -> str:
        """The versions in one line, for the folded view."""
        rows = {row.key: row for group in self.groups for row in group.rows}
        return " · ".join(f"{k} {' / '.join(v for v, _ in rows[k].values)}" for k in _VERSION_KEYS if k in rows)


def _group(key: str, source: str, host_keys: tuple[str, ...]) -> str:
    if key in host_keys:
        return HOST
    framework = FRAMEWORK_WORDS.get(re.split(r"[._]", key, maxsplit=1)[0])
    return framework or (BACKEND_SETTINGS if source else HOST)


def env_by_machine(entries: Iterable[tuple[str, str, str, Any]], host_keys: tuple[str, ...] = ()) -> list[MachineEnv]:
    """(machine, source, key, value) -> per machine, one group per framework (by the key's first word: torch,
    tensorflow, jax, ...), the host's keys, and the settings only one backend has (kernel, cell); each key
    once per machine, with every value it took and who reported each value where not every source did.
    source: the backend that recorded it, "" for the machine itself."""
    seen: dict[str, dict[str, dict[str, list[str]]]] = {}  # machine -> key -> value -> sources
    sources: dict[str, set[str]] = {}
    groups: dict[tuple[str, str], str] = {}
    for machine, source, key, value in entries:
        by_value = seen.setdefault(machine, {}).setdefault(key, {})
        reporters = by_value.setdefault(str(value), [])
        if source and source not in reporters:
            reporters.append(source)
        if source:
            sources.setdefault(machine, set()).add(source)
        groups.setdefault((machine, key), _group(key, source, host_keys))
    order = [HOST, *dict.fromkeys(FRAMEWORK_WORDS.values()), BACKEND_SETTINGS]
    out = []
    for machine, keys in seen.items():
        everyone = sources.get(machine, set())
        grouped: dict[str, list[EnvRow]] = {}
        for key, by_value in keys.items():
            values = [(v, "" if not s or (set(s) >= everyone and len(by_value) == 1) else ", ".join(s))
                      for v, s in by_value.items()]
            grouped.setdefault(groups[(machine, key)], []).append(EnvRow(key, values))
        out.append(MachineEnv(machine, [
            EnvGroup(name, sorted(grouped[name], key=lambda row: (row.key != name, row.key)))
            for name in sorted(grouped, key=lambda g: order.index(g) if g in order else len(order))]))
    return out


def render(template: str, **context: Any) -> str:
    from .. import __version__

    generated = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return environment().get_template(template).render(harness_version=__version__, generated=generated, **context)


def write(html: str, path: str | Path) -> Path:
    return atomic.write_text(path, html)
