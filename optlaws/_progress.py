"""Progress bars for the slow loops (fitting starts, batched search)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import track

T = TypeVar("T")


def progress_bar(items: Iterable[T], description: str, *, enabled: bool = True) -> Iterator[T]:
    """Iterate ``items`` with a progress bar on stderr when ``enabled`` and stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield from items
        return
    yield from track(items, description=description, console=Console(stderr=True), transient=True)
