"""How busy the machine was while a benchmark ran: CPU time used by OTHER processes, and the cores this
process may use. A CPU timing taken while other processes were busy is not a result (on 2 cores, torch's
(16, 25, 256, 256) forward measured 3.07 ms on a quiet machine and 122 ms at load average 3.7): each benchmark
records what it shared the machine with, and is flagged `busy` when that was substantial.

    with ForeignCPU() as load:          # around the timed rounds
        ...
    load.foreign_cores                  # other processes' CPU time / wall time, on this process's CPUs

Foreign CPU = the busy time of the CPUs this process may run on (/proc/stat, per CPU: user, nice, system,
irq, softirq, steal) minus this process's own CPU time (getrusage, itself and its reaped children) over the
same interval. Linux only; elsewhere the figures are None with the reason. The kernel counts /proc/stat in
clock ticks (10 ms), so a sample shorter than about a second is coarse: it is enough to tell a quiet machine
from one where another process keeps a core busy.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

# A benchmark is `busy` when other processes used at least this share of the capacity of the cores it may run
# on (2 cores: 0.2 of a core on average over the timed rounds). A quiet 2-core machine measured 0.00-0.03
# cores of foreign CPU (background daemons); one CPU-burning process beside the benchmark adds about 1 core.
BUSY_SHARE = 0.1

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (guest time is inside user)


def _cpu_ticks(cpus: set[int] | None, stat: str = "/proc/stat") -> int | None:
    """Busy clock ticks summed over `cpus` (None: every CPU); None where /proc/stat is not readable."""
    try:
        lines = Path(stat).read_text().splitlines()
    except OSError:
        return None
    total = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        values = [int(v) for v in rest.split()]
        total += sum(values[i] for i in _BUSY_FIELDS if i < len(values))
    return total


def _own_cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cgroup_cpu_limit() -> tuple[float | None, str]:
    """The CPU quota of this process's cgroup in cores (None: no limit), and where it was read."""
    try:
        entries = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None, "no /proc/self/cgroup"
    for entry in entries:  # cgroup v2: "0::/path" -> /sys/fs/cgroup/path/cpu.max = "max 100000" or "200000 100000"
        hierarchy, _, path = entry.split(":", 2)
        if hierarchy == "0":
            cpu_max = Path("/sys/fs/cgroup") / path.lstrip("/") / "cpu.max"
            if cpu_max.is_file():
                quota, period = cpu_max.read_text().split()
                return (None if quota == "max" else int(quota) / int(period)), str(cpu_max)
    for base in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/cpu,cpuacct")):  # cgroup v1
        quota_file = base / "cpu.cfs_quota_us"
        if quota_file.is_file():
            quota = int(quota_file.read_text())
            period = int((base / "cpu.cfs_period_us").read_text())
            return (None if quota < 0 else quota / period), str(quota_file)
    return None, "no cpu controller found"


def cores_available() -> dict[str, object]:
    """The cores this process may use: its CPU affinity, its cgroup's quota, and the smaller of the two."""
    cpus = affinity()
    limit, where = cgroup_cpu_limit()
    counts = [c for c in (len(cpus) if cpus else None, limit) if c is not None]
    return {"cpu_affinity": sorted(cpus) if cpus else None, "cgroup_cpu_quota_cores": limit,
            "cgroup_cpu_quota_from": where, "cores_available": min(counts) if counts else os.cpu_count()}


@dataclass
class ForeignCPU:
    """Context manager: CPU time other processes used on this process's CPUs while the block ran."""

    cpus: set[int] | None = field(default_factory=affinity)
    wall_s: float | None = None
    own_cpu_s: float | None = None
    foreign_cpu_s: float | None = None
    note: str = ""

    def __enter__(self) -> "ForeignCPU":
        self._ticks = _cpu_ticks(self.cpus)
        self._own = _own_cpu_seconds()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_s = time.perf_counter() - self._t0
        ticks = _cpu_ticks(self.cpus)
        self.own_cpu_s = _own_cpu_seconds() - self._own
        if self._ticks is None or ticks is None:
            self.note = "not measured: /proc/stat is not readable here"
            return
        busy_s = (ticks - self._ticks) / os.sysconf("SC_CLK_TCK")
        self.foreign_cpu_s = max(0.0, busy_s - self.own_cpu_s)

    @property
    def capacity(self) -> float:
        """The cores the measurement covers: this process's CPUs (or every CPU)."""
        return float(len(self.cpus)) if self.cpus else float(os.cpu_count() or 1)

    @property
    def foreign_cores(self) -> float | None:
        """Average number of this process's cores other processes kept busy."""
        if self.foreign_cpu_s is None or not self.wall_s:
            return None
        return self.foreign_cpu_s / self.wall_s

    @property
    def busy(self) -> bool | None:
        cores = self.foreign_cores
        return None if cores is None else cores >= BUSY_SHARE * self.capacity

    def record(self) -> dict[str, object]:
        """What goes into a benchmark's extra_info."""
        return {"foreign_cpu_s": self.foreign_cpu_s, "foreign_cpu_cores": self.foreign_cores,
                "own_cpu_s": self.own_cpu_s, "measured_wall_s": self.wall_s, "busy": self.busy,
                "busy_threshold_cores": BUSY_SHARE * self.capacity, **({"load_note": self.note} if self.note else {})}


def sample(seconds: float = 1.0) -> ForeignCPU:
    """Other processes' CPU use over `seconds` while this one sleeps (bench warns before it starts)."""
    with ForeignCPU() as load:
        time.sleep(seconds)
    return load


def describe(load: ForeignCPU) -> str:
    if load.foreign_cores is None:
        return load.note
    return (f"other processes kept {load.foreign_cores:.2f} of this process's {load.capacity:g} cores busy "
            f"(busy from {BUSY_SHARE * load.capacity:.2f})")
