"""The performance page, from pytest-benchmark's saved JSON (`pytest --benchmark-json=PATH`).

Each benchmark describes itself in `benchmark.extra_info` (keys read here; the benchmark documents how
it measured them):

  backend, device, dtype      required: what ran ("torch", "cuda", "float32")
  batch, steps, input, hidden the size; layers (1), bidirectional (false) and proj (0) when not the default.
                              A benchmark without the size is listed under its pytest-benchmark group.
  precision                   the precision mode ("exact" when absent)
  variant                     a label for a second path of one backend ("cudnn", "scan"), when there is one
  flops                       floating-point operations of one timed call -> achieved FLOP/s = flops / median
  peak_flops                  the device's measured peak FLOP/s in that dtype -> fraction of peak
  compile_seconds             the first call (build, trace, compile), kept out of the timed rounds: shown apart
  any other key               shown in the tooltip of the benchmark's row (threads, kernel, ...)

Throughput is batch x steps / median: time steps of one sequence per second.

Comparison with an earlier run: benchmarks are matched by (series, size), or by pytest name when they
have no size. A benchmark is a REGRESSION when its median is more than REGRESSION_THRESHOLD (10%) slower
than the earlier median AND the two interquartile ranges do not overlap (this run's first quartile is
above the earlier third quartile), so a noisy round cannot raise it alone; an IMPROVEMENT is the mirror.
A change past the threshold whose ranges overlap is NOISY (shown, not counted); the rest UNCHANGED.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import charts, page

REGRESSION_THRESHOLD = 0.10
REQUIRED = ("backend", "device", "dtype")
SIZE_KEYS = ("batch", "steps", "input", "hidden")
KNOWN = {*REQUIRED, *SIZE_KEYS, "layers", "bidirectional", "proj", "precision", "variant", "flops", "peak_flops",
         "compile_seconds"}
SWEEP_AXES = ("steps", "batch")
SWEEP_MIN_POINTS = 3


@dataclass(frozen=True, order=True)
class Size:
    input: int
    hidden: int
    layers: int
    bidirectional: bool
    proj: int
    batch: int
    steps: int

    @property
    def label(self) -> str:
        extra = (f" · {self.layers} layers" if self.layers != 1 else "") + (" · bidirectional" if self.bidirectional else "") \
            + (f" · proj {self.proj}" if self.proj else "")
        return f"batch {self.batch} · {self.steps} steps · input {self.input} · hidden {self.hidden}{extra}"

    def without(self, axis: str) -> tuple:
        return tuple(v for k, v in vars(self).items() if k != axis)

    def describe_without(self, axis: str) -> str:
        return " · ".join(part for part in self.label.split(" · ") if axis not in part)


@dataclass
class Bench:
    name: str
    fullname: str
    group: str
    info: dict[str, Any]
    stats: dict[str, float]
    size: Size | None

    @property
    def series(self) -> str:
        """backend (variant) device dtype [precision]: one line or bar in every chart."""
        i = self.info
        variant = f" ({i['variant']})" if i.get("variant") else ""
        precision = "" if i.get("precision", "exact") == "exact" else f" {i['precision']}"
        return f"{i['backend']}{variant} {i['device']} {i['dtype']}{precision}"

    @property
    def size_label(self) -> str:
        return self.size.label if self.size else (self.group or "ungrouped")

    @property
    def key(self) -> tuple:
        return (self.series, self.size) if self.size else (self.fullname,)

    median = property(lambda self: self.stats["median"])
    q1 = property(lambda self: self.stats["q1"])
    q3 = property(lambda self: self.stats["q3"])
    iqr = property(lambda self: self.stats["iqr"])
    stddev = property(lambda self: self.stats["stddev"])
    rounds = property(lambda self: self.stats["rounds"])
    compile_seconds = property(lambda self: self.info.get("compile_seconds"))

    @property
    def throughput(self) -> float | None:
        return self.size.batch * self.size.steps / self.median if self.size and self.median > 0 else None

    @property
    def flop_rate(self) -> float | None:
        return self.info["flops"] / self.median if self.info.get("flops") and self.median > 0 else None

    @property
    def peak_fraction(self) -> float | None:
        rate = self.flop_rate
        return rate / self.info["peak_flops"] if rate and self.info.get("peak_flops") else None

    @property
    def other_info(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.info.items()) if k not in KNOWN)


@dataclass
class Run:
    benchmarks: list[Bench]
    machine: dict[str, Any] = field(default_factory=dict)
    commit: dict[str, Any] = field(default_factory=dict)
    datetime: str = ""
    version: str = ""
    source: str = ""


def _bench(raw: dict[str, Any], where: str) -> Bench:
    info = raw.get("extra_info") or {}
    missing = [k for k in REQUIRED if k not in info]
    if missing:
        raise ValueError(f"{where}: benchmark {raw.get('fullname', raw.get('name'))!r} has no extra_info "
                         f"{', '.join(missing)}; every benchmark must name {', '.join(REQUIRED)} "
                         f"(extra_info has {sorted(info)})")
    size = None
    if all(k in info for k in SIZE_KEYS):
        size = Size(int(info["input"]), int(info["hidden"]), int(info.get("layers", 1)), bool(info.get("bidirectional", False)),
                    int(info.get("proj", 0) or 0), int(info["batch"]), int(info["steps"]))
    stats = raw["stats"]
    for k in ("median", "q1", "q3", "iqr", "stddev", "rounds"):
        if k not in stats:
            raise ValueError(f"{where}: benchmark {raw.get('fullname')!r} stats lack {k!r}: not pytest-benchmark JSON?")
    return Bench(raw.get("name", ""), raw.get("fullname", raw.get("name", "")), raw.get("group") or "", info,
                 {k: v for k, v in stats.items() if k != "data"}, size)


def parse(data: dict[str, Any], source: str = "") -> Run:
    if not isinstance(data, dict) or "benchmarks" not in data:
        raise ValueError(f"{source or 'benchmark JSON'}: expected pytest-benchmark JSON with a 'benchmarks' list, "
                         f"got {type(data).__name__} with keys {sorted(data) if isinstance(data, dict) else '-'}")
    return Run([_bench(b, source) for b in data["benchmarks"]], data.get("machine_info", {}), data.get("commit_info", {}),
               data.get("datetime", ""), data.get("version", ""), source)


def load_run(path: str | Path) -> Run:
    with open(path) as fh:
        return parse(json.load(fh), str(path))


@dataclass
class Change:
    earlier: Bench
    ratio: float  # this median / earlier median
    verdict: str  # "regression", "improvement", "noisy" or "unchanged"


def compare_runs(now: Run, earlier: Run, threshold: float = REGRESSION_THRESHOLD) -> dict[tuple, Change]:
    """Benchmark key -> its change against the earlier run (rule in the module docstring)."""
    before = {b.key: b for b in earlier.benchmarks}
    changes = {}
    for b in now.benchmarks:
        old = before.get(b.key)
        if old is None or old.median <= 0:
            continue
        ratio = b.median / old.median
        if ratio > 1 + threshold and b.q1 > old.q3:
            verdict = "regression"
        elif ratio < 1 / (1 + threshold) and b.q3 < old.q1:
            verdict = "improvement"
        elif ratio > 1 + threshold or ratio < 1 / (1 + threshold):
            verdict = "noisy"
        else:
            verdict = "unchanged"
        changes[b.key] = Change(old, ratio, verdict)
    return changes


def _machine(run: Run) -> list[tuple[str, str]]:
    """machine_info flattened one level (cpu: only what names it; lists such as cpu flags left out)."""
    out = []
    for key, value in run.machine.items():
        if key == "cpu" and isinstance(value, dict):
            out += [(f"cpu.{k}", str(value[k])) for k in ("brand_raw", "arch", "count", "hz_actual_friendly") if k in value]
        elif isinstance(value, dict):
            out += [(f"{key}.{k}", str(v)) for k, v in value.items() if not isinstance(v, (list, dict))]
        elif not isinstance(value, list):
            out.append((key, str(value)))
    commit = run.commit
    if commit.get("id"):
        out.append(("commit", f"{commit['id'][:12]}{' (dirty)' if commit.get('dirty') else ''}"
                              f"{' on ' + commit['branch'] if commit.get('branch') else ''}"))
    out += [("benchmark run", run.datetime), ("pytest-benchmark", run.version)]
    return [(k, v) for k, v in out if v]


def _sweeps(run: Run, styles) -> list[tuple[str, Any]]:
    """Charts of time against steps and against batch, one per set of the other sizes."""
    out = []
    for axis in SWEEP_AXES:
        groups: dict[tuple, list[Bench]] = defaultdict(list)
        for b in run.benchmarks:
            if b.size:
                groups[b.size.without(axis)].append(b)
        for benches in groups.values():
            xs = sorted({getattr(b.size, axis) for b in benches})
            if len(xs) < SWEEP_MIN_POINTS:
                continue
            series: dict[str, tuple[list, list, list, list]] = {}
            for b in sorted(benches, key=lambda b: getattr(b.size, axis)):
                s = series.setdefault(b.series, ([], [], [], []))
                for lst, v in zip(s, (getattr(b.size, axis), b.median, b.q1, b.q3)):
                    lst.append(v)
            title = f"time against {axis} ({benches[0].size.describe_without(axis)})"
            out.append((title, charts.lines(series, styles, xlabel=axis, title=title)))
    return out


def build_performance(run: Run, earlier: Run | None = None, *, threshold: float = REGRESSION_THRESHOLD) -> str:
    """The performance page as one self-contained HTML string."""
    if not run.benchmarks:
        raise ValueError(f"{run.source or 'benchmark run'}: no benchmarks to report")
    styles = charts.palette(sorted({b.series for b in run.benchmarks}))
    by_size: dict[str, list[Bench]] = defaultdict(list)
    for b in sorted(run.benchmarks, key=lambda b: (b.size is None, b.size or Size(0, 0, 0, False, 0, 0, 0), b.group)):
        by_size[b.size_label].append(b)
    sizes = []
    for label, benches in by_size.items():
        benches.sort(key=lambda b: b.median)
        chart = charts.bars([b.series for b in benches], [b.median for b in benches], [b.q1 for b in benches],
                            [b.q3 for b in benches], [styles[b.series][0] for b in benches])
        sizes.append({"label": label, "benches": benches, "fastest": benches[0].median, "chart": chart})
    changes = compare_runs(run, earlier, threshold) if earlier else {}
    compiled = [b for b in run.benchmarks if b.compile_seconds is not None]
    compile_sizes = list(dict.fromkeys(b.size_label for s in sizes for b in s["benches"] if b.compile_seconds is not None))
    compile_table = {(b.series, b.size_label): b.compile_seconds for b in compiled}
    same_machine = earlier is None or _fingerprint(run) == _fingerprint(earlier)
    return page.render(
        "performance.html.j2",
        title="LSTM forward-pass performance",
        source=run.source,
        run=run,
        env_rows=[{"key": k, "value": v, "source": ""} for k, v in _machine(run)],
        sizes=sizes,
        charts_palette=styles,
        sweeps=_sweeps(run, styles),
        any_flops=any(b.flop_rate for b in run.benchmarks),
        any_peak=any(b.peak_fraction for b in run.benchmarks),
        changes=changes,
        earlier=earlier,
        threshold=threshold,
        regressions=[(b, changes[b.key]) for s in sizes for b in s["benches"]
                     if b.key in changes and changes[b.key].verdict == "regression"],
        unmatched=sum(1 for b in run.benchmarks if b.key not in changes),
        same_machine=same_machine,
        compile_series=sorted({b.series for b in compiled}),
        compile_sizes=compile_sizes,
        compile_table=compile_table,
    )


def _fingerprint(run: Run) -> tuple:
    cpu = run.machine.get("cpu", {}) if isinstance(run.machine.get("cpu"), dict) else {}
    return (run.machine.get("node"), cpu.get("brand_raw"), cpu.get("count"), run.machine.get("release"))
