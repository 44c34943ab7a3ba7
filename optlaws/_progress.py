"""Status lines for the slow steps (fitting, batched search)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

# Seconds before the first line that says a long step is still running, when stderr is not a
# terminal; the wait then doubles up to HEARTBEAT_LONGEST_SECONDS, so that a four-minute fit logs
# seven such lines, not fifty.
HEARTBEAT_SECONDS = 5.0
HEARTBEAT_LONGEST_SECONDS = 60.0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _every(seconds: float, action: Callable[[], None], *, longest: float | None = None) -> Iterator[None]:
    """Call ``action()`` every ``seconds`` (from a thread) while the block runs; with ``longest``,
    the wait doubles after each call, up to ``longest``."""
    stop = threading.Event()

    def beat():
        wait = seconds
        while not stop.wait(wait):
            action()
            if longest is not None:
                wait = min(2 * wait, longest)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def status(description: str, *, enabled: bool = True) -> Iterator[None]:
    """Report that the block runs, on stderr (when ``enabled``): for one long jitted call, which
    has no steps to count. On a terminal, a spinner; otherwise (piped, CI, nohup) a line when it
    starts, one after ``HEARTBEAT_SECONDS`` while it runs and then at doubling intervals (up to
    ``HEARTBEAT_LONGEST_SECONDS``), and one when it ends, so that a log shows that the job is
    alive."""
    if not enabled:
        yield
        return
    if sys.stderr.isatty():
        with Console(stderr=True).status(description):
            yield
        return
    started = time.monotonic()
    _say(f"{description} ...")
    with _every(HEARTBEAT_SECONDS, lambda: _say(f"{description}: running for {time.monotonic() - started:.0f} s"),
                longest=HEARTBEAT_LONGEST_SECONDS):
        yield
    _say(f"{description}: done in {time.monotonic() - started:.1f} s")


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
            _say(f"{description}: {done}/{total}")

    yield advance


class _StepClock:
    """Steps of a compiled loop counted as they happen, and the time they take. The clock starts
    at the first step, so compilation does not count towards the time per step."""

    def __init__(self, bound: int):
        self.bound = bound
        self.done = 0
        self.opened = time.monotonic()
        self.first: float | None = None

    def tick(self) -> None:
        if self.first is None:
            self.first = time.monotonic()
        self.done += 1

    def per_step(self) -> float | None:
        """Seconds per step so far (None until two steps have been taken)."""
        return None if self.done < 2 else (time.monotonic() - self.first) / (self.done - 1)

    def remaining(self) -> str:
        """The time left at most, or ``compiling`` before the steps start."""
        per_step = self.per_step()
        if per_step is None:
            return "compiling"
        return f"at most {max(self.bound - self.done, 0) * per_step:.0f} s left ({per_step:.2g} s per step)"

    def describe(self) -> str:
        return f"step {self.done}/{self.bound}, {time.monotonic() - self.opened:.0f} s, {self.remaining()}"


# The clocks that count_step() advances, innermost last. A compiled loop reports its steps through
# jax.debug.callback(count_step): passing the display into the compiled function instead would
# make every fit compile anew.
_clocks: list[_StepClock] = []


def count_step() -> None:
    """One step of a compiled loop, reported from inside it with ``jax.debug.callback``: advances
    the innermost open :func:`solver_steps` display (nothing when none is open)."""
    if _clocks:
        _clocks[-1].tick()


@contextlib.contextmanager
def solver_steps(description: str, bound: int, *, enabled: bool = True) -> Iterator[None]:
    """Show the progress of a compiled iterative solve whose steps call :func:`count_step`: the
    steps done out of ``bound`` (the most it can take; it may stop early, converged), the time
    per step, measured from the first step (so not counting compilation), and so the time left at
    most. On a terminal, a progress bar; otherwise (piped, CI, nohup) a line when it starts, lines
    at the heartbeat's doubling intervals (see :func:`status`) and one when it ends."""
    if not enabled:
        yield
        return
    clock = _StepClock(bound)
    _clocks.append(clock)
    try:
        if sys.stderr.isatty():
            columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TextColumn("{task.fields[note]}"))
            with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task(description, total=bound, note="compiling")
                with _every(0.2, lambda: bar.update(task, completed=clock.done, note=clock.remaining())):
                    yield
            return
        _say(f"{description} (at most {bound} steps) ...")
        with _every(HEARTBEAT_SECONDS, lambda: _say(f"{description}: {clock.describe()}"),
                    longest=HEARTBEAT_LONGEST_SECONDS):
            yield
        _say(f"{description}: done in {time.monotonic() - clock.opened:.1f} s ({clock.done} steps)")
    finally:
        _clocks.remove(clock)
