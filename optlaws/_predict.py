"""Predict a loss curve for a run, with an uncertainty band from the fit."""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ._curves import DIVERGENCE_RATIO
from ._io import write_csv
from ._model import AbstractLossModel
from ._precision import array_module, float64, in_float64
from ._run import Run, as_run, name_of
from ._schedules import Schedule
from ._uncertainty import DEFAULT_NUM_SAMPLES, ParameterUncertainty

__all__ = ["Prediction", "predict"]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Predicted expected loss of a run.

    Attributes:
        steps: the steps predicted.
        loss: expected loss after that many updates (``inf`` once the run is predicted to diverge).
        lr: learning rate at those steps (of the last update for the final step).
        name: the schedule's name.
        loss_low, loss_high: the uncertainty band (``predict(..., band=0.9)``), else ``None``.
        extrapolations: the run's settings that lie far outside the fitted runs', in words
            (also warned); empty when the run is like the fitted ones or the model has no fit.
    """

    steps: np.ndarray
    loss: np.ndarray
    lr: np.ndarray
    name: str
    loss_low: np.ndarray | None = None
    loss_high: np.ndarray | None = None
    extrapolations: tuple[str, ...] = ()

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])

    @property
    def diverged_at(self) -> int | None:
        """First step from which the predicted loss is not finite (:func:`first_blow_up`), or ``None``."""
        first = int(first_blow_up(self.loss))
        return int(self.steps[first]) if first >= 0 else None

    def to_csv(self, path) -> None:
        """Write columns ``step,lr,loss`` (and ``loss_low,loss_high`` with a band) to a file or an
        open text stream."""
        band = {} if self.loss_low is None else {"loss_low": self.loss_low, "loss_high": self.loss_high}
        write_csv(path, self.steps, self.loss, self.lr, **band)


def first_blow_up(losses, last=None):
    """Index of the first point whose loss is not finite or exceeds ``DIVERGENCE_RATIO`` times its
    running minimum (the rule for observed curves), or ``-1``; traceable, for batched checks.
    With ``last``, the points after it (a padded run's steps past its own end) hold its loss.

    A loss that is not finite before a finite one is not a blow-up: a law's power law in the LR
    area is infinite until the run has moved (a warmup from zero), and a diverged run never
    comes back."""
    xp = array_module(losses, last)
    if last is not None:
        losses = xp.where(xp.arange(losses.shape[0]) <= last, losses, losses[last])
    finite = xp.isfinite(losses) & (losses > 0)
    cummin, cummax = (jax.lax.cummin, jax.lax.cummax) if xp is jnp else (np.minimum.accumulate, np.maximum.accumulate)
    running_min = cummin(xp.where(finite, losses, xp.inf))
    finite_from_here = cummax(finite[::-1].astype(int))[::-1] > 0
    blown = ~finite_from_here | (losses > DIVERGENCE_RATIO * running_min)
    return xp.where(blown.any(), xp.argmax(blown), -1)


def divergence_checks(totals, count: int) -> tuple[tuple[int, ...], np.ndarray]:
    """Steps at which a batch of runs of ``totals`` steps is checked for divergence: ``count``
    evenly spaced up to the longest, and every run's last step; with each run's last index."""
    totals = np.asarray(totals)
    checks = np.unique(np.concatenate([np.linspace(1, totals.max(), count).astype(int), totals]))
    return tuple(int(s) for s in checks), np.searchsorted(checks, totals)


def model_and_uncertainty(model, uncertainty: ParameterUncertainty | None):
    """``(model, uncertainty)`` from a loss model or a fit (:class:`FitResult`, :class:`Fitted`),
    whose own uncertainty serves unless ``uncertainty`` is given."""
    if isinstance(model, AbstractLossModel):
        return model, uncertainty
    if not isinstance(getattr(model, "model", None), AbstractLossModel):
        raise TypeError(f"`model` must be a loss model or a fit, got {type(model).__name__}.")
    return model.model, uncertainty if uncertainty is not None else getattr(model, "uncertainty", None)


# A setting more than this factor outside the fitted runs' values is an extrapolation.
EXTRAPOLATION_FACTOR = 3.0


def extrapolations(fit, *, peak_lr=(), horizon=(), batch_size=()) -> list[str]:
    """What lies more than ``EXTRAPOLATION_FACTOR`` outside the runs ``fit`` was fitted to (a
    :class:`FitResult` or FITTED.json; a bare model says nothing), in words, each also warned:
    a peak LR or batch size either way, a horizon (last step) beyond the longest fitted one."""
    ranges = getattr(fit, "ranges", {})
    found = []
    for name, label, values, both_ways in (("peak_lr", "peak LR", peak_lr, True), ("horizon", "horizon", horizon, False),
                                           ("batch_size", "batch size", batch_size, True)):
        values = np.atleast_1d(np.asarray(values, dtype=float))
        if name not in ranges or not values.size:
            continue
        low, high = ranges[name]
        ratio = np.maximum(values / high, low / values if both_ways else 0.0)
        if np.max(ratio) > EXTRAPOLATION_FACTOR:
            worst = values[np.argmax(ratio)]
            found.append(f"{label} {worst:g} is far outside the fitted runs' {label}s ({low:g} to {high:g}): "
                         "the prediction extrapolates the model")
    for message in found:
        warnings.warn(message + ".", stacklevel=3)
    return found


def _mark_divergence(loss: np.ndarray) -> np.ndarray:
    """``inf`` from the first step where the loss blows up (:func:`first_blow_up`)."""
    first = int(first_blow_up(loss))
    if first >= 0:
        loss = loss.copy()
        loss[first:] = np.inf
    return loss


def default_steps(total: int, every: int | None = None) -> np.ndarray:
    """``every`` steps (default: about 500 points) up to and including ``total``."""
    every = every or max(1, total // 500)
    return np.union1d(np.arange(every, total, every), [total])


def predict(
    model,
    run: Run | Schedule | np.ndarray,
    *,
    steps=None,
    every: int | None = None,
    band: float | None = None,
    uncertainty: ParameterUncertainty | None = None,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
    name: str | None = None,
) -> Prediction:
    """Predict the expected loss of ``run`` under ``model`` (in float64).

    Args:
        model: a loss model, or a fit (:class:`FitResult`, or a FITTED.json read by
            :func:`load_fitted`), which also brings its parameter uncertainty.
        run: a :class:`Run`, or a :class:`Schedule` / per-step learning rates (a run whose
            settings take the model's values for unrecorded settings).
        steps: steps to predict (default: every ``every`` steps and the last one).
        every: spacing of the default steps.
        band: with a probability such as ``0.9``, add the central band of that probability
            (``loss_low``, ``loss_high``) from the fit's parameter uncertainty and model
            discrepancy (:class:`ParameterUncertainty`).
        uncertainty: the parameter uncertainty for ``band`` (default: the fit's).
        num_samples: parameter draws for the band.
        seed: seed of the draws.
        name: the prediction's name (default: the schedule's).

    Example:
        >>> result = optlaws.fit(optlaws.AdamModel(), curves)  # doctest: +SKIP
        >>> pred = optlaws.predict(result, optlaws.wsd(3e-4, 24000, warmup=2160), band=0.9)  # doctest: +SKIP
        >>> pred.final_loss, pred.loss_low[-1], pred.loss_high[-1]  # doctest: +SKIP
    """
    name = name_of(run, name)
    run = as_run(run)
    outside = extrapolations(model, peak_lr=float(np.max(np.asarray(run.lr))), horizon=run.total_steps,
                             batch_size=() if run.batch_size is None else float(run.batch_size))
    model, uncertainty = model_and_uncertainty(model, uncertainty)
    if band is not None and uncertainty is None:
        raise ValueError("`band` needs the fit's parameter uncertainty: pass a FitResult or a fitted file "
                         "(optlaws.load_fitted), or `uncertainty=`.")
    total = run.total_steps
    steps = default_steps(total, every) if steps is None else np.asarray(steps, dtype=np.int64)
    lr = np.asarray(run.lr)[np.minimum(steps, total - 1)]  # in the run's own precision: no float64 noise
    with float64():
        model, run = in_float64(model), in_float64(run)
        loss = _mark_divergence(np.asarray(model.loss(run, steps)))
        low = high = None
        if band is not None:
            low, high = in_float64(uncertainty).band(model, run, steps, level=band,
                                                     num_samples=num_samples, key=seed)
    return Prediction(steps=steps, loss=loss, lr=lr, name=name, loss_low=low, loss_high=high,
                      extrapolations=tuple(outside))
