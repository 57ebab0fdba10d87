"""Progress on the terminal for the long commands (run, bench, measure, gpu, convert --check), drawn by rich.

One line: what is running, a bar, done/total, the current item (backend, case, ...) and the elapsed time. It is
drawn only when stdout is a terminal and vanishes when the work is done, so a log, a pipe or CI sees only the
command's own output.
"""

from __future__ import annotations

import contextlib
from typing import Iterator


class Steps:
    """What a command tells the progress line: the item it starts (`now`) and each one it finishes (`advance`)."""

    def __init__(self, progress=None, task=None):
        self._progress, self._task = progress, task

    def now(self, item: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, item=item, refresh=True)

    def advance(self, count: int = 1) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=count, refresh=True)


@contextlib.contextmanager
def steps(what: str, total: int | None) -> Iterator[Steps]:
    """A progress line for `total` steps of `what` (None: unknown, a spinner), or nothing when stdout is no terminal."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn)

    console = Console()
    if not console.is_terminal:
        yield Steps()
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[item]}")]
    with Progress(*columns, console=console, transient=True) as progress:
        yield Steps(progress, progress.add_task(what, total=total, item=""))
