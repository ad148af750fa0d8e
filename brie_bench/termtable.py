"""Terminal tables that read well in 80 columns: no word is ever split across lines.

rich shrinks a table that is too wide by narrowing its widest columns, and a
column narrower than its longest word folds that word (``candida`` / ``te``) or
cuts it (``reproducib…``). `fit` instead gives every column at least its
longest word and hands the remaining width to the columns whose text can wrap
between words. Tables are built for this: short column names, a legend and
the long notes printed once under the table (`notes`), not repeated in cells.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from brie_bench.textsafe import safe_text


#: Words up to this long are never split; longer ones (URLs, paths) may fold when nothing else fits.
LONG_WORD = 24


def new_table(title: str | None = None, **kwargs: Any) -> Table:
    """A compact table: a rule under the header, one space of padding, no outer frame."""
    options: dict[str, Any] = {"box": box.SIMPLE_HEAD, "padding": (0, 1), "pad_edge": False,
                               "collapse_padding": True, "show_edge": False, "title_justify": "left"}
    options.update(kwargs)
    return Table(title=safe_text(title) if title else None, **options)


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    return str(cell) if isinstance(cell, str) else ""


def _cell_lengths(texts: Iterable[str]) -> tuple[int, int]:
    """(longest word, longest line) over `texts`, in terminal cells."""
    from rich.cells import cell_len

    word = line = 1
    for text in texts:
        for part in text.splitlines() or [""]:
            line = max(line, cell_len(part))
            for w in part.split():
                word = max(word, cell_len(w))
    return word, line


def column_texts(table: Table) -> list[list[str]]:
    """The plain text of each column: header first, then every cell."""
    return [[_plain(c.header), *(_plain(cell) for cell in c._cells)] for c in table.columns]


def fit(table: Table, width: int) -> Table:
    """Fix column widths so the table fits `width` cells without splitting any word (when it can).

    Each column gets its longest word; what is left goes to columns whose
    longest line is longer than that, in proportion to what they lack. If even
    the longest words do not fit, words longer than `LONG_WORD` (URLs, paths)
    are the ones that fold; if that is not enough, rich's own shrinking takes over.
    """
    texts = column_texts(table)
    if not texts:
        return table
    lengths = [_cell_lengths(t) for t in texts]
    padding = sum(table._get_padding_width(i) for i in range(len(texts)))
    available = width - padding - table._extra_width
    if sum(line for _, line in lengths) <= available:
        return table  # everything fits on one line per cell
    widths = [word for word, _ in lengths]
    while sum(widths) > available and max(widths) > LONG_WORD:  # only words longer than LONG_WORD may fold
        i = widths.index(max(widths))
        widths[i] = max(LONG_WORD, widths[i] - (sum(widths) - available))
    spare = available - sum(widths)
    if spare < 0:
        return table
    lacking = [line - word for word, line in lengths]
    total_lack = sum(lacking)
    for i, lack in enumerate(lacking):
        widths[i] += (spare * lack) // total_lack if total_lack else 0
    left = available - sum(widths)
    for i in sorted(range(len(widths)), key=lambda k: -lacking[k]):  # rounding remainder
        if left <= 0:
            break
        if widths[i] < lengths[i][1]:
            widths[i] += 1
            left -= 1
    for column, w in zip(table.columns, widths):
        column.width = w
        column.overflow = "fold"
    return table


def print_table(console: Console, table: Table) -> None:
    """Print `table` fitted to the console's width, its title as a line of its own above it.

    (rich wraps a title to the table's width, which breaks a short table's title in two.)
    """
    title, table.title = table.title, None
    if title:
        console.print(title if isinstance(title, Text) else safe_text(title), style="bold")
    console.print(fit(table, console.width))


class Notes:
    """Long cell notes, printed once under a table and referred to by a short mark in the cells."""

    MARKS = "¹²³⁴⁵⁶⁷⁸⁹"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str | None) -> str:
        """The mark for `text` ("" for no note); the same text always gets the same mark."""
        if not text:
            return ""
        if text not in self.texts:
            self.texts.append(text)
        i = self.texts.index(text)
        return self.MARKS[i] if i < len(self.MARKS) else f"({i + 1})"

    def lines(self) -> list[str]:
        return [f"{self.mark(t)} {t}" for t in self.texts]

    def print(self, console: Console, style: str | None = None) -> None:
        for line in self.lines():  # one note a line; a note wider than the console wraps between its words
            console.print(safe_text(line, style=style))


def pack(items: Sequence[str], width: int, *, sep: str = " · ", hang: str = "") -> list[str]:
    """`items` joined by `sep` into lines of at most `width` cells, breaking only between whole items.

    Why: rich wraps at any space, so "inv invalid, never counted" could end a line at "inv",
    a URL could leave its "->" label behind, and "total $0.8002" could lose its figure to the
    next line. Continuation lines start with `hang`; the separator never starts or ends a line.
    An item wider than `width` on its own gets a line of its own (and rich wraps it by words).
    """
    from rich.cells import cell_len

    lines: list[str] = []
    current = ""
    for item in items:
        if not item:
            continue
        lead = hang if lines else ""
        joined = f"{current}{sep}{item}" if current else item
        if current and cell_len(lead + joined) > width:
            lines.append(lead + current)
            current = item
        else:
            current = joined
    if current:
        lines.append((hang if lines else "") + current)
    return lines


def print_items(console: Console, items: Sequence[str], *, sep: str = " · ", hang: str = "",
                style: str | None = None) -> None:
    """Print `items` packed by `pack` to the console's width: lines break only between whole items."""
    for line in pack(items, console.width, sep=sep, hang=hang):
        console.print(safe_text(line, style=style))


def legend(console: Console, items: Sequence[tuple[str, str]]) -> None:
    """Lines naming each short column, "W won · L lost · ...", broken only between whole entries."""
    print_items(console, [f"{short} {meaning}" for short, meaning in items], style="dim")
