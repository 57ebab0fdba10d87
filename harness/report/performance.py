"""The performance page, from pytest-benchmark's saved JSON (`pytest --benchmark-json=PATH`, or the
merged JSON of the benchmark suite).

Each benchmark describes itself in `benchmark.extra_info`; the keys read here are the ones the forward
benchmarks record (harness.bench.run_forward), with LSTMSpec's names for the sizes:

  backend, device, dtype        required: what ran ("torch", "cuda", "float32")
  batch, steps, input_size,     the size; num_layers (1), bidirectional (false) and proj_size (0) when
  hidden_size                   not the default. Without a size a benchmark is listed under its group.
  sweep                         "steps" or "batch": a point of that sweep (charted against it, log-log)
  precision_flags.precision     the precision mode ("exact" when absent)
  flops                         floating-point operations of one timed call -> FLOP/s = flops / median
  peak_flops_per_s              the device's measured peak FLOP/s in that dtype -> fraction of peak
  first_call_s                  the first call (compilation included), kept out of the timed rounds:
                                shown apart, with prepare_s (building the model) beside it
  variant, default_variant      which way of running the forward was timed (Keras: "tf.function", "jax.jit",
                                "no_grad", ... or "eager") and whether it is the one users run: part of the
                                series name, backend[variant]
  timed, kernel                 what one timed call covers and the path that ran (cuDNN, fused op, generic
                                loop): listed per series under "What each series times"
  environment, precision_flags, versions and settings (dicts): the environment table, per backend
  threads
  any other scalar              shown in the tooltip of the benchmark's row (runtime, kernel, timed, ...)

The JSON's top-level "lstm_harness": {"not_run": [...]} (benchmarks that could not run, with status and
reason) is listed too. Throughput is batch x steps / median: time steps of one sequence per second.

Comparison with an earlier run: benchmarks are matched by (series, size, sweep), or by pytest name when
they have no size. A benchmark is a REGRESSION when its median is more than REGRESSION_THRESHOLD (10%)
slower than the earlier median AND the two interquartile ranges do not overlap (this run's first
quartile is above the earlier third quartile), so a noisy round cannot raise it alone; an IMPROVEMENT is
the mirror. A change past the threshold whose ranges overlap is NOISY (shown, not counted); the rest
UNCHANGED. Runs on different hosts are compared with a warning on the page.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..results import UNKNOWN_MACHINE, DuplicateResult
from . import charts, page

REGRESSION_THRESHOLD = 0.10
REQUIRED = ("backend", "device", "dtype")
SIZE_KEYS = ("batch", "steps", "input_size", "hidden_size")
SWEEP_AXES = ("steps", "batch")


@dataclass(frozen=True, order=True)
class Size:
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    proj_size: int
    batch: int
    steps: int

    @property
    def label(self) -> str:
        return " · ".join(self.parts())

    def parts(self, without: str = "") -> list[str]:
        parts = {"batch": f"batch {self.batch}", "steps": f"{self.steps} steps", "input_size": f"input {self.input_size}",
                 "hidden_size": f"hidden {self.hidden_size}",
                 "num_layers": f"{self.num_layers} layers" if self.num_layers != 1 else "",
                 "bidirectional": "bidirectional" if self.bidirectional else "",
                 "proj_size": f"proj {self.proj_size}" if self.proj_size else ""}
        return [text for key, text in parts.items() if text and key != without]

    def without(self, axis: str) -> tuple:
        return tuple(v for k, v in vars(self).items() if k != axis)


@dataclass
class Bench:
    name: str
    fullname: str
    group: str
    info: dict[str, Any]
    stats: dict[str, float]
    size: Size | None
    machine: str = ""  # the machine it ran on (the label its file was given, or the file's host)
    show_machine: bool = False  # part of the series name: set when a page holds several machines
    source: str = ""  # the file it came from

    @property
    def precision(self) -> str:
        return (self.info.get("precision_flags") or {}).get("precision", "exact")

    @property
    def series(self) -> str:
        """backend[variant] device dtype [precision]: one row, bar or line in every table and chart."""
        i = self.info
        variant = f"[{i['variant']}]" if i.get("variant") else ""
        return (f"{i['backend']}{variant} {i['device']} {i['dtype']}" + ("" if self.precision == "exact" else f" {self.precision}")
                + (f" @{self.machine}" if self.show_machine else ""))

    @property
    def sweep(self) -> str:
        return self.info.get("sweep") or "" if self.size else ""

    @property
    def size_label(self) -> str:
        return self.size.label if self.size else (self.group or "ungrouped")

    @property
    def key(self) -> tuple:
        return (self.series, self.size, self.sweep) if self.size else (self.fullname,)

    median = property(lambda self: self.stats["median"])
    q1 = property(lambda self: self.stats["q1"])
    q3 = property(lambda self: self.stats["q3"])
    iqr = property(lambda self: self.stats["iqr"])
    stddev = property(lambda self: self.stats["stddev"])
    rounds = property(lambda self: self.stats["rounds"])
    first_call = property(lambda self: self.info.get("first_call_s"))
    foreign_cores = property(lambda self: self.info.get("foreign_cpu_cores"))  # harness.machine_load
    busy = property(lambda self: bool(self.info.get("busy")))

    @property
    def throughput(self) -> float | None:
        return self.size.batch * self.size.steps / self.median if self.size and self.median > 0 else None

    @property
    def flop_rate(self) -> float | None:
        return self.info["flops"] / self.median if self.info.get("flops") and self.median > 0 else None

    @property
    def peak_fraction(self) -> float | None:
        rate = self.flop_rate
        return rate / self.info["peak_flops_per_s"] if rate and self.info.get("peak_flops_per_s") else None

    @property
    def tooltip(self) -> str:
        scalars = [f"{k}={v}" for k, v in sorted(self.info.items()) if not isinstance(v, (dict, list))]
        return f"{self.fullname} (machine {self.machine}, {self.source})\n" + ", ".join(scalars)


@dataclass
class Source:
    """One benchmark file of a page: the machine it labels, where it is, when it ran and on what."""
    machine: str
    path: str
    datetime: str
    machine_info: dict[str, Any]
    commit: dict[str, Any]
    benchmarks: int

    @property
    def host(self) -> str:
        info = self.machine_info
        cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
        cuda = (info.get("lstm_harness") or {}).get("cuda")
        parts = [info.get("node") or "", " ".join(str(v) for v in (info.get("system"), info.get("release")) if v),
                 " · ".join(str(v) for v in (cpu.get("brand_raw"), f"{cpu['count']} CPUs" if cpu.get("count") else "") if v)]
        if isinstance(cuda, dict) and cuda.get("devices"):
            parts.append(", ".join(map(str, cuda["devices"])) if isinstance(cuda["devices"], list) else str(cuda["devices"]))
        return " · ".join(p for p in parts if p) or "not recorded"

    @property
    def commit_text(self) -> str:
        c = self.commit
        return (f"{c['id'][:12]}{' (dirty)' if c.get('dirty') else ''}{' on ' + c['branch'] if c.get('branch') else ''}"
                if c.get("id") else "")


@dataclass
class Run:
    benchmarks: list[Bench]
    machine: dict[str, Any] = field(default_factory=dict)
    commit: dict[str, Any] = field(default_factory=dict)
    datetime: str = ""
    version: str = ""
    source: str = ""
    not_run: list[dict[str, Any]] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)

    @property
    def machines(self) -> list[str]:
        return list(dict.fromkeys(s.machine for s in self.sources))


def _bench(raw: dict[str, Any], where: str) -> Bench:
    info = raw.get("extra_info") or {}
    missing = [k for k in REQUIRED if k not in info]
    if missing:
        raise ValueError(f"{where}: benchmark {raw.get('fullname', raw.get('name'))!r} has no extra_info "
                         f"{', '.join(missing)}; every benchmark must name {', '.join(REQUIRED)} "
                         f"(extra_info has {sorted(info)})")
    if info.get("sweep") and info["sweep"] not in SWEEP_AXES:
        raise ValueError(f"{where}: benchmark {raw.get('fullname')!r}: extra_info sweep must be one of "
                         f"{SWEEP_AXES} or empty, got {info['sweep']!r}")
    size = None
    if all(k in info for k in SIZE_KEYS):
        size = Size(int(info["input_size"]), int(info["hidden_size"]), int(info.get("num_layers", 1)),
                    bool(info.get("bidirectional", False)), int(info.get("proj_size", 0) or 0),
                    int(info["batch"]), int(info["steps"]))
    stats = raw.get("stats") or {}
    for k in ("median", "q1", "q3", "iqr", "stddev", "rounds"):
        if k not in stats:
            raise ValueError(f"{where}: benchmark {raw.get('fullname')!r} stats lack {k!r}: not pytest-benchmark JSON?")
    return Bench(raw.get("name", ""), raw.get("fullname", raw.get("name", "")), raw.get("group") or "", info,
                 {k: v for k, v in stats.items() if k != "data"}, size)


def machine_of(data: dict[str, Any]) -> str:
    """The machine a benchmark file ran on: the label it was run with (--machine), else its host name."""
    info = data.get("machine_info") or {}
    return str((info.get("lstm_harness") or {}).get("machine") or info.get("node") or UNKNOWN_MACHINE)


def parse(data: dict[str, Any], source: str = "", machine: str = "") -> Run:
    """One pytest-benchmark JSON; `machine` labels it (default: machine_of the file)."""
    if not isinstance(data, dict) or "benchmarks" not in data:
        raise ValueError(f"{source or 'benchmark JSON'}: expected pytest-benchmark JSON with a 'benchmarks' list, "
                         f"got {type(data).__name__} with keys {sorted(data) if isinstance(data, dict) else '-'}")
    machine = machine or machine_of(data)
    benches = [_bench(b, source) for b in data["benchmarks"]]
    for b in benches:
        b.machine, b.source = machine, source
    info, commit, when = data.get("machine_info") or {}, data.get("commit_info") or {}, data.get("datetime") or ""
    not_run = [{**n, "machine": machine} for n in (data.get("lstm_harness") or {}).get("not_run") or []]
    run = Run(benches, info, commit, when, data.get("version") or "", source, not_run,
              [Source(machine, source, when, info, commit, len(benches))])
    _refuse_duplicates(run)
    return run


def load_run(path: str | Path, machine: str = "") -> Run:
    with open(path) as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:  # named, not a bare "Expecting value: line 1 column 1"
            raise ValueError(f"{path}: not JSON, so not pytest-benchmark JSON ({exc})") from exc
    return parse(data, str(path), machine)


def load_runs(sources: Sequence[tuple[str, str | Path]]) -> Run:
    """Several benchmark files as one run, (label, path) each: a label names the machine of the file ("" takes
    the machine the file records). With more than one machine every series names its machine. The same
    benchmark twice from one machine is refused, naming both files."""
    runs = [load_run(path, label) for label, path in sources]
    if not runs:
        raise ValueError("load_runs: no benchmark file given")
    first = runs[0]
    run = Run([b for r in runs for b in r.benchmarks], first.machine, first.commit, first.datetime, first.version,
              ", ".join(r.source for r in runs), [n for r in runs for n in r.not_run], [s for r in runs for s in r.sources])
    _refuse_duplicates(run)
    for b in run.benchmarks:
        b.show_machine = len(run.machines) > 1
    return run


def _refuse_duplicates(run: Run) -> None:
    seen: dict[tuple, Bench] = {}
    for b in run.benchmarks:
        key = (b.machine, *b.key)
        if key in seen:
            raise DuplicateResult(f"the same benchmark twice from machine {b.machine!r}: {seen[key].fullname} in "
                                  f"{seen[key].source or 'the file'} and {b.fullname} in {b.source or 'the file'}. One "
                                  f"result per benchmark and machine: if these files come from different machines, "
                                  f"label them (--bench-json LABEL=PATH)")
        seen[key] = b


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


# Lists longer than this (cpu flags) say little on a page.
_MAX_LIST = 8
_CPU_KEYS = ("brand_raw", "arch", "count", "hz_actual_friendly")


def _flatten(value: Any, key: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        items = value.items() if key != "cpu" else ((k, value[k]) for k in _CPU_KEYS if k in value)
        return [row for k, v in items for row in _flatten(v, f"{key}.{k}" if key else str(k))]
    if isinstance(value, list):
        return [(key, ", ".join(map(str, value)))] if len(value) <= _MAX_LIST and not any(
            isinstance(v, (dict, list)) for v in value) else []
    return [(key, str(value))] if value not in (None, "") else []


# Keys that are the host's whoever recorded them.
HOST_KEYS = ("python", "platform", "precision")


def _machine_entries(info: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, key, value) of a file's machine_info: pytest-benchmark's own keys (the host's), then what the
    harness recorded under lstm_harness, unprefixed (precision flags by framework, each backend's environment)."""
    ours = info.get("lstm_harness") if isinstance(info.get("lstm_harness"), dict) else {}
    rows = [("", k, v) for k, v in _flatten({k: v for k, v in info.items() if k != "lstm_harness"})]
    for key, value in ours.items():
        if key == "backends" and isinstance(value, dict):
            rows += [(name, k, v) for name, entry in value.items() if isinstance(entry, dict)
                     for k, v in _flatten({"runtime": entry.get("runtime"), **(entry.get("environment") or {})})]
        elif key == "precision" and isinstance(value, dict):
            rows += [("", k, v) for k, v in _flatten(value)]
        else:
            rows += [("", k, v) for k, v in _flatten(value, key)]
    return rows


