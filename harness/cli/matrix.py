"""`python -m harness run`'s terminal output, made to fit the terminal (shutil.get_terminal_size, so COLUMNS too).

The matrix is one table per (device, dtype): cases down, backends across, the backends wrapped into as many
blocks as the width needs (each block repeats the case column). A cell is its status and, where the case ran,
the worst error as a fraction of the tolerance in two significant digits: 0.59, 1.3, 4e-3 (never "0.00"). The
reasons and messages under it are wrapped to the same width; a reproduce command is broken with shell line
continuations, so it still pastes.
"""

from __future__ import annotations

import shutil
import textwrap
from collections import Counter

from harness.results import ERROR, FAIL, PASS, STATUSES

CELL = {"pass": "ok", "fail": "FAIL", "unsupported": "-", "not installed": "n/i", "skipped": "skip", "error": "ERROR"}
LEGEND = ("ok N / FAIL N: the worst error as a fraction of the tolerance (<= 1 passes); - unsupported, "
          "n/i not installed, skip: no such device here (reasons below)")
GAP = "  "


def width() -> int:
    return shutil.get_terminal_size().columns


def ratio_text(ratio: float) -> str:
    """Two significant digits, never rounded to zero: 0.59, 1, 12, 4e-3, 1.3e2."""
    if ratio == 0:
        return "0"
    if 0.1 <= ratio < 100:
        return f"{ratio:.2g}"
    mantissa, exponent = f"{ratio:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def cell_text(r) -> str:
    text = CELL[r.status]
    if r.status in (PASS, FAIL) and r.worst_ratio is not None:
        text += " " + ratio_text(r.worst_ratio)
    return text


def blocks(names: list[str], widths: dict[str, int], room: int) -> list[list[str]]:
    """The backends in order, cut into runs whose columns fit `room` characters (at least one per block)."""
    out: list[list[str]] = [[]]
    used = 0
    for name in names:
        need = len(GAP) + widths[name]
        if out[-1] and used + need > room:
            out.append([])
            used = 0
        out[-1].append(name)
        used += need
    return out


def matrix_lines(results, cases, names, devices, dtypes, mode, columns: int) -> list[str]:
    cell = {(r.case, r.backend, r.device, r.dtype): r for r in results}
    texts = {key: cell_text(r) for key, r in cell.items()}
    case_width = max(len("case"), *(len(c.name) for c in cases))
    widths = {n: max([len(n)] + [len(t) for (_, b, _, _), t in texts.items() if b == n]) for n in names}
    lines = []
    for device in devices:
        for dtype in dtypes:
            lines += ["", f"{dtype} on {device}, precision {mode}"]
            for i, block in enumerate(blocks(names, widths, columns - case_width)):
                if i:
                    lines.append("")
                lines.append(f"{'case':<{case_width}}" + "".join(f"{GAP}{n:<{widths[n]}}" for n in block).rstrip())
                for case in cases:
                    row = "".join(f"{GAP}{texts[(case.name, n, device, dtype)]:<{widths[n]}}" for n in block)
                    lines.append(f"{case.name:<{case_width}}{row}".rstrip())
    return lines


def wrap(text: str, columns: int, indent: str = "", more: str = "    ") -> list[str]:
    """Each line of `text` wrapped to `columns` (words kept whole); a "Reproduce: cmd" line as continued shell."""
    out = []
    for line in text.splitlines() or [""]:
        if line.startswith("Reproduce: "):
            out += ["Reproduce:"] + command_lines(line.removeprefix("Reproduce: "), columns)
            continue
        lead = indent + line[:len(line) - len(line.lstrip())]
        out += textwrap.wrap(line.strip(), columns, initial_indent=lead, subsequent_indent=lead + more,
                             break_long_words=False, break_on_hyphens=False) or [lead]
    return out


def command_lines(command: str, columns: int, indent: str = "  ") -> list[str]:
    """A shell command as lines of at most `columns`, joined by backslash continuations."""
    words = textwrap.wrap(command, columns - len(indent) - 2, break_long_words=False, break_on_hyphens=False)
    return [f"{indent}{w} \\" for w in words[:-1]] + [f"{indent}{words[-1]}"]


def summary_lines(results, columns: int) -> list[str]:
    """The counts, every reason a cell did not run (once per backend and reason), then each failure in full."""
    counts = Counter(r.status for r in results)
    lines = wrap(LEGEND, columns) + [", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])]
    reasons = sorted({(r.backend, r.status, r.reason) for r in results if r.status not in (PASS, FAIL, ERROR)})
    for backend, status, reason in reasons:
        lines += wrap(f"{backend}: {status}: {reason}", columns, indent="  ")
    for r in results:
        if r.status in (FAIL, ERROR):
            lines += [""] + wrap(f"{r.status.upper()} {r.case} {r.backend} {r.device} {r.dtype}:\n{r.reason}", columns)
    return lines
