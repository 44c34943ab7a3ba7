"""Pieces shared by the closed-form laws: cumulative learning rate, linear recurrences, starts."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

RECURRENCE_CHUNK = 2048


def cumulative_lr(lr: Array) -> Array:
    """``S[s] = sum_{t < s} lr[t]`` for ``s = 0 .. T``: the area under the schedule after ``s`` updates."""
    return jnp.concatenate([jnp.zeros((1,), lr.dtype), jnp.cumsum(lr)])


def linear_recurrence(decay: Array, drive: Array) -> Array:
    """``x[t] = decay[t] * x[t-1] + drive[t]`` along axis 0, from ``x[-1] = 0``.

    A parallel prefix scan (``lax.associative_scan``) inside chunks of ``RECURRENCE_CHUNK``
    steps, chained by ``lax.scan``: O(T) work, O(chunk) memory per trailing dimension.
    """
    total = decay.shape[0]
    pad = (-total) % RECURRENCE_CHUNK
    widths = [(0, pad)] + [(0, 0)] * (decay.ndim - 1)
    decay = jnp.pad(decay, widths, constant_values=1.0).reshape(-1, RECURRENCE_CHUNK, *decay.shape[1:])
    drive = jnp.pad(drive, widths).reshape(-1, RECURRENCE_CHUNK, *drive.shape[1:])

    def combine(left, right):
        a1, b1 = left
        a2, b2 = right
        return a1 * a2, b1 * a2 + b2

    def chunk(carry, inputs):
        a, b = jax.lax.associative_scan(combine, inputs, axis=0)
        x = a * carry + b
        return x[-1], x

    init = jnp.zeros(drive.shape[2:], jnp.result_type(decay, drive))
    _, x = jax.lax.scan(chunk, init, (decay, drive))
    return x.reshape(-1, *x.shape[2:])[:total]


def scale_guess(curves: Sequence) -> tuple[float, float, float]:
    """(lowest loss, peak learning rate, first observed loss) of a set of curves, for starting points."""
    low = min(float(np.min(c.loss)) for c in curves)
    peak = max(float(np.max(np.asarray(c.schedule.lr))) for c in curves)
    first = max(float(c.loss[0]) for c in curves)
    return low, peak, first


def first_area(curves: Sequence) -> float:
    """Cumulative learning rate at the first observation of the earliest-starting curve."""
    curve = min(curves, key=lambda c: int(c.steps[0]))
    return float(np.sum(np.asarray(curve.schedule.lr)[: int(curve.steps[0])])) or 1e-3