def environment(run: Run) -> list[page.MachineEnv]:
    """Per machine: its host (pytest-benchmark's machine_info, the commit, when it ran), then what each backend
    recorded with its benchmarks (versions, precision flags, threads), grouped by framework."""
    entries = []
    for src in run.sources:
        entries += [(src.machine, who, k, v) for who, k, v in _machine_entries(src.machine_info)]
        if src.commit_text:
            entries.append((src.machine, "", "commit", src.commit_text))
        entries.append((src.machine, "", "benchmark run", page.when(src.datetime)))
    entries += [(b.machine, b.info["backend"], k, v) for b in run.benchmarks
                for value in b.info.values() if isinstance(value, dict) for k, v in _flatten(value)]
    return page.env_by_machine(entries, HOST_KEYS)


def _sweeps(run: Run, styles) -> list[dict[str, Any]]:
    """Time against steps and against batch: one chart and table per device, dtype and other sizes."""
    groups: dict[tuple, list[Bench]] = defaultdict(list)
    for b in run.benchmarks:
        if b.sweep:
            groups[(SWEEP_AXES.index(b.sweep), b.info["device"], b.info["dtype"], b.size.without(b.sweep))].append(b)
    for b in run.benchmarks:  # a standard size that lies on a sweep is that sweep's point (bench times it once)
        if not b.sweep and b.size is not None:
            for axis in SWEEP_AXES:
                key = (SWEEP_AXES.index(axis), b.info["device"], b.info["dtype"], b.size.without(axis))
                if key in groups and all(getattr(o.size, axis) != getattr(b.size, axis) or o.series != b.series
                                         for o in groups[key]):
                    groups[key].append(b)
    out = []
    for (axis_index, device, dtype, _), benches in sorted(groups.items(), key=lambda kv: kv[0][:3]):
        axis = SWEEP_AXES[axis_index]
        xs = sorted({getattr(b.size, axis) for b in benches})
        series: dict[str, tuple[list, list, list, list]] = {}
        medians: dict[tuple[str, int], float] = {}
        for b in sorted(benches, key=lambda b: (b.series, getattr(b.size, axis))):
            s = series.setdefault(b.series, ([], [], [], []))
            for lst, v in zip(s, (getattr(b.size, axis), b.median, b.q1, b.q3)):
                lst.append(v)
            medians[(b.series, getattr(b.size, axis))] = b.median
        title = f"time against {axis} · {device} {dtype} · " + " · ".join(benches[0].size.parts(without=axis))
        out.append({"title": title, "axis": axis, "xs": xs, "series": list(series), "medians": medians,
                    "chart": charts.lines(series, styles, xlabel=axis)})
    return out


