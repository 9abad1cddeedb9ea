"""Progress on every long step: a live bar on a terminal while it runs, then one line saying how it went.

Without a terminal (CI logs, pipes) nothing is redrawn: each step prints its closing line only, and
callers may print a line per epoch with `Step.log_plain`. All steps of one console share one rich
`Progress` (rich allows one live display per console), so a step may open inside another (a
training phase inside an export that needed the model).
"""

from __future__ import annotations

import time
import weakref
from contextlib import contextmanager
from typing import Iterator, Optional

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

REFRESH_SECONDS = 0.1  # updates closer together than this are dropped (sub-millisecond latency runs)

_STEPS: "weakref.WeakKeyDictionary[Console, Steps]" = weakref.WeakKeyDictionary()


def steps(console: Console) -> "Steps":
    """The step tracker of `console` (one per console)."""
    if console not in _STEPS:
        _STEPS[console] = Steps(console)
    return _STEPS[console]


class Step:
    def __init__(self, owner: "Steps", text: str, task_id):
        self.owner, self.text, self.task_id = owner, text, task_id
        self.result = ""  # shown on the closing line: "98.05% accuracy", "3 epochs, best ..."
        self._last = 0.0

    @property
    def live(self) -> bool:
        return self.task_id is not None

    def update(self, fraction: Optional[float] = None, detail: Optional[str] = None,
               description: Optional[str] = None, force: bool = False) -> None:
        """Move the bar to `fraction` (0..1) with an optional detail text; cheap to call often."""
        if self.task_id is None:
            return
        now = time.perf_counter()
        if not force and now - self._last < REFRESH_SECONDS and (fraction is None or fraction < 1):
            return
        self._last = now
        fields = {}
        if fraction is not None:
            fields["completed"] = max(0.0, min(1.0, fraction))
        if detail is not None:
            fields["detail"] = escape(detail)
        if description is not None:
            fields["description"] = escape(description)
        self.owner.progress.update(self.task_id, **fields)

    def log_plain(self, line: str) -> None:
        """A line for logs without a terminal (one per epoch); on a terminal the bar says it."""
        if not self.owner.console.is_terminal:
            self.owner.console.print(line, markup=False, highlight=False)


class Steps:
    def __init__(self, console: Console):
        self.console = console
        self.progress: Optional[Progress] = None

    @contextmanager
    def step(self, text: str, indeterminate: bool = False) -> Iterator[Step]:
        """`text` names the step ("int8: exporting (tflite int8)"); the closing line repeats it with
        ✓ or ✗, the step's `result` and the seconds it took."""
        t0 = time.perf_counter()
        task_id = None
        if self.console.is_terminal:
            if self.progress is None:
                self.progress = Progress(
                    SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=20),
                    TaskProgressColumn(), TimeElapsedColumn(), TextColumn("[dim]{task.fields[detail]}"),
                    console=self.console, transient=True)
                self.progress.start()
            task_id = self.progress.add_task(escape(text), total=None if indeterminate else 1.0, detail="")
        step = Step(self, text, task_id)
        ok = False
        try:
            yield step
            ok = True
        finally:
            if task_id is not None:
                self.progress.remove_task(task_id)
                if not self.progress.tasks:
                    self.progress.stop()
                    self.progress = None
            seconds = time.perf_counter() - t0
            mark = "[green]✓[/]" if ok else "[red]✗[/]"
            result = f": {escape(step.result)}" if step.result else ""
            self.console.print(f"{mark} {escape(text)}{result} [dim]{_duration(seconds)}[/]", highlight=False)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"
