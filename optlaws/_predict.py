"""Predict a loss curve for a schedule."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ._curves import DIVERGENCE_RATIO
from ._io import write_csv
from ._model import AbstractLossModel, in_float64
from ._schedules import Schedule, from_array

__all__ = ["Prediction", "predict"]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Predicted expected loss of a schedule.

    Attributes:
        steps: the steps predicted.
        loss: expected loss after that many updates (``inf`` once the run is predicted to diverge).
        lr: learning rate at those steps (of the last update for the final step).
        name: the schedule's name.
    """

    steps: np.ndarray
    loss: np.ndarray
    lr: np.ndarray
    name: str

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])

    @property
    def diverged_at(self) -> int | None:
        """First step whose predicted loss is not finite, or ``None``."""
        bad = ~np.isfinite(self.loss)
        return int(self.steps[np.argmax(bad)]) if bad.any() else None

    def to_csv(self, path) -> None:
        """Write columns ``step,lr,loss``."""
        write_csv(path, self.steps, self.loss, self.lr)


def _mark_divergence(loss: np.ndarray) -> np.ndarray:
    """``inf`` from the first step where the loss is not finite or blows up past
    ``DIVERGENCE_RATIO`` times its running minimum (the definition used for observed curves)."""
    finite = np.isfinite(loss) & (loss > 0)
    running_min = np.minimum.accumulate(np.where(finite, loss, np.inf))
    blown = ~finite | (loss > DIVERGENCE_RATIO * running_min)
    if blown.any():
        loss = loss.copy()
        loss[np.argmax(blown):] = np.inf
    return loss


def default_steps(total: int, every: int | None = None) -> np.ndarray:
    """``every`` steps (default: about 500 points) up to and including ``total``."""
    every = every or max(1, total // 500)
    return np.union1d(np.arange(every, total, every), [total])


def predict(
    model: AbstractLossModel,
    schedule: Schedule | np.ndarray,
    *,
    steps=None,
    every: int | None = None,
) -> Prediction:
    """Predict the expected loss of ``schedule`` under ``model`` (in float64).

    Args:
        model: a fitted model.
        schedule: a :class:`Schedule` or per-step learning rates.
        steps: steps to predict (default: every ``every`` steps and the last one).
        every: spacing of the default steps.

    Example:
        >>> pred = optlaws.predict(fitted.model, optlaws.wsd(3e-4, 24000, warmup=2160))  # doctest: +SKIP
        >>> pred.final_loss  # doctest: +SKIP
    """
    if not isinstance(schedule, Schedule):
        schedule = from_array(schedule)
    total = schedule.total_steps
    steps = default_steps(total, every) if steps is None else np.asarray(steps, dtype=np.int64)
    with jax.enable_x64(True):
        loss = np.asarray(in_float64(model).loss(np.asarray(schedule.lr, dtype=np.float64), steps))
    loss = _mark_divergence(loss)
    lr = np.asarray(schedule.lr)[np.minimum(steps, total - 1)]
    return Prediction(steps=steps, loss=loss, lr=lr, name=schedule.name)
