"""Transfer of the optimal peak LR across horizons: from a sweep of real runs, or from a model."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ._model import AbstractLossModel
from ._precision import float64, in_float64
from ._rank import final_losses
from ._run import Run, stack_runs
from ._schedules import parse_schedule
from ._uncertainty import ParameterUncertainty

__all__ = ["LRTransfer", "Optimum", "family_run", "fit_lr_transfer", "model_optima", "read_sweep", "sweep_optima"]

# Relative spread of a final loss between seeds, assumed when a horizon's sweep has too few points
# to estimate its own noise (fewer than 5: a quadratic leaves under 2 degrees of freedom).
DEFAULT_LOSS_NOISE = 1e-3
SWEEP_COLUMNS = ("horizon", "peak_lr", "final_loss")


@dataclasses.dataclass(frozen=True)
class Optimum:
    """The optimal peak LR at one horizon, with its central ``level`` interval.

    Attributes:
        horizon: total steps of the runs.
        lr_opt: the optimal peak LR.
        lr_low, lr_high: its interval (both ``lr_opt`` where no uncertainty was given: the
            command line prints "none" then).
        final_loss: the (fitted or predicted) final loss at ``lr_opt``.
        log_sd: standard deviation of ``log lr_opt``.
    """

    horizon: int
    lr_opt: float
    lr_low: float
    lr_high: float
    final_loss: float
    log_sd: float

    def as_dict(self) -> dict:
        return {"horizon": self.horizon, "lr_opt": self.lr_opt, "lr_low": self.lr_low,
                "lr_high": self.lr_high, "final_loss": self.final_loss}


def _normal_quantile(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"`level` must be a probability in (0, 1), got {level!r}.")
    return math.sqrt(2.0) * float(jax.scipy.special.erfinv(level))


def _vertex(lrs: np.ndarray, losses: np.ndarray, noise: float | None, *, where: str) -> tuple[float, float, float]:
    r"""Vertex of the least-squares quadratic ``loss = a x^2 + b x + c`` in ``x = log lr``:
    ``(x*, sd(x*), loss(x*))``, ``x* = -b / (2a)``, its variance by the delta method from the
    coefficients' covariance ``s^2 (X^T X)^{-1}`` (``s`` from the residuals with 2 or more degrees
    of freedom, else ``noise`` times the mean loss)."""
    x = np.log(lrs)
    design = np.stack([x**2, x, np.ones_like(x)], axis=1)
    coef, *_ = np.linalg.lstsq(design, losses, rcond=None)
    a, b, c = coef
    if not a > 0:
        raise ValueError(f"{where}: the final losses have no minimum in log LR (the quadratic through them "
                         "opens downward); sweep more peak LRs around the best one.")
    x_opt = -b / (2 * a)
    if not x.min() <= x_opt <= x.max():
        side = "below" if x_opt < x.min() else "above"
        raise ValueError(f"{where}: the optimum ({math.exp(x_opt):.3g}) lies {side} the swept range "
                         f"[{lrs.min():.3g}, {lrs.max():.3g}]; sweep peak LRs further {side} it.")
    dof = x.size - 3
    scale = (np.sum((losses - design @ coef) ** 2) / dof if dof >= 2 else (noise * np.mean(losses)) ** 2)
    cov = scale * np.linalg.pinv(design.T @ design)[:2, :2]
    gradient = np.array([b / (2 * a**2), -1 / (2 * a)])
    return float(x_opt), float(np.sqrt(max(gradient @ cov @ gradient, 0.0))), float(c - b**2 / (4 * a))


def sweep_optima(horizons, peak_lrs, final_losses, *, level: float = 0.9,
                 loss_noise: float = DEFAULT_LOSS_NOISE) -> list[Optimum]:
    """The optimal peak LR at each horizon of a sweep: the vertex of a quadratic in log LR
    through that horizon's final losses, with its ``level`` interval.

    Args:
        horizons, peak_lrs, final_losses: one entry per run.
        level: probability of the interval.
        loss_noise: relative seed-to-seed spread of a final loss, used where a horizon has fewer
            than 5 runs (its residuals cannot say).

    Raises:
        ValueError: a horizon with fewer than 3 distinct peak LRs, or whose optimum lies outside
            its swept range (no extrapolation).
    """
    z = _normal_quantile(level)
    horizons, lrs, losses = (np.asarray(v, dtype=float) for v in (horizons, peak_lrs, final_losses))
    if not horizons.shape == lrs.shape == losses.shape or horizons.ndim != 1:
        raise ValueError("sweep: `horizons`, `peak_lrs` and `final_losses` must be 1-D and of one length.")
    for name, values in (("horizon", horizons), ("peak_lr", lrs), ("final_loss", losses)):
        if not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError(f"sweep: every `{name}` must be finite and positive.")
    optima = []
    for horizon in np.unique(horizons):
        here = horizons == horizon
        if np.unique(lrs[here]).size < 3:
            raise ValueError(f"sweep: horizon {horizon:g} has {np.unique(lrs[here]).size} distinct peak LR(s); "
                             "the optimum needs at least 3.")
        x_opt, sd, loss = _vertex(lrs[here], losses[here], loss_noise, where=f"horizon {horizon:g}")
        optima.append(Optimum(int(horizon), math.exp(x_opt), math.exp(x_opt - z * sd), math.exp(x_opt + z * sd),
                              loss, sd))
    return optima


@dataclasses.dataclass(frozen=True)
class LRTransfer:
    r"""The power law of the optimal peak LR in the horizon, ``LR*(D) = C D^{-beta}``, fitted by
    weighted least squares on ``log LR*`` (weights: the optima's own variances).

    Attributes:
        optima: the per-horizon optima it was fitted to.
        log_c, beta: the law's coefficients.
        covariance: covariance of ``(log C, beta)``.
    """

    optima: tuple[Optimum, ...]
    log_c: float
    beta: float
    covariance: np.ndarray

    def predict(self, horizon: float, level: float = 0.9) -> tuple[float, float, float]:
        """``(lr_opt, lr_low, lr_high)`` at ``horizon``: the law and its ``level`` interval."""
        if not (math.isfinite(horizon) and horizon > 0):
            raise ValueError(f"`horizon` must be a positive number of steps, got {horizon!r}.")
        z = _normal_quantile(level)
        basis = np.array([1.0, -math.log(horizon)])
        mean = self.log_c - self.beta * math.log(horizon)
        sd = math.sqrt(max(basis @ self.covariance @ basis, 0.0))
        return math.exp(mean), math.exp(mean - z * sd), math.exp(mean + z * sd)


def fit_lr_transfer(optima: Sequence[Optimum]) -> LRTransfer:
    """Fit ``LR*(D) = C D^-beta`` to optima at two or more horizons (Bjorck et al. 2024 find
    ``beta`` near 0.32 for language models)."""
    optima = tuple(optima)
    if len({o.horizon for o in optima}) < 2:
        raise ValueError("transfer across horizons needs optima at two or more horizons.")
    design = np.stack([np.ones(len(optima)), -np.log([o.horizon for o in optima])], axis=1)
    target = np.log([o.lr_opt for o in optima])
    weights = 1.0 / np.maximum([o.log_sd**2 for o in optima], 1e-12)
    information = design.T @ (weights[:, None] * design)
    covariance = np.linalg.inv(information)
    log_c, beta = covariance @ design.T @ (weights * target)
    dof = len(optima) - 2
    if dof > 0:  # more scatter than the optima's own errors widens the law's interval
        chi2 = float(np.sum(weights * (target - design @ np.array([log_c, beta])) ** 2))
        covariance = covariance * max(chi2 / dof, 1.0)
    return LRTransfer(optima, float(log_c), float(beta), covariance)


def read_sweep(path: str | Path) -> dict[str, np.ndarray]:
    """Read a sweep CSV with columns ``horizon,peak_lr,final_loss`` (others, such as ``batch`` or
    ``params``, are kept); one row per run."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such sweep file: {path}")
    try:
        table = np.genfromtxt(path, delimiter=",", names=True, dtype=float, encoding="utf-8-sig")
    except ValueError as e:
        raise ValueError(f"{path}: not a sweep CSV ({e}).") from None
    names = table.dtype.names or ()
    missing = [c for c in SWEEP_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{path}: sweep CSV needs columns {', '.join(SWEEP_COLUMNS)}; missing {', '.join(missing)} "
                         f"(found: {', '.join(names) or 'none'}).")
    table = np.atleast_1d(table)
    for name in SWEEP_COLUMNS:
        if not np.all(np.isfinite(table[name])):
            raise ValueError(f"{path}: column `{name}` has empty or non-numeric entries.")
    return {name: np.asarray(table[name]) for name in names}


