"""Text tables: every table the library prints goes through rich, aligned whatever the widths of
its cells (long run names included), as plain text that pipes and logs keep."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table

__all__ = ["text_table"]


def text_table(header: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Sequence[bool] | None = None) -> str:
    """``rows`` of text cells under ``header`` as aligned plain text, columns flagged ``numeric``
    right-aligned (default: every column but the first)."""
    numeric = [i > 0 for i in range(len(header))] if numeric is None else list(numeric)
    table = Table(box=None, header_style="", pad_edge=False, padding=(0, 1))
    for name, right in zip(header, numeric):
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    # A console as wide as any table: a long cell stays on its line, piped or not.
    console = Console(file=io.StringIO(), width=100_000, color_system=None, highlight=False)
    console.print(table)
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines())
