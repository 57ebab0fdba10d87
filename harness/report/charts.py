"""The performance page's charts, drawn by matplotlib and inlined as SVG (no pyplot state, no files).

Text stays text (svg.fonttype "none": the browser's own sans-serif, no font embedded or fetched), and
every id inside a chart gets the chart's prefix, so several charts can share one HTML document.
"""

from __future__ import annotations

import io
import itertools
import re
from typing import Sequence

from markupsafe import Markup

_counter = itertools.count(1)
# A colour per series that stays the same in every chart of a page (matplotlib's tab10, then tab20).
_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d"]
_MARKERS = "osD^v<>ph*"


def palette(labels: Sequence[str]) -> dict[str, tuple[str, str]]:
    """label -> (colour, marker), in the order given."""
    return {label: (_COLOURS[i % len(_COLOURS)], _MARKERS[i % len(_MARKERS)]) for i, label in enumerate(labels)}


def _text(label: str) -> str:
    return label.replace("$", r"\$")  # a "$" would start matplotlib's mathtext


def _svg(fig) -> Markup:
    import matplotlib

    prefix = f"c{next(_counter)}-"
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "lstm-harness"}):
        fig.savefig(buf, format="svg", bbox_inches="tight",
                    metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and the DOCTYPE (it names an external DTD)
    svg = re.sub(r'\bid="', f'id="{prefix}', svg)
    svg = re.sub(r'(xlink:href|href)="#', rf'\1="#{prefix}', svg)
    svg = svg.replace("url(#", f"url(#{prefix}")
    return Markup(svg)  # matplotlib escaped every label it wrote


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    fig.set_facecolor("white")
    return fig


def bars(labels: Sequence[str], medians: Sequence[float], q1: Sequence[float], q3: Sequence[float],
         colours: Sequence[str], *, xlabel: str = "median time per call (s)") -> Markup:
    """Horizontal bars of the median, whiskers from the first to the third quartile; log scale when
    the bars span more than a factor of 30."""
    fig = _figure(4.8, 0.7 + 0.3 * len(labels))
    ax = fig.add_subplot()
    ys = range(len(labels))
    err = [[m - a for m, a in zip(medians, q1)], [b - m for m, b in zip(medians, q3)]]
    drawn = ax.barh(ys, medians, xerr=err, color=colours, ecolor="#333333", capsize=3, height=0.6)
    for i, bar in enumerate(drawn.patches):
        bar.set_gid(f"bar-{i}")  # named in the SVG, so a test can find the bars on screen
    ax.set_yticks(list(ys), [_text(label) for label in labels])
    ax.invert_yaxis()
    if max(medians) > 30 * min(medians):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def lines(series: dict[str, tuple[list[float], list[float], list[float], list[float]]],
          styles: dict[str, tuple[str, str]], *, xlabel: str, ylabel: str = "median time per call (s)") -> Markup:
    """One line per series (x, median, q1, q3) on log-log axes; the band is the interquartile range."""
    from matplotlib.ticker import NullLocator

    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot()
    for i, (label, (xs, med, q1, q3)) in enumerate(series.items()):
        colour, marker = styles[label]
        ax.plot(xs, med, marker=marker, color=colour, label=_text(label), gid=f"line-{i}")
        ax.fill_between(xs, q1, q3, color=colour, alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = sorted({x for xs, *_ in series.values() for x in xs})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])  # the measured points, in plain numbers
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best", framealpha=0.8)
    return _svg(fig)