def family_run(family: str, peak: float, horizon: int, **settings) -> Run:
    """The run of a schedule family (a spec without ``peak`` and ``total``) at ``peak`` and ``horizon``."""
    kind, _, args = family.partition(":")
    keys = {item.partition("=")[0].strip() for item in args.split(",") if item.strip()}
    if keys & {"peak", "total"}:
        raise ValueError(f"family {family!r}: leave out `peak` and `total`; the transfer sweeps them.")
    spec = f"{kind}:{args + ',' if args.strip() else ''}peak={float(peak)!r},total={int(horizon)}"
    return Run(parse_schedule(spec), **settings)


def _grid_vertex(grid: np.ndarray, finals: np.ndarray) -> tuple[float, float]:
    """``(log LR*, loss there)`` from a grid of final losses: the vertex of the quadratic through
    the best grid point and its neighbours; ``nan`` at the grid's edge or with no finite loss."""
    finals = np.where(np.isfinite(finals), finals, np.inf)
    best = int(np.argmin(finals))
    if not np.isfinite(finals[best]) or best in (0, grid.size - 1):
        return math.nan, float(finals[best])
    x = np.log(grid[best - 1:best + 2])
    a, b, c = np.polyfit(x, finals[best - 1:best + 2], 2)
    return float(-b / (2 * a)), float(c - b**2 / (4 * a))


