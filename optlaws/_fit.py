"""Calibrate any loss model to observed curves whose runs may differ in every setting."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float, Int

from ._curves import InvalidCurveError, LossCurve
from ._metrics import CurveMetrics, curve_metrics, metrics_table, relative_errors
from ._model import AbstractLossModel, ParameterMap
from ._precision import float64, in_float64
from ._progress import count_step, solver_steps
from ._run import Run, stack_runs
from ._tables import text_table
from ._uncertainty import ParameterUncertainty

__all__ = ["FitProblem", "FitResult", "FitWarning", "fit", "huber"]

DEFAULT_HUBER_DELTA = 1e-3
# Multi-start: every start takes SCREEN_STEPS solver steps together; the best REFINED go on to
# convergence. A vmapped solve runs until its slowest member stops, so refining all starts would
# cost max_steps for each of them. On the 29 fits of the benchmarks (MPL; the 124M runs per peak
# LR and jointly, with nine free sets), every start reached the same optimum by 30 steps, and the
# best two after 10 steps ended where the best two after 30 did (objectives within 2e-8 relative)
# in 5-90% less time.
SCREEN_STEPS = 10
REFINED = 2
# A fit whose mean training error exceeds this is reported as poor (FitWarning; CLI --strict).
# A parameter whose standard error exceeds its value (a 1-sigma interval reaching 0) is not determined.
UNDETERMINED_SPREAD = 1.0
POOR_FIT_ERROR = 0.01
COVARIANCES = ("curves", "newey-west", "laplace")
# The models describe training after its fast initial drop, not the first steps (a tracker's
# step-0 loss, the first few hundred steps): a fit whose worst errors, above EARLY_MISS, lie in
# the first EARLY_FRACTION of training (of the steps up to a curve's last) says to start the
# curves later. Of training, not of the curve: a run resumed at step 20,000 has no fast drop. The
# errors are judged after a running median over EARLY_WINDOW points, so that a systematic miss
# counts and a noisy point does not.
EARLY_FRACTION = 0.1
EARLY_MISS = 0.01
EARLY_WINDOW = 5
# Model discrepancy (the error of the model itself on a run it was not fitted to) is estimated by
# leaving each curve out; with fewer curves than this, the rest leaves the model undetermined (one
# MPL curve fixes neither the noise floor nor the mobility: the estimate comes out at 4-110%).
MIN_CURVES_FOR_DISCREPANCY = 3
# With two, each curve's later half (by steps) is left out instead: a forecast of its final loss
# from the rest. On the MPL 2-curve fits that gives 0.18% / 0.10% (held-out RMS 0.14% / 0.15%;
# benchmarks/uncertainty.py). Unless a later half holds nearly all the information on some
# direction of the parameters (leverage above MAX_LEAVE_OUT_LEVERAGE): a constant run beside a WSD
# run whose cooldown is in its later half has 1.0000, and the estimate comes out at 10-450%; the
# MPL pairs have 0.69-0.99. With one curve neither is determined (its later half comes out at
# 0.04-0.33% on the MPL curves, against held-out errors of 0.1-19%). The discrepancy assumed then:
# the median of the leave-one-curve-out estimates of the 124M sweep per peak LR (0.16%, 0.22%,
# 0.19%), in log loss.
MAX_LEAVE_OUT_LEVERAGE = 0.995
PRIOR_DISCREPANCY = 0.0019


class FitWarning(UserWarning):
    """A fit ended without converging, or far from its own training data."""


def huber(residual, delta: float = DEFAULT_HUBER_DELTA):
    """Huber loss ``r^2/2`` for ``|r| < delta``, ``delta (|r| - delta/2)`` beyond."""
    a = jnp.abs(residual)
    return jnp.where(a < delta, 0.5 * residual**2, delta * (a - 0.5 * delta))


def _huber_as_least_squares(residual, delta: float):
    """``psi(r)`` with ``psi^2 / 2 = huber(r)``: Levenberg-Marquardt on ``psi`` minimises Huber."""
    a = jnp.abs(residual)
    tail = jnp.sqrt(2.0 * delta * jnp.maximum(a, delta) - delta**2)
    return jnp.where(a < delta, residual, jnp.sign(residual) * tail)


def _observed_part(run: Run, curve: LossCurve) -> Run:
    """The run up to the curve's last observation: later updates change nothing observed."""
    return run.replace(lr=run.lr[: max(int(curve.steps[-1]), 1)])


