"""Power law in the cumulative learning rate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._model import AbstractLossModel, Parameter
from .common import cumulative_lr, power_law_guess, power_law_parameters

__all__ = ["PowerLaw"]


class PowerLaw(AbstractLossModel):
    r"""``L(s) = L_0 + A (S_1(s) + S_W)^{-alpha}``, ``S_1(s) = sum_{t<s} lr_t``.

    The schedule-blind baseline: progress depends only on the area under the schedule, so it
    sees no benefit from annealing. ``S_W`` is an offset for a warmup missing from the schedule
    (0, and fixed, when the schedule includes it).
    """

    loss_inf: Float[Array, ""]
    amplitude: Float[Array, ""]
    exponent: Float[Array, ""]
    offset: Float[Array, ""]

    default_free: ClassVar[tuple[str, ...]] = ("loss_inf", "amplitude", "exponent")

    def __init__(self, *, loss_inf: ArrayLike = 2.0, amplitude: ArrayLike = 0.5,
                 exponent: ArrayLike = 0.5, offset: ArrayLike = 0.0):
        self.loss_inf = jnp.asarray(loss_inf, dtype=float)
        self.amplitude = jnp.asarray(amplitude, dtype=float)
        self.exponent = jnp.asarray(exponent, dtype=float)
        self.offset = jnp.asarray(offset, dtype=float)

    def _loss(self, run, steps) -> Array:
        area = cumulative_lr(run.lr)[np.asarray(steps)]
        return self.loss_inf + self.amplitude * (area + self.offset) ** (-self.exponent)

    def parameters(self) -> dict[str, Parameter]:
        return {
            **power_law_parameters(),
            "offset": Parameter("offset", False, "cumulative-LR offset S_W"),
        }

    def initial_guess(self, curves: Sequence) -> PowerLaw:
        return self.replace(**power_law_guess(curves))
