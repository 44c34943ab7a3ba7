"""Status lines for the slow steps (fitting, batched search)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console


@contextlib.contextmanager
def status(description: str, *, enabled: bool = True) -> Iterator[None]:
    """A spinner with ``description`` on stderr while the block runs (when ``enabled`` and
    stderr is a terminal): for one long jitted call, which has no steps to count."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    with Console(stderr=True).status(description):
        yield
