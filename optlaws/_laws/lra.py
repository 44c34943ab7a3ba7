"""The learning-rate-annealing law of Tissue et al. (2024)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._model import AbstractLossModel, Parameter
from .common import cumulative_lr, linear_recurrence, power_law_guess, power_law_parameters, scale_guess

__all__ = ["AnnealingLaw"]


class AnnealingLaw(AbstractLossModel):
    r"""Scaling law with learning-rate annealing (Tissue et al., 2024, arXiv:2408.11029).

        L(s) = L_0 + A S_1^{-alpha} - C S_2,
        S_1 = sum_{t<s} lr_t,    S_2 = sum_{i<s} m_i,    m_i = lambda m_{i-1} + (lr_{i-1} - lr_i),

    the "annealing area" ``S_2`` being a momentum of the LR decreases with decay factor
    ``lambda = 1 - 1 / memory`` (``memory`` in steps; the paper's 0.999 is 1000 steps).
    """

    loss_inf: Float[Array, ""]
    amplitude: Float[Array, ""]
    exponent: Float[Array, ""]
    annealing: Float[Array, ""]
    memory: Float[Array, ""]

    default_free: ClassVar[tuple[str, ...]] = ("loss_inf", "amplitude", "exponent", "annealing", "memory")

    def __init__(self, *, loss_inf: ArrayLike = 2.0, amplitude: ArrayLike = 0.5, exponent: ArrayLike = 0.5,
                 annealing: ArrayLike = 100.0, memory: ArrayLike = 1000.0):
        self.loss_inf = jnp.asarray(loss_inf, dtype=float)
        self.amplitude = jnp.asarray(amplitude, dtype=float)
        self.exponent = jnp.asarray(exponent, dtype=float)
        self.annealing = jnp.asarray(annealing, dtype=float)
        self.memory = jnp.asarray(memory, dtype=float)

    def annealing_area(self, lr: Array) -> Array:
        """``S_2`` after ``s`` updates, for ``s = 0 .. T``."""
        drops = jnp.concatenate([jnp.zeros((1,), lr.dtype), lr[:-1] - lr[1:]])  # lr_{i-1} - lr_i
        decay = jnp.full_like(lr, 1.0 - 1.0 / self.memory)
        momentum = linear_recurrence(decay, drops)
        return jnp.concatenate([jnp.zeros((1,), lr.dtype), jnp.cumsum(momentum)])

    def _loss(self, run, steps) -> Array:
        lr = run.lr
        steps = np.asarray(steps)
        area = cumulative_lr(lr)[steps]
        return (self.loss_inf + self.amplitude * area ** (-self.exponent)
                - self.annealing * self.annealing_area(lr)[steps])

    def parameters(self) -> dict[str, Parameter]:
        return {
            **power_law_parameters(),
            "annealing": Parameter("annealing", True, "annealing coefficient C"),
            "memory": Parameter("memory", True, "momentum memory 1/(1-lambda), steps"),
        }

    def initial_guess(self, curves: Sequence) -> AnnealingLaw:
        low, peak, _ = scale_guess(curves)
        start = power_law_guess(curves)
        return self.replace(**start, annealing=0.3 * (low - start["loss_inf"]) / peak, memory=1000.0)
