"""Status lines for the slow steps (fitting, batched search)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import Progress


@contextlib.contextmanager
def status(description: str, *, enabled: bool = True) -> Iterator[None]:
    """A spinner with ``description`` on stderr while the block runs (when ``enabled`` and
    stderr is a terminal): for one long jitted call, which has no steps to count."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    with Console(stderr=True).status(description):
        yield


@contextlib.contextmanager
def progress(total: int, description: str, *, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """Count ``total`` steps of a slow loop on stderr; yields ``advance()``. On a terminal, a
    progress bar; otherwise (piped, CI, nohup) a line at every tenth of the way, so a log shows
    that the job is alive."""
    if not enabled:
        yield lambda: None
        return
    if sys.stderr.isatty():
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)
        return
    done = 0
    step = max(1, total // 10)

    def advance():
        nonlocal done
        done += 1
        if done % step == 0 or done == total:
            print(f"{description}: {done}/{total}", file=sys.stderr, flush=True)

    yield advance
