"""A free-form schedule found by gradient descent on the predicted final loss."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._predict import model_and_uncertainty
from ._precision import float64, in_float64
from ._progress import progress
from ._rank import rank
from ._run import Run
from ._schedules import Schedule, _check_concrete, _check_positive_int, _with_warmup, parse_schedule, schedule_spec

__all__ = ["OptimisedSchedule", "family_specs", "optimise", "shares_logits", "shares_schedule"]

# Iterations run per jitted call: the progress bar advances between calls.
ITERATIONS_PER_CALL = 25


@dataclasses.dataclass(frozen=True)
class OptimisedSchedule:
    """The result of :func:`optimise`.

    Attributes:
        schedule: the free-form schedule (``name="optimised"``).
        final_loss: its predicted loss at the last step.
        history: the predicted final loss before each iteration, and of the result.
        logits: the decay shares' logits (see :func:`shares_schedule`), to restart from.
        best_family: the spec of the best member of the usual families within the same bounds
            (:func:`family_specs`), and ``best_family_loss`` its predicted final loss; ``None``
            when not compared.
    """

    schedule: Schedule
    final_loss: float
    history: np.ndarray
    logits: np.ndarray
    best_family: str | None = None
    best_family_loss: float | None = None


def family_specs(total_steps: int, *, peak_lr: float, min_lr: float = 0.0, warmup: int = 0) -> list[str]:
    """Schedule specs of the usual families within the bounds of :func:`optimise`: WSD with a
    decay of 5% to 95% of the run (19 fractions) in each shape, cosine and linear decay to
    ``min_lr``, and the constant LR."""
    common = dict(peak=peak_lr, total=total_steps, warmup=warmup)
    specs = [schedule_spec("wsd", **common, decay_frac=round(fraction, 2), shape=shape, final=min_lr)
             for shape in ("linear", "1-sqrt", "cosine") for fraction in np.linspace(0.05, 0.95, 19)]
    return specs + [schedule_spec("cosine", **common, final=min_lr), schedule_spec("linear", **common, final=min_lr),
                    schedule_spec("constant", **common)]


def shares_schedule(logits, *, peak_lr, min_lr, warmup: int, total_steps: int) -> jax.Array:
    r"""Learning rates of the free-form schedule with decay shares ``softmax(logits)``.

    ``K + 1 = len(logits)`` knots split ``[warmup, total_steps]`` evenly. With ``p = softmax(logits)``
    the LR at knot ``k`` is

        lr_k = min_lr + (peak_lr - min_lr) (1 - sum_{j < k} p_j),

    so ``lr_0 = peak_lr``, each share ``p_j`` is the part of the decay taken between knots ``j``
    and ``j + 1``, and the last share is the part never taken (``lr_K = min_lr`` when it is 0).
    Between knots the LR is linear, before ``warmup`` a linear ramp to ``peak_lr``. The schedule
    cannot increase after warmup and stays in ``[min_lr, peak_lr]`` whatever the logits: the
    bounds hold by construction, not by projection.
    """
    shares = jax.nn.softmax(logits)
    # 1 - sum_{j<k} p_j summed from the end, sum_{j>=k} p_j: never negative, never rising, in
    # floating point too (1 - cumsum can dip below 0 by an ulp, a negative LR).
    left = jnp.minimum(jnp.cumsum(shares[::-1])[::-1], 1.0).at[0].set(1.0)
    values = min_lr + (peak_lr - min_lr) * left
    knots = jnp.linspace(warmup, total_steps, logits.shape[0])
    lr = jnp.interp(jnp.arange(total_steps, dtype=values.dtype), knots, values)
    return _with_warmup(lr, peak_lr, warmup, total_steps, jnp)


def shares_logits(lr, *, peak_lr, min_lr, warmup: int, total_steps: int, knots: int) -> np.ndarray:
    """Logits whose :func:`shares_schedule` passes through ``lr`` (clipped to the bounds, made
    non-increasing) at the ``knots + 1`` knots: the inverse of :func:`shares_schedule` there."""
    positions = np.linspace(warmup, total_steps, knots + 1)
    lr = np.asarray(lr, dtype=float)
    values = np.interp(positions, np.arange(total_steps), lr)
    left = np.minimum.accumulate((np.clip(values, min_lr, peak_lr) - min_lr) / (peak_lr - min_lr))
    left[0] = 1.0
    shares = np.append(-np.diff(left), left[-1])
    return np.log(np.maximum(shares, 1e-12))


def _final_loss(model, logits, lr_bounds, *, warmup: int, total_steps: int, settings: dict):
    """Predicted loss at the end of the free-form schedule ``logits`` (``lr_bounds``: peak, min)."""
    lr = shares_schedule(logits, peak_lr=lr_bounds[0], min_lr=lr_bounds[1], warmup=warmup, total_steps=total_steps)
    return model.loss(model.resolve(Run(lr, **settings)), [total_steps])[0]


_final_loss_jit = eqx.filter_jit(_final_loss)


@eqx.filter_jit
def _iterate(model, carry, step_size, lr_bounds, count: int, **shape):
    """``count`` Adam steps of size ``step_size`` on the logits, keeping the best iterate."""
    optimiser = optax.adam(step_size)

    def step(carry, _):
        logits, state, best, best_loss = carry
        loss, grad = jax.value_and_grad(_final_loss, argnums=1)(model, logits, lr_bounds, **shape)
        better = loss < best_loss
        best, best_loss = jnp.where(better, logits, best), jnp.where(better, loss, best_loss)
        updates, state = optimiser.update(grad, state)
        return (optax.apply_updates(logits, updates), state, best, best_loss), loss

    return jax.lax.scan(step, carry, length=count)


def optimise(
    model,
    total_steps: int,
    *,
    peak_lr: float,
    min_lr: float = 0.0,
    warmup: int = 0,
    knots: int = 64,
    iterations: int = 400,
    learning_rate: float = 0.05,
    start: Schedule | None = None,
    batch_size: float | None = None,
    weight_decay: float | None = None,
    momentum: float | None = None,
    compare: bool = True,
    progress_bar: bool = True,
) -> OptimisedSchedule:
    r"""The schedule of ``total_steps`` updates with the lowest predicted final loss, found by
    gradient descent (Adam on the decay shares' logits, :func:`shares_schedule`).

    The search space is every schedule that warms up linearly over ``warmup`` steps to
    ``peak_lr``, then never increases and never goes below ``min_lr``, piecewise linear between
    ``knots`` evenly spaced points. It starts from ``start`` (by default the best family member,
    or the linear decay with ``compare=False``) seen at the knots, and takes ``iterations`` Adam
    steps of size ``learning_rate`` on the logits, each one a forward and backward pass of the
    model over the whole run (jitted, ``ITERATIONS_PER_CALL`` at a time), keeping the best
    iterate. The result is a local optimum of that landscape, and never worse than the start seen
    at the knots.

    Args:
        model: a loss model or a fit.
        total_steps: updates in the run.
        peak_lr, min_lr: the LR bounds after warmup (``0 <= min_lr < peak_lr``).
        warmup: linear warmup steps (not optimised).
        knots: knots of the decay (``2 <= knots``); more allow sharper shapes.
        iterations, learning_rate: the Adam optimiser's budget and step.
        start: the schedule to start from (``total_steps`` long).
        batch_size, weight_decay, momentum: the run's settings (default: the model's).
        compare: also rank the family members of :func:`family_specs` (one batch) and report the best.
        progress_bar: report progress on stderr.
    """
    model, _ = model_and_uncertainty(model, None)
    total_steps = _check_positive_int("total_steps", total_steps)
    _check_concrete("peak_lr", peak_lr, low=np.finfo(float).tiny)
    _check_concrete("min_lr", min_lr, high=float(peak_lr))
    if float(min_lr) >= float(peak_lr):
        raise ValueError(f"`min_lr` ({min_lr!r}) must be below `peak_lr` ({peak_lr!r}).")
    _check_concrete("warmup", warmup, high=total_steps - 2)
    if int(knots) < 2:
        raise ValueError(f"`knots` must be at least 2, got {knots!r}.")
    if int(iterations) < 1:
        raise ValueError(f"`iterations` must be positive, got {iterations!r}.")
    settings = dict(batch_size=batch_size, weight_decay=weight_decay, momentum=momentum)
    bounds = dict(peak_lr=float(peak_lr), min_lr=float(min_lr), warmup=int(warmup), total_steps=total_steps)
    # Shapes and settings are static; the LR bounds and the step size are traced, so another
    # call of the same shape reuses the compiled loop.
    shape = dict(warmup=int(warmup), total_steps=total_steps, settings=settings)
    best_family = best_family_loss = None
    with float64():
        model = in_float64(model)
        if compare:
            specs = family_specs(total_steps, **{k: v for k, v in bounds.items() if k != "total_steps"})
            ranking = rank(model, [Run(parse_schedule(spec), **settings) for spec in specs], names=specs,
                           band=None, progress_bar=False)
            best_family, best_family_loss = ranking.names[0], float(ranking.final_loss[0])
            if start is None:
                start = parse_schedule(best_family)
        if start is not None and start.total_steps != total_steps:
            raise ValueError(f"`start` has {start.total_steps} steps, not total_steps={total_steps}.")
        logits = jnp.zeros((int(knots) + 1,), jnp.float64)
        if start is not None:
            logits = jnp.asarray(shares_logits(start.lr, knots=int(knots), **bounds))
        lr_bounds, step_size = jnp.asarray([float(peak_lr), float(min_lr)]), jnp.asarray(float(learning_rate))
        carry = (logits, optax.adam(step_size).init(logits), logits, jnp.asarray(jnp.inf))
        history = []
        calls = [ITERATIONS_PER_CALL] * (int(iterations) // ITERATIONS_PER_CALL)
        calls += [int(iterations) % ITERATIONS_PER_CALL] if int(iterations) % ITERATIONS_PER_CALL else []
        with progress(len(calls), "optimising the schedule", enabled=progress_bar and len(calls) > 1) as advance:
            for count in calls:
                carry, losses = _iterate(model, carry, step_size, lr_bounds, count, **shape)
                history.append(np.asarray(losses))
                advance()
        logits, _, best, best_loss = carry
        final = float(_final_loss_jit(model, logits, lr_bounds, **shape))
        if final > best_loss:
            logits, final = best, float(best_loss)
        lr = shares_schedule(logits, **bounds)
    history = np.concatenate(history + [np.array([final])])
    schedule = Schedule(lr=np.asarray(lr), name="optimised")
    return OptimisedSchedule(schedule, final, history, np.asarray(logits), best_family, best_family_loss)
