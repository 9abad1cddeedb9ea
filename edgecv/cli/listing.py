"""Listing tables (`targets`, `tasks`, `passes`, `formats`, `backbones`) that never cut what a user
types: every column is at least as wide as its longest word, so names, metric names and settings
wrap between words, never inside one; where that cannot fit the width, each row is stacked as a
block of `column  value` lines. Piped output gets the terminal's 80 columns (or $COLUMNS), not a
wide table to scroll sideways."""
# lazy imports: a command loads only what it runs, so `edgecv --help` and light commands start fast

from __future__ import annotations

from typing import Optional, Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

GAP = 3  # a column's padding and rule in the table below


def listing_console() -> Console:
    """stdout at the terminal's width; piped, $COLUMNS or 80 (rich's default)."""
    return Console()


def _plain(cell: str) -> str:
    return Text.from_markup(cell).plain


def longest_word(cells: Sequence[str]) -> int:
    return max((len(w) for c in cells for w in _plain(c).split()), default=0)


def longest_line(cells: Sequence[str]) -> int:
    return max((len(line) for c in cells for line in _plain(c).splitlines()), default=0)


PROSE_MIN = 12  # a prose column may fold a long word (a hyphenated phrase) at this width


def print_listing(console: Console, columns: Sequence[str], rows: Sequence[Sequence[str]],
                  title: Optional[str] = None, prose: Sequence[int] = ()) -> None:
    """A table whose columns wrap between words, or stacked blocks when the words cannot fit.
    `prose`: indexes of columns holding sentences (descriptions), whose words may fold."""
    widths = [max(longest_word([h]), longest_word([r[i] for r in rows])) for i, h in enumerate(columns)]
    widths = [min(w, PROSE_MIN) if i in prose else w for i, w in enumerate(widths)]
    spare = console.width - sum(widths) - GAP * len(columns)
    if spare >= 0:
        wanted = [max(longest_line([h] + [r[i] for r in rows]), widths[i]) for i, h in enumerate(columns)]
        for _ in range(spare):  # the room left goes where whole lines would otherwise wrap
            short = max(range(len(columns)), key=lambda i: wanted[i] - widths[i])
            if wanted[short] <= widths[short]:
                break
            widths[short] += 1
        t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
        for i, header in enumerate(columns):
            t.add_column(header, width=widths[i], overflow="fold")
        for r in rows:
            t.add_row(*r)
        console.print(t)
        return
    if title:
        console.print(f"[bold]{title}[/]")
    label = max(len(c) for c in columns[1:]) if len(columns) > 1 else 0
    for r in rows:
        console.print(f"[bold]{r[0]}[/]")
        for header, cell in zip(columns[1:], r[1:]):
            grid = Table.grid(padding=(0, 1))
            grid.add_column(width=2)
            grid.add_column(width=label, style="dim")
            grid.add_column(overflow="fold")
            grid.add_row("", header, cell)
            console.print(grid)
