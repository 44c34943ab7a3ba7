"""The convex last-iterate bound of Schaipp et al. (2025), as a loss law."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._model import AbstractLossModel, Parameter
from .common import cumulative_lr, scale_guess

__all__ = ["ConvexBound"]


class ConvexBound(AbstractLossModel):
    r"""``L(T) = L_0 + M * Omega_T`` with ``Omega_T`` the last-iterate bound of SGD for convex,
    ``G``-Lipschitz problems (Defazio et al., 2023, Thm. 10), which Schaipp et al. (2025,
    "The Surprising Agreement Between Convex Optimization Theory and Learning-Rate Scheduling
    for Large Model Training") found to track LLM loss curves. With ``G = 1``:

        Omega_T = D^2 / (2 S_T) + Q_T / (2 S_T)
                  + 1/2 sum_{k=1}^{T-1} lr_k / (S_T - S_k) * (Q_T - Q_{k-1}) / (S_T - S_{k-1}),

    ``S_k = sum_{t<=k} lr_t``, ``Q_k = sum_{t<=k} lr_t^2``; ``D`` is the distance to the optimum in
    units of ``G``. O(T) per evaluated step.
    """

    loss_inf: Float[Array, ""]
    scale: Float[Array, ""]
    distance: Float[Array, ""]

    default_free: ClassVar[tuple[str, ...]] = ("loss_inf", "scale", "distance")

    def __init__(self, *, loss_inf: ArrayLike = 2.0, scale: ArrayLike = 1.0, distance: ArrayLike = 1.0):
        self.loss_inf = jnp.asarray(loss_inf, dtype=float)
        self.scale = jnp.asarray(scale, dtype=float)
        self.distance = jnp.asarray(distance, dtype=float)

    def bound(self, lr, steps) -> Array:
        """``Omega_T`` at ``T = steps`` (number of updates)."""
        lr = jnp.asarray(lr, dtype=float)
        area = cumulative_lr(lr)  # area[k] = S_k with the bound's 1-based k: sum of the first k LRs
        squares = cumulative_lr(lr**2)
        k = jnp.arange(1, lr.shape[0] + 1)

        def at(t):
            total, total_sq = area[t], squares[t]
            before, after = area[k - 1], area[k]
            ratio = lr * (total_sq - squares[k - 1]) / ((total - after) * (total - before))
            refined = 0.5 * jnp.sum(jnp.where((k <= t - 1) & (total - after > 0), ratio, 0.0))
            return (self.distance**2 + total_sq) / (2.0 * total) + refined

        return jax.lax.map(at, jnp.asarray(np.asarray(steps)), batch_size=16)

    def _loss(self, run, steps) -> Array:
        return self.loss_inf + self.scale * self.bound(run.lr, steps)

    def parameters(self) -> dict[str, Parameter]:
        return {
            "loss_inf": Parameter("loss_inf", True, "irreducible loss L_0"),
            "scale": Parameter("scale", True, "scale M"),
            "distance": Parameter("distance", True, "distance to the optimum D (G = 1)"),
        }

    def initial_guess(self, curves: Sequence) -> ConvexBound:
        low, peak, first = scale_guess(curves)
        # Omega ~ D^2/(2 S) early: start with D^2 comparable to the area of the longest run.
        area = max(float(np.sum(np.asarray(c.run.lr))) for c in curves)
        return self.replace(loss_inf=0.9 * low, scale=(low - 0.9 * low) / (peak * 5), distance=area**0.5)
