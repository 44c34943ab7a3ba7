"""Status lines for the slow steps (fitting, batched search)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import Progress

# Seconds between the lines that say a long step is still running, when stderr is not a terminal.
HEARTBEAT_SECONDS = 5.0


@contextlib.contextmanager
def status(description: str, *, enabled: bool = True) -> Iterator[None]:
    """Report that the block runs, on stderr (when ``enabled``): for one long jitted call, which
    has no steps to count. On a terminal, a spinner; otherwise (piped, CI, nohup) a line when it
    starts, one every ``HEARTBEAT_SECONDS`` while it runs, and one when it ends, so that a log
    shows that the job is alive."""
    if not enabled:
        yield
        return
    if sys.stderr.isatty():
        with Console(stderr=True).status(description):
            yield
        return
    stream, started, stop = sys.stderr, time.monotonic(), threading.Event()
    print(f"{description} ...", file=stream, flush=True)

    def heartbeat():
        while not stop.wait(HEARTBEAT_SECONDS):
            print(f"{description}: running for {time.monotonic() - started:.0f} s", file=stream, flush=True)

    thread = threading.Thread(target=heartbeat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        print(f"{description}: done in {time.monotonic() - started:.1f} s", file=stream, flush=True)


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
