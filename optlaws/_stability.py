"""Calibrate where training diverges: the sharpest direction of an SDE model, from labelled runs."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._precision import float64, in_float64
from ._predict import divergence_checks, first_blow_up
from ._run import Run, as_run, stack_runs
from ._schedules import Schedule
from ._sde.dynamics import stability_edge
from ._sde.models import AbstractSDEModel

__all__ = ["StabilityFit", "divergence_scores", "fit_stability"]

STABILITY_PARAMETERS = ("sharpness_init", "sharpness_floor", "flattening_rate")
# Points per run at which it is checked for divergence (plus its last step).
CHECKS = 64


@dataclasses.dataclass(frozen=True)
class StabilityFit:
    """A model calibrated on which runs diverged.

    Attributes:
        model: the model with the fitted ``sharpness_init``, ``sharpness_floor`` and
            ``flattening_rate``.
        diverged: the labels it was fitted to.
        predicted: the model's verdict on each of those runs.
        precision, recall, f1: of ``predicted`` against ``diverged`` (diverged is positive).
    """

    model: AbstractSDEModel
    diverged: np.ndarray
    predicted: np.ndarray

    @property
    def precision(self) -> float:
        return divergence_scores(self.predicted, self.diverged)[0]

    @property
    def recall(self) -> float:
        return divergence_scores(self.predicted, self.diverged)[1]

    @property
    def f1(self) -> float:
        return divergence_scores(self.predicted, self.diverged)[2]


def divergence_scores(predicted, actual) -> tuple[float, float, float]:
    """Precision, recall and F1 of predicted divergence (``nan`` where undefined)."""
    predicted, actual = np.asarray(predicted, bool), np.asarray(actual, bool)
    hits = np.sum(predicted & actual)
    precision = hits / np.sum(predicted) if predicted.any() else float("nan")
    recall = hits / np.sum(actual) if actual.any() else float("nan")
    f1 = 2 * hits / (np.sum(predicted) + np.sum(actual)) if (predicted.any() or actual.any()) else float("nan")
    return float(precision), float(recall), float(f1)


@eqx.filter_jit
def _verdicts(model, thetas, runs: Run, steps, last):
    """Diverged or not, for every stability parameter set (axis 0) and run (axis 1); each run is
    judged at ``steps`` up to its own last one (index ``last``)."""
    def one(theta):
        candidate = eqx.tree_at(lambda m: (m.sharpness_init, m.sharpness_floor, m.flattening_rate), model,
                                tuple(theta))
        return jax.vmap(lambda run, i: first_blow_up(candidate.loss(run, steps), i) >= 0)(runs, last)

    return jax.lax.map(one, thetas)


def fit_stability(
    model: AbstractSDEModel,
    runs: Sequence[Run | Schedule],
    diverged: Sequence[bool],
    *,
    grid_size: int = 12,
) -> StabilityFit:
    """Fit the sharpest direction of ``model`` (``sharpness_init``, ``sharpness_floor``,
    ``flattening_rate``) to runs labelled diverged or not: the point of a log-spaced grid
    (``grid_size`` per parameter) that misclassifies the fewest runs, among tied points the one
    nearest (in log space) to their centre; then the same on a grid one coarse step around it.

    The coarse sharpness grids span the critical sharpness of the runs' peak steps, ``2 (1 + mu)
    / alpha``, over a factor 10 either way; the rate spans ``1e-4`` to ``1`` per step. The rest of
    the model (its landscape) is used as given: calibrate it on stable curves first (``fit``).

    Args:
        model: an :class:`~optlaws.AdamModel` or :class:`~optlaws.SGDModel`.
        runs: the runs (or schedules), with their settings.
        diverged: for each run, whether it diverged.
        grid_size: grid points per parameter.

    Returns:
        A :class:`StabilityFit`.
    """
    if not isinstance(model, AbstractSDEModel):
        raise TypeError(f"`model` must be an SDE model (AdamModel, SGDModel), got {type(model).__name__}.")
    runs = [model.resolve(as_run(r)) for r in runs]
    diverged = np.asarray(diverged, dtype=bool)
    if len(runs) != diverged.shape[0] or diverged.ndim != 1:
        raise ValueError(f"`diverged` needs one label per run: {len(runs)} runs, {diverged.shape} labels.")
    if not diverged.any() or diverged.all():
        raise ValueError("`diverged` must hold both diverged and stable runs: one kind alone does not "
                         "locate the edge.")
    if grid_size < 2:
        raise ValueError(f"`grid_size` must be at least 2, got {grid_size}.")
    with float64():
        model = in_float64(model)
        peaks = np.array([float(np.max(np.asarray(r.lr))) for r in runs])
        alphas = np.array([float(model._heavy_ball(lr * model._batch_lr_factor(r.batch_size)
                                                   / jnp.sqrt(model.norm_init), r.momentum)[0])
                           for lr, r in zip(peaks, runs)])
        critical = np.array([float(stability_edge(r.momentum)) for r in runs]) / alphas
        steps, last = divergence_checks([r.total_steps for r in runs], CHECKS)
        last = jnp.asarray(last)
        stacked = stack_runs(runs)

        def search(low, high):
            """The best point of a log-spaced grid over [low, high] per parameter, and its verdicts."""
            axes = [np.geomspace(lo, hi, grid_size) for lo, hi in zip(low, high)]
            thetas = np.array(list(itertools.product(*axes)))
            verdicts = np.asarray(_verdicts(model, jnp.asarray(thetas), stacked, steps, last))
            errors = np.sum(verdicts != diverged[None, :], axis=1)
            tied = np.flatnonzero(errors == errors.min())
            logs = np.log(thetas[tied])
            best = tied[np.argmin(np.sum((logs - logs.mean(0)) ** 2, axis=1))]
            return thetas[best], verdicts[best], [np.log(hi / lo) / (grid_size - 1) for lo, hi in zip(low, high)]

        # Coarse grid, then a grid of the same size spanning one coarse step around its best point.
        low = np.array([critical.min() / 10, critical.min() / 10, 1e-4])
        high = np.array([critical.max() * 10, critical.max() * 10, 1.0])
        theta, predicted, widths = search(low, high)
        theta, predicted, _ = search(theta * np.exp(-np.array(widths)), theta * np.exp(widths))
        fitted = model.replace(**dict(zip(STABILITY_PARAMETERS, map(float, theta))))
    return StabilityFit(fitted, diverged, predicted)