def model_optima(
    model: AbstractLossModel,
    family: str,
    horizons: Sequence[int],
    *,
    lrs: Sequence[float] | None = None,
    uncertainty: ParameterUncertainty | None = None,
    level: float = 0.9,
    num_samples: int = 64,
    seed: int = 0,
    **settings,
) -> list[Optimum]:
    """The model's optimal peak LR for a schedule family at each horizon.

    Every (peak LR, horizon) of the grid is one run of ``family`` (a schedule spec without
    ``peak`` and ``total``, such as ``"wsd:warmup=300,decay_frac=0.2,shape=linear,final=0"``);
    its final loss is predicted in one vmapped batch, and ``LR*`` is the vertex of the quadratic
    in log LR through the best grid point and its two neighbours. With ``uncertainty``, the
    interval is the central ``level`` range of ``LR*`` over ``num_samples`` parameter draws
    (the same draws for every horizon).

    Args:
        model: a loss model.
        family: the schedule family.
        horizons: total steps.
        lrs: the peak-LR grid (default: 41 log-spaced values over 300x around the model's
            reference LR, ``reference_lr / 30`` to ``10 reference_lr``).
        uncertainty: the fit's parameter uncertainty, for the interval.
        level, num_samples, seed: the interval's probability, draws and seed.
        **settings: run settings (batch size, weight decay, momentum) of every run.

    Raises:
        ValueError: an optimum at the edge of the grid (widen ``lrs``).
    """
    _normal_quantile(level)
    if lrs is None:
        reference = float(getattr(model, "reference_lr", 1e-3))
        lrs = np.geomspace(reference / 30, 10 * reference, 41)
    grid = np.sort(np.asarray(lrs, dtype=float))
    if grid.size < 3 or not np.all(np.isfinite(grid) & (grid > 0)):
        raise ValueError("`lrs` must hold at least 3 finite positive peak LRs.")
    optima = []
    with float64():
        model = in_float64(model)
        single = jax.tree_util.tree_map(lambda leaf: leaf[None], model)  # a batch of one model
        if uncertainty is not None:
            models = in_float64(uncertainty).sample_models(model, num_samples, seed)
        at_horizon = jnp.zeros(grid.size, dtype=jnp.int32)  # the one step evaluated, for every run
        for horizon in horizons:
            runs = stack_runs([model.resolve(family_run(family, lr, horizon, **settings)) for lr in grid])
            central = np.asarray(final_losses(single, runs, (int(horizon),), at_horizon))[0]
            x_opt, loss = _grid_vertex(grid, central)
            if not math.isfinite(x_opt):
                raise ValueError(f"horizon {horizon}: the predicted optimum is at the edge of the peak-LR grid "
                                 f"[{grid[0]:.3g}, {grid[-1]:.3g}]; widen `lrs`.")
            low = high = x_opt
            sd = 0.0
            if uncertainty is not None:
                drawn = np.asarray(final_losses(models, runs, (int(horizon),), at_horizon))
                x_draws = np.array([_grid_vertex(grid, row)[0] for row in drawn])
                x_draws = x_draws[np.isfinite(x_draws)]
                if x_draws.size:
                    low, high = np.quantile(x_draws, [(1 - level) / 2, (1 + level) / 2])
                    sd = float(np.std(x_draws))
            optima.append(Optimum(int(horizon), math.exp(x_opt), math.exp(min(low, x_opt)),
                                  math.exp(max(high, x_opt)), loss, sd))
    return optima
