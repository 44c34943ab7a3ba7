"""Observed loss curves: steps, losses and the learning-rate schedule that produced them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._run import Run
from ._schedules import MAX_STEPS, Schedule, from_array

__all__ = ["DivergedRunError", "InvalidCurveError", "LossCurve"]

DIVERGENCE_RATIO = 1.5


class InvalidCurveError(ValueError):
    """A loss curve (or the file it was read from) cannot be used as given."""


class DivergedRunError(InvalidCurveError):
    """The run behind a loss curve diverged; fit only the part before it (``LossCurve.until``)."""


@dataclasses.dataclass(frozen=True)
class LossCurve:
    """A loss curve observed (or predicted) at some training steps, and the run behind it.

    The loss at step ``s`` is the loss after the first ``s`` updates, made with learning rates
    ``run.lr[0 .. s-1]``; observations may be sparse (every N steps) and need not start at 0.

    Attributes:
        steps: strictly increasing integer steps, shape ``(n,)``.
        loss: loss at those steps, finite and positive, shape ``(n,)``.
        run: the :class:`~optlaws.Run` (per-step learning rates and optimizer settings); covers
            at least ``steps[-1]`` updates. A :class:`~optlaws.Schedule` is taken as a run that
            records no settings.
        name: label (the file stem when read from a file).
        metadata: free-form information (source file, optimizer config, ...).
    """

    steps: np.ndarray
    loss: np.ndarray
    run: Run
    name: str = "curve"
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        steps = np.asarray(self.steps)
        loss = np.asarray(self.loss, dtype=float)
        where = f"loss curve {self.name!r}"
        if steps.ndim != 1 or loss.ndim != 1:
            raise InvalidCurveError(f"{where}: `steps` and `loss` must be one-dimensional.")
        if steps.shape != loss.shape:
            raise InvalidCurveError(
                f"{where}: mismatched lengths, {steps.shape[0]} steps but {loss.shape[0]} losses."
            )
        if steps.shape[0] == 0:
            raise InvalidCurveError(f"{where} is empty: no (step, loss) points.")
        if not np.all(np.isfinite(steps.astype(float))) or np.any(steps != np.round(steps)):
            raise InvalidCurveError(f"{where}: steps must be whole numbers.")
        if np.any(np.abs(steps) > MAX_STEPS):
            raise InvalidCurveError(f"{where}: step {np.max(np.abs(steps)):g} is past the maximum of {MAX_STEPS:,}.")
        steps = steps.astype(np.int64)
        if steps[0] < 0:
            raise InvalidCurveError(f"{where}: negative step {steps[0]}.")
        gaps = np.diff(steps)
        if np.any(gaps == 0):
            i = int(np.argmax(gaps == 0))
            raise InvalidCurveError(f"{where}: duplicate step {steps[i]} (rows {i} and {i + 1}).")
        if np.any(gaps < 0):
            i = int(np.argmax(gaps < 0))
            raise InvalidCurveError(
                f"{where}: steps are not sorted: step {steps[i + 1]} (row {i + 1}) comes after {steps[i]}."
            )
        bad = ~np.isfinite(loss)
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidCurveError(f"{where}: loss is {loss[i]} at step {steps[i]} (row {i}).")
        if np.any(loss <= 0):
            i = int(np.argmax(loss <= 0))
            raise InvalidCurveError(
                f"{where}: loss must be positive, got {loss[i]:g} at step {steps[i]}."
            )
        running_min = np.minimum.accumulate(loss)
        blown = loss > DIVERGENCE_RATIO * running_min
        if blown.any():
            i = int(np.argmax(blown))
            raise DivergedRunError(
                f"{where}: the run diverged at step {steps[i]} (loss {loss[i]:.4g}, more than "
                f"{DIVERGENCE_RATIO}x its earlier minimum {running_min[i]:.4g}); use "
                f"curve.until({steps[i] - 1}) to keep the part before it."
            )
        run = Run(self.run) if isinstance(self.run, Schedule) else self.run
        if not isinstance(run, Run):
            raise InvalidCurveError(
                f"{where}: `run` must be an optlaws.Run or Schedule, got {type(run).__name__}."
            )
        if run.total_steps < steps[-1]:
            raise InvalidCurveError(
                f"{where}: the schedule has {run.total_steps} steps but the loss is "
                f"observed up to step {steps[-1]}."
            )
        object.__setattr__(self, "run", run)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "loss", loss)

    @classmethod
    def from_arrays(
        cls,
        steps,
        loss,
        lr,
        *,
        name: str = "curve",
        metadata: Mapping[str, Any] | None = None,
        **settings,
    ) -> LossCurve:
        """A curve from arrays; ``lr`` is a ``Schedule`` or per-step learning rates, ``settings``
        the run's (``batch_size``, ``weight_decay``, ``momentum``). Any fault of the inputs raises
        :class:`InvalidCurveError` naming the curve."""
        try:
            schedule = lr if isinstance(lr, Schedule) else from_array(lr, name=name)
            run = Run(schedule, **settings)
        except (ValueError, TypeError) as e:
            raise InvalidCurveError(f"loss curve {name!r}: {e}") from None
        return cls(np.asarray(steps), np.asarray(loss), run, name, dict(metadata or {}))

    @classmethod
    def from_dataframe(cls, frame, **kwargs) -> LossCurve:
        """A curve from a data frame (pandas, polars) with step, loss and optionally LR columns,
        found by name as in a CSV file; see :func:`~optlaws.read_dataframe` for the options.

        Example:
            >>> import pandas as pd, optlaws
            >>> frame = pd.DataFrame({"_step": [100, 200, 300], "train/loss": [3.1, 2.9, 2.8], "lr": 1e-3})
            >>> optlaws.LossCurve.from_dataframe(frame, name="run").final_loss
            2.8
        """
        from ._io import read_dataframe

        return read_dataframe(frame, **kwargs)

    @property
    def schedule(self) -> Schedule:
        """The run's learning rates as a named :class:`~optlaws.Schedule`."""
        return Schedule(lr=self.run.lr, name=self.name)

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])

    @property
    def lr_at_steps(self) -> np.ndarray:
        """Learning rate of the update that follows each observation (the last one for the end)."""
        lr = np.asarray(self.run.lr)
        return lr[np.minimum(self.steps, lr.shape[0] - 1)]

    def until(self, step: int) -> LossCurve:
        """The part of the curve observed at or before ``step``."""
        keep = self.steps <= step
        if not keep.any():
            raise InvalidCurveError(f"loss curve {self.name!r}: no observation at or before step {step}.")
        return dataclasses.replace(self, steps=self.steps[keep], loss=self.loss[keep])

    def since(self, step: int) -> LossCurve:
        """The part of the curve observed at or after ``step`` (the schedule is kept whole)."""
        keep = self.steps >= step
        if not keep.any():
            raise InvalidCurveError(f"loss curve {self.name!r}: no observation at or after step {step}.")
        return dataclasses.replace(self, steps=self.steps[keep], loss=self.loss[keep])

    def __len__(self) -> int:
        return int(self.steps.shape[0])