class FitProblem(eqx.Module):
    r"""The fit's objective over a set of curves, built once and reused (fit, covariance,
    bootstrap, profiling, sampling).

    All runs, cut at their last observation, are stacked into one batch (shorter runs hold their
    last LR; that changes nothing they observe) and evaluated by one ``jax.vmap`` at the union of
    the observed steps; each curve's points are then gathered from it. So one compiled program
    serves any number of curves, and a problem of the same shape reuses it.

        residual_i = log observed_i - log predicted_i,    objective = sum_i huber(residual_i)

    Attributes:
        base: the model whose non-free parameters and reference scales are kept.
        parameters: the free parameters and their coordinates.
        runs: the curves' runs, stacked and resolved by ``base`` (leading axis: the curve).
        steps: the union of the observed steps.
        curve_index, step_index: for each observed point, its curve and its place in ``steps``.
        log_observed: the observed log losses.
        huber_delta: the Huber threshold on log residuals.
    """

    base: AbstractLossModel
    parameters: ParameterMap
    runs: Run
    steps: tuple[int, ...] = eqx.field(static=True)
    curve_index: Int[Array, " n"]
    step_index: Int[Array, " n"]
    log_observed: Float[Array, " n"]
    huber_delta: float = eqx.field(static=True)

    @classmethod
    def build(cls, base: AbstractLossModel, free: Sequence[str], curves: Sequence[LossCurve],
              huber_delta: float = DEFAULT_HUBER_DELTA) -> FitProblem:
        steps = np.unique(np.concatenate([c.steps for c in curves]))
        curve_index = np.concatenate([np.full(len(c), i) for i, c in enumerate(curves)])
        step_index = np.concatenate([np.searchsorted(steps, c.steps) for c in curves])
        log_observed = np.log(np.concatenate([c.loss for c in curves]))
        return cls(
            base=base,
            parameters=ParameterMap.of(base, free),
            runs=stack_runs([base.resolve(_observed_part(c.run, c)) for c in curves]),
            steps=tuple(int(s) for s in steps),
            curve_index=jnp.asarray(curve_index),
            step_index=jnp.asarray(step_index),
            log_observed=jnp.asarray(log_observed),
            huber_delta=float(huber_delta),
        )

    def model(self, theta: Float[Array, " p"]) -> AbstractLossModel:
        return self.parameters.to_model(self.base, theta)

    def predictions(self, theta: Float[Array, " p"]) -> Float[Array, " n"]:
        """Predicted loss at every observed point."""
        model = self.model(theta)
        table = jax.vmap(lambda run: model.loss(run, self.steps))(self.runs)
        return table[self.curve_index, self.step_index]

    def residuals(self, theta: Float[Array, " p"]) -> Float[Array, " n"]:
        """Log residuals; a point predicted non-finite or non-positive gets residual 1 (steering the
        solver away; a fit that ends there is reported failed, :meth:`FitResult.problems`)."""
        return self.residuals_of(self.predictions(theta))

    def residuals_of(self, predicted: Float[Array, " n"]) -> Float[Array, " n"]:
        """:meth:`residuals` of given predictions."""
        ok = jnp.isfinite(predicted) & (predicted > 0)
        return jnp.where(ok, self.log_observed - jnp.log(jnp.where(ok, predicted, 1.0)), 1.0)

    def objective(self, theta: Float[Array, " p"]) -> Float[Array, ""]:
        return self.objective_of(self.residuals(theta))

    def objective_of(self, residuals: Float[Array, " n"]) -> Float[Array, ""]:
        """:meth:`objective` of given log residuals."""
        return jnp.sum(huber(residuals, self.huber_delta))


