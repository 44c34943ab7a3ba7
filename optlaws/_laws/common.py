"""Pieces shared by the closed-form laws: cumulative learning rate, linear recurrences, starts."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._model import Parameter


def cumulative_lr(lr: Array) -> Array:
    """``S[s] = sum_{t < s} lr[t]`` for ``s = 0 .. T``: the area under the schedule after ``s`` updates."""
    return jnp.concatenate([jnp.zeros((1,), lr.dtype), jnp.cumsum(lr)])


def linear_recurrence(decay: Array, drive: Array) -> Array:
    """``x[t] = decay[t] * x[t-1] + drive[t]`` along axis 0, from ``x[-1] = 0``.

    A sequential ``lax.scan``: on CPU about ten times faster than a parallel prefix scan
    (``lax.associative_scan``), whose log-depth passes cost more memory traffic than they save.
    """

    def step(state, inputs):
        factor, term = inputs
        state = factor * state + term
        return state, state

    init = jnp.zeros(drive.shape[1:], jnp.result_type(decay, drive))
    return jax.lax.scan(step, init, (decay, drive))[1]


def scale_guess(curves: Sequence) -> tuple[float, float, float]:
    """(lowest loss, peak learning rate, first observed loss) of a set of curves, for starting points."""
    low = min(float(np.min(c.loss)) for c in curves)
    peak = max(float(np.max(np.asarray(c.run.lr))) for c in curves)
    first = max(float(c.loss[0]) for c in curves)
    return low, peak, first


def first_area(curves: Sequence) -> float:
    """Cumulative learning rate at the first observation of the earliest-starting curve."""
    curve = min(curves, key=lambda c: int(c.steps[0]))
    return float(np.sum(np.asarray(curve.run.lr)[: int(curve.steps[0])])) or 1e-3


def power_law_parameters() -> dict[str, Parameter]:
    """The fittable scalars of the ``L_0 + A S^-alpha`` part that the power, LRA and MPL laws share."""
    return {
        "loss_inf": Parameter("loss_inf", True, "irreducible loss L_0"),
        "amplitude": Parameter("amplitude", True, "amplitude A"),
        "exponent": Parameter("exponent", True, "exponent alpha"),
    }


def power_law_guess(curves: Sequence) -> dict[str, float]:
    """A start for ``L_0, A, alpha``: ``L_0`` below the lowest loss, ``alpha = 1/2``, and ``A``
    matching the first observed loss."""
    low, _, first = scale_guess(curves)
    loss_inf = 0.85 * low
    return dict(loss_inf=loss_inf, amplitude=(first - loss_inf) * first_area(curves) ** 0.5, exponent=0.5)
