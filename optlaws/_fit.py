"""Calibrate any loss model to observed curves."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from ._curves import InvalidCurveError, LossCurve
from ._metrics import CurveMetrics, curve_metrics
from ._model import AbstractLossModel, in_float64
from ._progress import progress_bar

__all__ = ["FitResult", "fit", "huber"]

DEFAULT_HUBER_DELTA = 1e-3


def huber(residual, delta: float = DEFAULT_HUBER_DELTA):
    """Huber loss ``r^2/2`` for ``|r| < delta``, ``delta (|r| - delta/2)`` beyond."""
    a = jnp.abs(residual)
    return jnp.where(a < delta, 0.5 * residual**2, delta * (a - 0.5 * delta))


def _huber_as_least_squares(residual, delta: float):
    """``psi(r)`` with ``psi^2 / 2 = huber(r)``: Levenberg-Marquardt on ``psi`` minimises Huber."""
    a = jnp.abs(residual)
    tail = jnp.sqrt(2.0 * delta * jnp.maximum(a, delta) - delta**2)
    return jnp.where(a < delta, residual, jnp.sign(residual) * tail)


@dataclasses.dataclass(frozen=True)
class FitResult:
    """A fitted model and what is known about the fit.

    Attributes:
        model: the model at the best parameters.
        free: names of the fitted parameters.
        values: fitted value of every parameter of the model.
        stderr: standard error of each fitted parameter (Laplace approximation: residual variance
            times ``(J^T J)^{-1}``; log-space for positive parameters, mapped back by the delta
            method). Residuals of smoothed curves are correlated, so read these as lower bounds.
        covariance: covariance of the fitted parameters in the fit's coordinates (log for positive).
        objective: the Huber objective ``sum huber(log obs - log pred)`` at the optimum.
        curves: per-curve fit metrics.
        starts: number of starting points tried; ``converged``: how many ended finite.
        seconds: wall time of the fit.
    """

    model: AbstractLossModel
    free: tuple[str, ...]
    values: dict[str, float]
    stderr: dict[str, float]
    covariance: np.ndarray
    objective: float
    curves: tuple[CurveMetrics, ...]
    starts: int
    converged: int
    seconds: float

    def summary(self) -> str:
        """A human-readable table of parameters and per-curve fit quality."""
        lines = [
            f"{type(self.model).__name__} fitted to {len(self.curves)} curve(s) in {self.seconds:.1f}s "
            f"({self.converged}/{self.starts} starts converged), objective {self.objective:.4g}",
            "",
            f"{'parameter':<18} {'value':>12} {'stderr':>12}",
        ]
        for name, value in self.values.items():
            err = f"{self.stderr[name]:.3g}" if name in self.stderr else "fixed"
            lines.append(f"{name:<18} {value:>12.5g} {err:>12}")
        lines += ["", f"{'curve':<28} {'R2':>8} {'mean rel':>9} {'max rel':>9} {'final rel':>9}"]
        for m in self.curves:
            lines.append(
                f"{m.curve:<28} {m.r2:>8.5f} {m.mean_rel_error:>9.3%} "
                f"{m.max_rel_error:>9.3%} {m.final_rel_error:>9.3%}"
            )
        return "\n".join(lines)


def _check_inputs(model, curves, free):
    if not isinstance(model, AbstractLossModel):
        raise TypeError(f"`model` must be an optlaws loss model, got {type(model).__name__}.")
    if isinstance(curves, LossCurve):
        curves = [curves]
    curves = list(curves)
    if not curves:
        raise InvalidCurveError("`curves` is empty: fit needs at least one loss curve.")
    for c in curves:
        if not isinstance(c, LossCurve):
            raise TypeError(f"`curves` must hold LossCurve objects, got {type(c).__name__}.")
    parameters = model.parameters()
    free = tuple(model.default_free if free is None else free)
    unknown = [name for name in free if name not in parameters]
    if unknown:
        raise ValueError(
            f"`free` names unknown parameter(s) {unknown} of {type(model).__name__}; "
            f"it has: {', '.join(parameters)}."
        )
    if not free:
        raise ValueError("`free` is empty: name at least one parameter to fit.")
    n_points = sum(len(c) for c in curves)
    if n_points <= len(free):
        raise InvalidCurveError(
            f"{n_points} observed points cannot determine {len(free)} free parameters."
        )
    return curves, free


def fit(
    model: AbstractLossModel,
    curves: Sequence[LossCurve] | LossCurve,
    *,
    free: Sequence[str] | None = None,
    huber_delta: float = DEFAULT_HUBER_DELTA,
    num_starts: int = 8,
    spread: float = 0.3,
    seed: int = 0,
    max_steps: int = 300,
    progress: bool = True,
) -> FitResult:
    """Fit ``model`` to observed loss curves.

    Minimises ``sum_i huber(log loss_i - log pred_i)`` over all observed points of all curves by
    Levenberg-Marquardt (optimistix) on the equivalent least-squares problem, in float64, from
    ``num_starts`` starting points: the model's :meth:`~AbstractLossModel.initial_guess` and
    random perturbations of it (``spread`` in log space). The whole optimiser loop is jitted.

    Args:
        model: any optlaws loss model; its current values are the fixed parameters.
        curves: one or more :class:`LossCurve`.
        free: parameters to fit (default ``model.default_free``).
        huber_delta: Huber threshold on log-residuals (``1e-3``: 0.1% relative error).
        num_starts: number of starting points.
        spread: standard deviation of the start perturbations in the fit's coordinates.
        seed: seed of the perturbations.
        max_steps: Levenberg-Marquardt iterations per start.
        progress: show a progress bar over the starts.

    Returns:
        A :class:`FitResult`.

    Example:
        >>> curves = [optlaws.load_mpl("100M", n) for n in ("constant_24000", "cosine_24000")]  # doctest: +SKIP
        >>> result = optlaws.fit(optlaws.AdamModel(), curves)  # doctest: +SKIP
        >>> print(result.summary())  # doctest: +SKIP
    """
    curves, free = _check_inputs(model, curves, free)
    if num_starts < 1:
        raise ValueError(f"`num_starts` must be at least 1, got {num_starts}.")
    if not huber_delta > 0:
        raise ValueError(f"`huber_delta` must be positive, got {huber_delta!r}.")
    started = time.perf_counter()
    with jax.enable_x64(True):
        model = in_float64(model)
        center = model.initial_guess(curves)
        parameters = center.parameters()
        specs = [parameters[name] for name in free]
        for name, spec in zip(free, specs):
            value = float(spec.get(center))
            if not np.isfinite(value) or (spec.positive and value <= 0):
                raise ValueError(
                    f"cannot fit `{name}` from its current value {value!r}: set a finite"
                    f"{' positive' if spec.positive else ''} starting value first (model.replace)."
                )
        theta_center = jnp.stack([spec.to_unconstrained(spec.get(center)) for spec in specs])
        data = [(jnp.asarray(c.schedule.lr, dtype=jnp.float64), c.steps, jnp.log(jnp.asarray(c.loss))) for c in curves]

        def build(theta):
            return center.replace(**{n: s.from_unconstrained(t) for n, s, t in zip(free, specs, theta)})

        def residuals(theta):
            m = build(theta)
            parts = []
            for lr, steps, log_obs in data:
                pred = m.loss(lr, steps)
                ok = jnp.isfinite(pred) & (pred > 0)
                parts.append(jnp.where(ok, log_obs - jnp.log(jnp.where(ok, pred, 1.0)), 1.0))
            return jnp.concatenate(parts)

        solver = optx.LevenbergMarquardt(rtol=1e-8, atol=1e-10)

        @jax.jit
        def solve(theta0):
            sol = optx.least_squares(
                lambda t, _: _huber_as_least_squares(residuals(t), huber_delta),
                solver,
                theta0,
                max_steps=max_steps,
                throw=False,
            )
            return sol.value, jnp.sum(huber(residuals(sol.value), huber_delta))

        rng = np.random.default_rng(seed)
        starts = [theta_center] + [
            theta_center + spread * jnp.asarray(rng.standard_normal(theta_center.shape))
            for _ in range(num_starts - 1)
        ]
        best_theta, best_objective, converged = None, np.inf, 0
        for theta0 in progress_bar(starts, "fitting", enabled=progress and num_starts > 1):
            theta, objective = solve(theta0)
            objective = float(objective)
            if np.isfinite(objective) and np.all(np.isfinite(np.asarray(theta))):
                converged += 1
                if objective < best_objective:
                    best_theta, best_objective = theta, objective
        if best_theta is None:
            raise RuntimeError(
                f"fit failed: no start of {num_starts} reached a finite objective; "
                "check the curves' schedules or give the model a closer starting point."
            )
        fitted = build(best_theta)
        jac = np.asarray(jax.jacfwd(residuals)(best_theta))
        res = np.asarray(residuals(best_theta))
        dof = max(res.size - len(free), 1)
        covariance = float(res @ res / dof) * np.linalg.pinv(jac.T @ jac)
        values = fitted.values()
        stderr = {}
        for i, (name, spec) in enumerate(zip(free, specs)):
            scale = values[name] if spec.positive else 1.0
            stderr[name] = float(abs(scale) * np.sqrt(max(covariance[i, i], 0.0)))
        reports = tuple(
            curve_metrics(c.name, np.asarray(fitted.loss(lr, steps)), c.loss)
            for c, (lr, steps, _) in zip(curves, data)
        )
    return FitResult(
        model=fitted,
        free=free,
        values=values,
        stderr=stderr,
        covariance=covariance,
        objective=best_objective,
        curves=reports,
        starts=num_starts,
        converged=converged,
        seconds=time.perf_counter() - started,
    )
