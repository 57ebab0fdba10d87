"""What both report pages share: the jinja2 environment (autoescaped), number formats, the header.

Everything a page shows is escaped by the template engine; the only markup let through unescaped is
the SVG that matplotlib writes for the charts (harness.report.charts).
"""

from __future__ import annotations

import datetime as _dt
import math
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
        _ENV.filters.update(seconds=seconds, si=si, sig=sig, percent=percent)
    return _ENV


def env_rows(entries: Iterable[tuple[str, str, str]], everyone: Iterable[str]) -> list[dict[str, str]]:
    """(key, value, source) triples -> rows of key, value and who reported it ("all" when everyone did).

    One table for versions, devices and precision flags, whatever the sources (backends, a machine).
    """
    everyone = set(everyone)
    seen: dict[tuple[str, str], list[str]] = {}
    for key, value, source in entries:
        sources = seen.setdefault((key, str(value)), [])
        if source not in sources:
            sources.append(source)
    return [{"key": k, "value": v, "source": "all" if set(s) >= everyone and len(everyone) > 1 else ", ".join(s)}
            for (k, v), s in seen.items()]


def render(template: str, **context: Any) -> str:
    from .. import __version__

    generated = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return environment().get_template(template).render(harness_version=__version__, generated=generated, **context)


def write(html: str, path: str | Path) -> Path:
    return atomic.write_text(path, html)
