"""Second-moment dynamics of one quadratic mode under a heavy-ball optimizer.

A mode with curvature ``h`` and gradient-noise variance ``sigma^2 / B`` under heavy ball

    v' = mu v - alpha (h theta + xi),    theta' = theta + v'

(plain SGD is ``mu = 0``; Adam's EMA momentum ``m' = b1 m + (1 - b1) g`` is ``mu = b1``,
``alpha = lr (1 - b1)`` in preconditioned coordinates) has a linear recursion for its second
moments. With ``x = alpha h`` the characteristic roots solve ``lam^2 - (1 + mu - x) lam + mu = 0``:

- the slowest second moment contracts by ``rho = max|lam|^2`` per step: ``(1 - x)^2`` for SGD,
  ``mu`` once the mode is under-damped (``x > (1 - sqrt(mu))^2``), and ``rho > 1`` past the
  stability edge ``x = 2 (1 + mu)``, which is how divergence shows up;
- the stationary loss ``h E[theta^2] / 2`` equals ``alpha / (1 - mu) * sigma^2 / (4 B) * q`` with
  ``q = 2 (1 + mu) / (2 (1 + mu) - x)``, the small-step value times a discreteness factor.

In the continuous-time (SDE) limit ``rho = exp(-2 x / (1 - mu))`` and ``q = 1``.

The moment model keeps one relaxation rate per mode, the slowest. For plain SGD (``mu = 0``) that
is exact. With momentum the 3x3 recursion has faster transients and a cross term between position
and velocity, which this leaves out: against the exact recursion the excess loss is within about
4% while an LR decays with ``mu = 0.9`` (``tests/test_sde.py``); the stationary loss at a constant
LR is exact (``tests/test_dynamics.py``).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

LOG_RHO_FLOOR = -60.0  # exp(-60) is zero at loss precision; keeps log finite at rho = 0.


def heavy_ball_log_contraction(x: ArrayLike, momentum: ArrayLike) -> Array:
    """``log rho``, the per-step log contraction of the slowest second moment.

    Written without cancellation: for the real root below ``x = 1 + mu``,
    ``1 - lam = 2 x / ((1 - mu + x) + sqrt(disc))``, accurate for tiny ``x`` even in float32.
    Each branch only picks ``|lam| - 1``, so one ``log1p`` serves all three (the throughput of
    batched ranking is bound by transcendental functions).
    """
    x = jnp.asarray(x)
    mu = jnp.asarray(momentum)
    trace = 1.0 + mu - x
    disc = trace**2 - 4.0 * mu
    real = disc >= 0  # critical damping (disc = 0) has the double real root trace / 2
    small = real & (trace >= 0)
    large = real & (trace < 0)
    # Every branch is evaluated on safe inputs (double where) so that gradients stay finite.
    root = jnp.where(disc > 0, jnp.sqrt(jnp.where(disc > 0, disc, 1.0)), 0.0)
    gap = jnp.where(small, 2.0 * x / ((1.0 - mu + x) + root), 0.5)  # 1 - lam, in [0, 1]
    lam_large = (x - 1.0 - mu + root) / 2.0  # magnitude of the negative root
    # Under-damped: |lam|^2 = mu. With mu = 0 the roots are always real.
    minus_one = jnp.where(small, -jnp.minimum(gap, 1.0 - 1e-7),
                          jnp.where(large, lam_large - 1.0, jnp.sqrt(jnp.where(mu > 0, mu, 1.0)) - 1.0))
    return jnp.maximum(2.0 * jnp.log1p(minus_one), LOG_RHO_FLOOR)


def heavy_ball_equilibrium_factor(x: ArrayLike, momentum: ArrayLike) -> Array:
    """``q = 2 (1 + mu) / (2 (1 + mu) - x)``; negative past the stability edge."""
    edge = 2.0 * (1.0 + jnp.asarray(momentum))
    return edge / (edge - jnp.asarray(x))


def stability_edge(momentum: ArrayLike) -> Array:
    """Largest stable ``x = alpha h``: ``2 (1 + mu)`` (2 for SGD, 38 for Adam's ``b1 = 0.9``)."""
    return 2.0 * (1.0 + jnp.asarray(momentum))