def _timed(run: Run) -> list[dict[str, Any]]:
    """Per series: its variant (the default, what users run, or a labelled alternative), what one timed call
    covers and the path that ran (every distinct value, where sizes differ)."""
    rows: dict[str, dict[str, Any]] = {}
    for b in sorted(run.benchmarks, key=lambda b: b.series):
        row = rows.setdefault(b.series, {"series": b.series, "variant": b.info.get("variant") or "",
                                         "default": b.info.get("default_variant", True), "timed": [], "kernel": []})
        for key in ("timed", "kernel"):
            value = b.info.get(key)
            if value and value not in row[key]:
                row[key].append(value)
    return list(rows.values())


def _not_run(run: Run) -> list[dict[str, Any]]:
    """The benchmarks that could not run, one row per (backend, device, dtype, status, reason)."""
    counts = Counter((n.get("machine", ""), n.get("backend", "?"), n.get("device", "?"), n.get("dtype", "?"),
                      n.get("status", "?"), n.get("reason", "")) for n in run.not_run)
    return [{"machine": m, "backend": b, "device": d, "dtype": t, "status": s, "reason": r, "count": c}
            for (m, b, d, t, s, r), c in counts.items()]


def build_performance(run: Run, earlier: Run | None = None, *, threshold: float = REGRESSION_THRESHOLD) -> str:
    """The performance page as one self-contained HTML string."""
    if not run.benchmarks:
        raise ValueError(f"{run.source or 'benchmark run'}: no benchmarks to report")
    styles = charts.palette(sorted({b.series for b in run.benchmarks}))
    by_size: dict[str, list[Bench]] = defaultdict(list)
    for b in sorted((b for b in run.benchmarks if not b.sweep),
                    key=lambda b: (b.size is None, b.size or Size(0, 0, 0, False, 0, 0, 0), b.group)):
        by_size[b.size_label].append(b)
    sizes = []
    for label, benches in by_size.items():
        benches.sort(key=lambda b: b.median)
        chart = charts.bars([b.series for b in benches], [b.median for b in benches], [b.q1 for b in benches],
                            [b.q3 for b in benches], [styles[b.series][0] for b in benches])
        sizes.append({"label": label, "benches": benches, "fastest": benches[0].median, "chart": chart})
    changes = compare_runs(run, earlier, threshold) if earlier else {}
    timed_first = [b for s in sizes for b in s["benches"] if b.first_call is not None]
    return page.render(
        "performance.html.j2",
        title="LSTM forward-pass performance",
        source=run.source,
        run=run,
        machines=environment(run),
        counts={"benchmarks": len(run.benchmarks), "series": len({b.series for b in run.benchmarks}),
                "sizes": len(sizes), "sweeps": sum(1 for b in run.benchmarks if b.sweep)},
        sizes=sizes,
        charts_palette=styles,
        sweeps=_sweeps(run, styles),
        any_flops=any(b.flop_rate for b in run.benchmarks),
        any_peak=any(b.peak_fraction for b in run.benchmarks),
        changes=changes,
        earlier=earlier,
        threshold=threshold,
        regressions=[(b, c) for b in run.benchmarks if (c := changes.get(b.key)) and c.verdict == "regression"],
        unmatched=sum(1 for b in run.benchmarks if b.key not in changes),
        same_machine=earlier is None or _host(earlier.machine) in {_host(src.machine_info) for src in run.sources},
        first_series=sorted({b.series for b in timed_first}),
        first_sizes=list(dict.fromkeys(b.size_label for b in timed_first)),
        first_calls={(b.series, b.size_label): b for b in timed_first},
        not_run=_not_run(run),
        timed=_timed(run),
        busy=[b for b in run.benchmarks if b.busy],
        any_load=any(b.foreign_cores is not None for b in run.benchmarks),
    )


def _host(info: dict[str, Any]) -> tuple:
    cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    return (info.get("node"), cpu.get("brand_raw"), cpu.get("count"), info.get("release"))