def _chunks(starts: int) -> int:
    """How many vmapped batches :func:`_solve` runs one after another for ``starts`` starts."""
    return -(-starts // REFINED)


def _solve_bound(starts: int, max_steps: int) -> int:
    """The most solver steps (progress ticks) that :func:`_solve` can take: per batch, one to
    start and ``max_steps`` (the batch stops when its slowest start does)."""
    return _chunks(starts) * (max_steps + 1)


class _StepCap(optx.AbstractLeastSquaresSolver):
    """``solver`` (a Gauss-Newton solver: Levenberg-Marquardt), stopped after
    ``options["step_cap"]`` steps: a traced number, unlike ``least_squares``' static
    ``max_steps``, so one compiled solve serves the screening and the refinement (compiling one
    of them takes several seconds). Stopping there is reported as
    ``nonlinear_max_steps_reached``, as ``max_steps`` is. The auxiliary output of the solve is
    that of its solution, the last accepted point, which the Gauss-Newton state keeps (optimistix
    0.1 returns the one before it when the last step was accepted)."""

    solver: optx.AbstractLeastSquaresSolver

    # The tolerances and norm optimistix asks every solver for: the wrapped solver's.
    @property
    def rtol(self) -> float:
        return self.solver.rtol

    @property
    def atol(self) -> float:
        return self.solver.atol

    @property
    def norm(self) -> Callable:
        return self.solver.norm

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        return self.solver.init(fn, y, args, options, f_struct, aux_struct, tags), jnp.array(0)

    def step(self, fn, y, args, options, state, tags):
        inner, steps = state
        y, inner, aux = self.solver.step(fn, y, args, options, inner, tags)
        return y, (inner, steps + 1), aux

    def terminate(self, fn, y, args, options, state, tags):
        inner, steps = state
        done, result = self.solver.terminate(fn, y, args, options, inner, tags)
        capped = steps >= options["step_cap"]
        return done | capped, optx.RESULTS.where(done | ~capped, result, optx.RESULTS.nonlinear_max_steps_reached)

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return self.solver.postprocess(fn, y, state[0].aux, args, options, state[0], tags, result)


def _log_linearisation(theta, problem: FitProblem):
    """Log residuals, their Jacobian and the predictions at ``theta``, from one forward-mode pass
    (each separately would put three copies of the loss loop into the program to compile)."""

    def with_predictions(t):
        predicted = problem.predictions(t)
        residuals = problem.residuals_of(predicted)
        return residuals, (residuals, predicted)

    jacobian, (residuals, predicted) = jax.jacfwd(with_predictions, has_aux=True)(theta)
    return residuals, jacobian, predicted


@eqx.filter_custom_jvp
def _solver_residuals(theta, problem: FitProblem):
    """The residuals Levenberg-Marquardt minimises the squares of (Huber's, as least squares:
    :func:`_huber_as_least_squares` of the log residuals), whose linearisation holds their
    Jacobian as a matrix; auxiliary output: :func:`_log_linearisation`, which the solve returns
    at its solution, so that neither the objective nor the covariance evaluates the model again."""
    residuals, jacobian, predicted = _log_linearisation(theta, problem)
    return _huber_as_least_squares(residuals, problem.huber_delta), (residuals, jacobian, predicted)


@_solver_residuals.def_jvp
def _solver_residuals_jvp(primals, tangents):
    # Levenberg-Marquardt linearises the residuals and materialises their Jacobian (n x p) to
    # solve each damped step. Through ``jax.linearize`` of the scans over every step of every
    # run, that cost 2.5x one forward-mode Jacobian (124M joint fit, 9 parameters); so the
    # Jacobian is taken here, forward mode, once per linearisation, and the tangent map is a product.
    # ``problem`` is positional, not a keyword: equinox before 0.13 rejects the symbolic-zero
    # tangents of keyword arrays. Its tangent is None (not differentiated).
    (theta, problem), (tangent, _) = primals, tangents
    aux = residuals, jacobian, _ = _log_linearisation(theta, problem)
    # psi acts on each residual alone: its slope there, times the log residuals' Jacobian
    psi, slope = jax.jvp(lambda r: _huber_as_least_squares(r, problem.huber_delta), (residuals,),
                         (jnp.ones_like(residuals),))
    return (psi, aux), (slope * (jacobian @ tangent), jax.tree.map(jnp.zeros_like, aux))


@eqx.filter_jit
def _solve_batch(problem: FitProblem, thetas, step_cap):
    """Levenberg-Marquardt from each of ``thetas`` (vmapped), at most ``step_cap`` steps each:
    the solutions, their objectives, whether each converged, its steps, and its linearisation
    (:func:`_log_linearisation`)."""
    solver = _StepCap(optx.LevenbergMarquardt(rtol=1e-6, atol=1e-9))

    def residuals(theta, p):
        jax.debug.callback(count_step)  # one call per solver step (and one to start): progress
        return _solver_residuals(theta, p)

    def one(theta0):
        solution = optx.least_squares(residuals, solver, theta0, args=problem, has_aux=True,
                                      options={"step_cap": step_cap}, max_steps=None, throw=False)
        log_residuals, jacobian, predicted = solution.aux
        return (solution.value, problem.objective_of(log_residuals),
                solution.result == optx.RESULTS.successful, solution.stats["num_steps"],
                log_residuals, jacobian, predicted)

    return jax.vmap(one)(thetas)


def _solve(problem: FitProblem, thetas: np.ndarray, max_steps: int) -> tuple[np.ndarray, ...]:
    """:func:`_solve_batch` from every start, ``REFINED`` starts at a time (vmapped within a batch,
    one batch after another: the Jacobian of a large problem times every start at once can
    exceed memory, as 7 free parameters x 8 starts x 60 curves of 25k steps did at 25 GB); as
    NumPy arrays (joined on the host: no small program to compile per fit)."""
    count = thetas.shape[0]
    chunks = _chunks(count)
    padded = np.concatenate([thetas, np.repeat(thetas[-1:], chunks * REFINED - count, axis=0)])
    cap = jnp.asarray(max_steps)
    outputs = [_solve_batch(problem, jnp.asarray(batch), cap) for batch in padded.reshape(chunks, REFINED, -1)]
    return tuple(np.concatenate([np.asarray(part[i]) for part in outputs])[:count] for i in range(len(outputs[0])))


_linearise = eqx.filter_jit(_log_linearisation)


def _linearised(problem: FitProblem, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residuals, their Jacobian and the predictions at ``theta``, as NumPy arrays."""
    return tuple(map(np.asarray, _linearise(jnp.asarray(theta), problem)))


def _newey_west_meat(jac: np.ndarray, res: np.ndarray, curve_index: np.ndarray) -> np.ndarray:
    """``sum_l w_l sum_t (g_t g_{t+l}^T + g_{t+l} g_t^T)`` of the scores ``g_t = J_t r_t`` within
    each curve, Bartlett weights ``w_l = 1 - l / (L + 1)``, ``L = 4 (n / 100)^{2/9}`` lags."""
    meat = np.zeros((jac.shape[1], jac.shape[1]))
    for c in np.unique(curve_index):
        g = jac[curve_index == c] * res[curve_index == c, None]
        lags = int(4 * (g.shape[0] / 100) ** (2 / 9))
        meat += g.T @ g
        for lag in range(1, min(lags, g.shape[0] - 1) + 1):
            cross = g[:-lag].T @ g[lag:]
            meat += (1 - lag / (lags + 1)) * (cross + cross.T)
    return meat


def _left_out_last_errors(jac: np.ndarray, res: np.ndarray, blocks: Sequence[np.ndarray],
                          lasts: Sequence[int]) -> np.ndarray:
    r"""The residual of point ``lasts[b]`` after leaving the points ``blocks[b]`` out, linearised.

    Leaving block ``b`` out moves ``theta`` by one Gauss-Newton step of the remaining objective,
    ``delta_b = (J^T J - J_b^T J_b)^+ J_b^T r_b`` (the full fit has ``J^T r = 0``), after which
    point ``i``'s residual is ``r_i + J_i delta_b`` (the cluster form of the PRESS residual). Exact
    to first order in ``delta_b`` and for squared residuals (the fit's Huber loss bends the largest
    ones): against real refits, each curve's error is within 35% and their RMS within 15% (whole
    curves left out) or 25% (later halves;
    ``tests/test_runs.py::test_held_out_discrepancy_matches_refits``).
    """
    information = jac.T @ jac
    errors = []
    for block, last in zip(blocks, lasts):
        jb, rb = jac[block], res[block]
        delta = np.linalg.pinv(information - jb.T @ jb) @ (jb.T @ rb)
        errors.append(res[last] + jac[last] @ delta)
    return np.asarray(errors)


def _leverage(jac: np.ndarray, block: np.ndarray) -> float:
    """The largest share of the information on any direction of the parameters that the points
    ``block`` hold (the top eigenvalue of ``(J^T J)^+ J_b^T J_b``): 1 when the rest leaves a
    direction undetermined."""
    return float(np.max(np.linalg.eigvals(np.linalg.pinv(jac.T @ jac) @ (jac[block].T @ jac[block])).real))


def _held_out_discrepancy(jac: np.ndarray, res: np.ndarray, curve_index: np.ndarray,
                          steps: np.ndarray) -> tuple[float, str]:
    """The model discrepancy and its source: the RMS error of each curve's last point (standing
    for the final loss of a run the fit has not seen) with that curve left out (``"leave-one-
    curve-out"``, from ``MIN_CURVES_FOR_DISCREPANCY`` curves), with its later half by steps left
    out (``"leave-later-half-out"``, two curves, unless the rest leaves the model undetermined),
    else ``PRIOR_DISCREPANCY`` (``"prior"``). ``steps`` is each point's step."""
    curves = [np.flatnonzero(curve_index == c) for c in np.unique(curve_index)]
    lasts = [points[-1] for points in curves]
    if len(curves) >= MIN_CURVES_FOR_DISCREPANCY:
        blocks, source = curves, "leave-one-curve-out"
    elif len(curves) == 2:
        middles = [(steps[points[0]] + steps[points[-1]]) / 2 for points in curves]
        blocks, source = [p[steps[p] > m] for p, m in zip(curves, middles)], "leave-later-half-out"
        if max(_leverage(jac, block) for block in blocks) > MAX_LEAVE_OUT_LEVERAGE:
            return PRIOR_DISCREPANCY, "prior"
    else:
        return PRIOR_DISCREPANCY, "prior"
    errors = _left_out_last_errors(jac, res, blocks, lasts)
    return float(np.sqrt(np.mean(np.square(errors)))), source


def _check_covariance(method: str) -> None:
    if method not in COVARIANCES:
        raise ValueError(f"`covariance` must be one of {COVARIANCES}, got {method!r}.")


def _stderr(parameters: ParameterMap, values: dict[str, float], covariance: np.ndarray) -> dict[str, float]:
    """Standard errors from the covariance in the fit's coordinates (delta method for log ones)."""
    return {name: float(abs(values[name] if positive else 1.0) * np.sqrt(max(covariance[i, i], 0.0)))
            for i, (name, positive) in enumerate(zip(parameters.names, parameters.positive))}


def _covariance(jac: np.ndarray, res: np.ndarray, curve_index: np.ndarray, method: str) -> np.ndarray:
    """Covariance of the least-squares estimate of ``theta``.

    ``"laplace"``: ``s^2 (J^T J)^{-1}``, residuals taken as independent. ``"newey-west"``: the
    heteroscedasticity- and autocorrelation-consistent sandwich ``(J^T J)^{-1} M (J^T J)^{-1}``
    (Newey & West, 1987), residuals correlated along each curve (as those of smoothed loss
    curves are); curves are taken as independent of each other. ``"curves"``: the
    cluster-robust sandwich with each curve one cluster, ``M = sum_c s_c s_c^T``,
    ``s_c = J_c^T r_c``: every residual of a curve may be correlated with every other.
    """
    _check_covariance(method)
    bread = np.linalg.pinv(jac.T @ jac)
    if method == "laplace":
        dof = max(res.size - jac.shape[1], 1)
        return float(res @ res / dof) * bread
    if method == "curves":
        scores = np.stack([jac[curve_index == c].T @ res[curve_index == c] for c in np.unique(curve_index)])
        return bread @ (scores.T @ scores) @ bread
    return bread @ _newey_west_meat(jac, res, curve_index) @ bread


@dataclasses.dataclass(frozen=True)
class FitResult:
    """A fitted model and what is known about the fit.

    Attributes:
        model: the model at the best parameters.
        free: names of the fitted parameters.
        values: fitted value of every parameter of the model.
        stderr: standard error of each fitted parameter (from ``covariance``; log-space for
            positive parameters, mapped back by the delta method).
        covariance: covariance of the fitted parameters in the fit's coordinates (log for positive).
        objective: the Huber objective ``sum huber(log obs - log pred)`` at the optimum.
        curves: per-curve fit metrics.
        starts: number of starting points screened.
        converged: how many of the refined starts the solver reports converged (a finite
            objective and a step below its tolerances before ``max_steps``).
        refined: how many of the best screened starts were solved to convergence.
        seconds: wall time of the fit.
        problem: the objective (:class:`FitProblem`), for bootstrap, profiling and sampling.
        theta: the best parameters in the fit's coordinates (``problem.model(theta)`` is ``model``).
        best_converged: whether the best start converged.
        iterations: solver steps of the best start.
        discrepancy: the model's own error on a run it was not fitted to (log loss, RMS), which
            prediction bands add to the parameter uncertainty: estimated by leaving each curve
            out, with two curves each one's later half, with one ``PRIOR_DISCREPANCY`` (see
            ``discrepancy_source``).
        discrepancy_source: where ``discrepancy`` came from: ``"leave-one-curve-out"``,
            ``"leave-later-half-out"``, ``"prior"`` or ``"given"``.
        rising: names of the fitted curves whose loss rises over the curve (the median of their
            last quarter of points above that of their first): no model here describes them.
        ranges: the smallest and largest value of each run setting among the fitted curves:
            ``"peak_lr"``, ``"horizon"`` (the last observed step) and, for models that read it,
            ``"batch_size"``; a prediction far outside them warns that it extrapolates.
        early_misses: per curve whose worst errors are at its start (above ``EARLY_MISS`` in
            the first ``EARLY_FRACTION`` of training), the last step missed there and the
            worst error: the curves should start later.
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
    refined: int = 1
    problem: FitProblem | None = None
    theta: np.ndarray | None = None
    best_converged: bool = True
    iterations: int = 0
    discrepancy: float = 0.0
    discrepancy_source: str = "given"
    rising: tuple[str, ...] = ()
    ranges: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    early_misses: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)

    @property
    def uncertainty(self) -> ParameterUncertainty:
        """The parameters' Gaussian uncertainty and the model discrepancy, for prediction bands
        (``predict(..., band=0.9)``)."""
        with float64():
            return ParameterUncertainty(self.problem.parameters, jnp.asarray(self.theta),
                                        jnp.asarray(self.covariance), jnp.asarray(self.discrepancy))

    def with_covariance(self, method: str) -> FitResult:
        """This fit with its covariance (and standard errors) computed by ``method`` (see
        :func:`fit`'s ``covariance``), from the stored objective: no refit."""
        with float64():
            res, jac, _ = _linearised(self.problem, self.theta)
        covariance = _covariance(jac, res, np.asarray(self.problem.curve_index), method)
        return dataclasses.replace(self, covariance=covariance,
                                   stderr=_stderr(self.problem.parameters, self.values, covariance))

    @property
    def mean_rel_error(self) -> float:
        """Mean over curves of each curve's mean relative training error."""
        return float(np.mean([m.mean_rel_error for m in self.curves]))

    def problems(self) -> list[str]:
        """What is wrong with this fit, in words (empty when nothing is)."""
        found = []
        if self.rising:
            found.append(f"the loss of {', '.join(map(repr, self.rising))} rises over the curve, where every "
                         "model here describes a loss that falls with training: a diverging run, or not a "
                         "training loss?")
        failed = [m.curve for m in self.curves if not np.isfinite(m.max_rel_error)]
        if failed:
            found.append(f"the fit failed: at its best parameters the model predicts no finite loss for part of "
                         f"{', '.join(map(repr, failed))} (the solver steered away from those points, and could not)")
        if not self.best_converged:
            found.append(f"the solver did not converge (best start stopped after {self.iterations} steps); "
                         "raise max_steps or give a closer starting point")
        if not self.mean_rel_error <= POOR_FIT_ERROR:
            found.append(f"the fit is far from its own training data: mean relative error "
                         f"{self.mean_rel_error:.2%} (more than {POOR_FIT_ERROR:.0%}); the model may not suit "
                         "these curves")
        if self.early_misses:
            last = max(step for step, _ in self.early_misses.values())
            worst = max(error for _, error in self.early_misses.values())
            found.append(f"the model misses the start of {len(self.early_misses)} curve(s), by up to {worst:.1%} at "
                         f"steps up to {last}: it describes training after the fast initial drop, not the first "
                         "steps; fit the curves from a later step (LossCurve.since, CLI --from-step)")
        loose = [name for name, err in self.stderr.items()
                 if not err <= UNDETERMINED_SPREAD * max(abs(self.values[name]), np.finfo(float).tiny)]
        if loose:
            found.append("not determined by these curves: " + ", ".join(
                f"{name} = {self.values[name]:.3g} ± {self.stderr[name]:.3g}" for name in loose)
                + "; fix them (free=...) or add curves that move them")
        return found

    def summary(self, *, problems: bool = True) -> str:
        """A human-readable table of parameters and per-curve fit quality, then (with
        ``problems``) what is wrong with the fit."""
        lines = [
            f"{type(self.model).__name__} fitted to {len(self.curves)} curve(s) in {self.seconds:.1f}s "
            f"({self.starts} starts screened, {self.converged}/{self.refined} best converged), "
            f"objective {self.objective:.4g}, model discrepancy {self.discrepancy:.3%} ({self.discrepancy_source})",
            "",
            text_table(["parameter", "value", "stderr"],
                       [[name, f"{value:.5g}", f"{self.stderr[name]:.3g}" if name in self.stderr else "fixed"]
                        for name, value in self.values.items()]),
            "",
            metrics_table(self.curves),
        ]
        lines += [f"warning: {p}" for p in self.problems()] if problems else []
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
    free = tuple(model.free_for(curves) if free is None else free)
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


def _ranges(runs: Run, curves: Sequence[LossCurve]) -> dict[str, tuple[float, float]]:
    """:attr:`FitResult.ranges` of the fitted ``runs`` (stacked and resolved) and their curves."""
    values = {"peak_lr": np.max(np.asarray(runs.lr), axis=-1), "horizon": [c.steps[-1] for c in curves]}
    if runs.batch_size is not None:
        values["batch_size"] = np.asarray(runs.batch_size)
    return {name: (float(np.min(v)), float(np.max(v))) for name, v in values.items()}


def _early_miss(steps: np.ndarray, predicted: np.ndarray, observed: np.ndarray) -> tuple[int, float] | None:
    """``(last step, worst relative error)`` of the points missed by more than ``EARLY_MISS`` in
    the first ``EARLY_FRACTION`` of training (steps up to the curve's last), when the curve's
    worst miss is among them.

    A point is missed when the running median of the signed relative errors over
    ``EARLY_WINDOW`` points around it (mirrored at the ends) exceeds ``EARLY_MISS``.
    """
    signed = (np.asarray(predicted, dtype=float) - observed) / np.abs(observed)
    signed = np.where(np.isfinite(signed), signed, np.inf)
    half = min(EARLY_WINDOW // 2, len(signed) - 1)
    padded = np.pad(signed, half, mode="reflect")
    systematic = np.abs(np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=-1))
    start = steps <= EARLY_FRACTION * steps[-1]
    missed = start & (systematic > EARLY_MISS)
    if not missed.any() or ((~start).any() and systematic[start].max() < systematic[~start].max()):
        return None
    return int(steps[missed].max()), float(relative_errors(predicted, observed)[start].max())


def _rises(loss: np.ndarray) -> bool:
    """Whether the median loss of the last quarter of the points exceeds that of the first."""
    quarter = max(1, len(loss) // 4)
    return len(loss) >= 2 and float(np.median(loss[-quarter:])) > float(np.median(loss[:quarter]))


def _start(model: AbstractLossModel, curves, free) -> AbstractLossModel:
    """The model's initial guess for the free parameters (and its reference scales); every other
    parameter keeps the value the caller gave."""
    guess = model.initial_guess(curves)
    fixed = {name: model.get(name) for name in model.parameters() if name not in free}
    start = guess.replace(**fixed)
    for name in free:
        spec = start._parameter(name)
        value = float(spec.get(start))
        if not np.isfinite(value) or (spec.positive and value <= 0):
            raise ValueError(
                f"cannot fit `{name}` from its current value {value!r}: set a finite"
                f"{' positive' if spec.positive else ''} starting value first (model.replace)."
            )
    return start


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
    covariance: str = "curves",
    discrepancy: float | None = None,
    progress: bool = True,
) -> FitResult:
    """Fit ``model`` to observed loss curves, whose runs may differ in schedule, peak LR, batch
    size, weight decay or momentum: one landscape for all of them.

    Minimises ``sum_i huber(log loss_i - log pred_i)`` over all observed points of all curves by
    Levenberg-Marquardt (optimistix) on the equivalent least-squares problem, in float64, from
    ``num_starts`` starting points: the model's :meth:`~AbstractLossModel.initial_guess` and
    random perturbations of it (``spread`` in the fit's coordinates). All starts take a few
    solver steps (two at a time, vmapped); the best two then go on together to convergence.
    The objective (:class:`FitProblem`) and one solve, whose step budget is traced, are
    compiled once per problem shape and serve both phases and later fits of the same shape.

    Args:
        model: any optlaws loss model. Parameters not in ``free`` keep its values; the initial
            guess fills only the free ones (and the reference LR, batch size and curvature grid).
        curves: one or more :class:`LossCurve`; each carries its :class:`~optlaws.Run`.
        free: parameters to fit (default ``model.free_for(curves)``: ``model.default_free``,
            and for an SDE model's curves at several peak LRs its ``sweep_free``).
        huber_delta: Huber threshold on log-residuals (``1e-3``: 0.1% relative error).
        num_starts: number of starting points.
        spread: standard deviation of the start perturbations in the fit's coordinates.
        seed: seed of the perturbations.
        max_steps: Levenberg-Marquardt iterations per start.
        covariance: how the parameters' covariance (and so the prediction bands) is estimated:
            ``"curves"`` (cluster-robust, each curve one cluster; the default), ``"newey-west"``
            (residuals correlated along each curve over a few lags) or ``"laplace"``
            (independent residuals). The default is the best calibrated of the three on held-out
            final losses (``benchmarks/uncertainty.py``), yet its 90% bands hold only about a
            quarter of them: the model's error on a new schedule is mostly not parameter noise,
            which is what ``discrepancy`` adds.
        discrepancy: the model's own error on a run it was not fitted to, as an RMS log-loss
            error that bands add to the parameter uncertainty (``loss * exp(discrepancy * z)``
            per draw). ``None`` estimates it: the RMS error of each curve's final loss predicted
            by the fit to the other curves (linearised leave-one-curve-out); with two curves,
            where that is not determined, by the fit without each curve's later half; with one,
            where neither is, ``PRIOR_DISCREPANCY`` (0.19%, the estimate on the 124M sweep).
            ``0`` gives bands of the parameters alone.
        progress: report on stderr while fitting: each solve's steps done out of the most it can
            take, the time per step, and so the time left at most (it usually converges sooner).

    Returns:
        A :class:`FitResult`. A :class:`FitWarning` is issued when the best start did not
        converge or the mean training error exceeds 1%.

    Example:
        >>> curves = [optlaws.load_mpl("100M", n) for n in ("constant_24000", "cosine_24000")]  # doctest: +SKIP
        >>> result = optlaws.fit(optlaws.AdamModel(), curves)  # doctest: +SKIP
        >>> print(result.summary())  # doctest: +SKIP
    """
    curves, free = _check_inputs(model, curves, free)
    if num_starts < 1:
        raise ValueError(f"`num_starts` must be at least 1, got {num_starts}.")
    if max_steps < 1:
        raise ValueError(f"`max_steps` must be at least 1, got {max_steps}.")
    if not huber_delta > 0:
        raise ValueError(f"`huber_delta` must be positive, got {huber_delta!r}.")
    _check_covariance(covariance)
    if discrepancy is not None and not (np.isfinite(discrepancy) and discrepancy >= 0):
        raise ValueError(f"`discrepancy` must be a finite non-negative log-loss error or None, got {discrepancy!r}.")
    started = time.perf_counter()
    fitting = f"fitting {type(model).__name__} to {len(curves)} curve(s)"
    with float64():
        start = _start(in_float64(model), curves, free)
        problem = FitProblem.build(start, free, curves, huber_delta)
        center = np.asarray(problem.parameters.to_theta(start))
        rng = np.random.default_rng(seed)
        offsets = spread * rng.standard_normal((num_starts, center.size))
        offsets[0] = 0.0
        thetas = center + offsets
        if num_starts > REFINED:
            with solver_steps(f"{fitting}: {num_starts} starts, {SCREEN_STEPS} steps each",
                              _solve_bound(num_starts, SCREEN_STEPS), enabled=progress):
                thetas, objectives, *_ = _solve(problem, thetas, SCREEN_STEPS)
            finite = np.isfinite(objectives) & np.all(np.isfinite(thetas), axis=1)
            thetas = thetas[np.argsort(np.where(finite, objectives, np.inf))[:REFINED]]
        with solver_steps(f"{fitting}: the best {len(thetas)} to convergence",
                          _solve_bound(len(thetas), max_steps), enabled=progress):
            thetas, objectives, successes, num_steps, residuals, jacobians, predictions = _solve(
                problem, thetas, max_steps)
        finite = np.isfinite(objectives) & np.all(np.isfinite(thetas), axis=1)
        if not finite.any():
            raise RuntimeError(
                f"fit failed: no start of {num_starts} reached a finite objective; "
                "check the curves' schedules or give the model a closer starting point."
            )
        best = int(np.argmin(np.where(finite, objectives, np.inf)))
        theta, res, jac, predicted = thetas[best], residuals[best], jacobians[best], predictions[best]
        fitted = problem.model(jnp.asarray(theta))
        values = fitted.values()
    curve_index = np.asarray(problem.curve_index)
    cov = _covariance(jac, res, curve_index, covariance)
    source = "given"
    if discrepancy is None:
        discrepancy, source = _held_out_discrepancy(
            jac, res, curve_index, np.asarray(problem.steps)[np.asarray(problem.step_index)])
    reports = tuple(curve_metrics(c.name, predicted[curve_index == i], c.loss) for i, c in enumerate(curves))
    result = FitResult(
        model=fitted,
        free=free,
        values=values,
        stderr=_stderr(problem.parameters, values, cov),
        covariance=cov,
        objective=float(objectives[best]),
        curves=reports,
        starts=num_starts,
        converged=int(np.sum(successes & finite)),
        refined=len(thetas),
        seconds=time.perf_counter() - started,
        problem=problem,
        theta=theta,
        best_converged=bool(successes[best]),
        iterations=int(num_steps[best]),
        discrepancy=float(discrepancy),
        discrepancy_source=source,
        rising=tuple(c.name for c in curves if _rises(c.loss)),
        ranges=_ranges(problem.runs, curves),
        early_misses={c.name: miss for i, c in enumerate(curves)
                      if (miss := _early_miss(np.asarray(c.steps), predicted[curve_index == i], c.loss)) is not None},
    )
    for problem_text in result.problems():
        warnings.warn(f"{type(model).__name__} fit: {problem_text}.", FitWarning, stacklevel=2)
    return result
