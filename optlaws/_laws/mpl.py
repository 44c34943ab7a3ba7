"""The Multi-Power Law of Luo et al. (2025), with its loss-drop term in O(T) time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammainc, gammaln
from jaxtyping import Array, ArrayLike, Float

from .._model import AbstractLossModel, Parameter
from .common import cumulative_lr, power_law_guess, power_law_parameters, scale_guess

__all__ = ["MultiPowerLaw"]

# Quadrature nodes of the Gamma mixture. The error falls exponentially with their number: relative
# to LD it is about 1e-6 at 96 (the default: far below the noise of any loss curve, 2.7x faster to
# fit than 256) and 1e-13 at 256.
DEFAULT_NUM_RATES = 96
# Rates below TAIL / S_total have not decayed at all by the end (exp(-r S) = 1 to 1e-20) and
# are lumped into one non-decaying mode; weights beyond exp(-TOP) are negligible.
TAIL, TOP = 1e-20, 45.0
# LR floor (relative to the peak) in lr^-gamma: keeps the kernel finite where the LR reaches 0.
LR_FLOOR = 1e-6


class MultiPowerLaw(AbstractLossModel):
    r"""Multi-Power Law (Luo et al., 2025, arXiv:2503.12811).

        L(t) = L_0 + A (S_1(t) + S_W)^{-alpha} - LD(t),
        LD(t) = B sum_{k=1}^{t} (lr_{k-1} - lr_k) G(lr_k^{-gamma} S_k(t)),
        G(x) = 1 - (C x + 1)^{-beta},    S_k(t) = sum_{tau=k}^{t} lr_tau,

    evaluated after ``s`` updates at ``t = s - 1`` (``S_1 = sum_{tau<s} lr_tau``).

    ``LD`` is a double sum, O(T^2) done directly. Here ``(1 + x)^{-beta}`` is written as the
    Gamma mixture ``int Gamma(z; beta) exp(-z x) dz`` and discretised on ``num_rates`` log-spaced
    rates ``r_j``; each rate contributes a linear recurrence over steps,

        M_j(t) = exp(-r_j lr_t) (M_j(t-1) + (lr_t - lr_{t-1}) p_j(C lr_t^{-gamma})),

    so ``LD`` costs O(T x num_rates) in time and O(T) in memory. With ``num_rates=256`` it
    matches the direct sum to 1e-12 relative (``tests/test_laws.py``; :meth:`loss_drop_direct` is
    the direct sum); the default 96 is within about 1e-6 of ``LD``.
    """

    loss_inf: Float[Array, ""]
    amplitude: Float[Array, ""]
    exponent: Float[Array, ""]
    drop_amplitude: Float[Array, ""]
    drop_scale: Float[Array, ""]
    drop_exponent: Float[Array, ""]
    lr_exponent: Float[Array, ""]
    offset: Float[Array, ""]
    num_rates: int = eqx.field(static=True)

    default_free: ClassVar[tuple[str, ...]] = (
        "loss_inf", "amplitude", "exponent", "drop_amplitude", "drop_scale", "drop_exponent", "lr_exponent",
    )

    def __init__(self, *, loss_inf: ArrayLike = 2.0, amplitude: ArrayLike = 0.5, exponent: ArrayLike = 0.5,
                 drop_amplitude: ArrayLike = 400.0, drop_scale: ArrayLike = 2.0,
                 drop_exponent: ArrayLike = 0.6, lr_exponent: ArrayLike = 0.6, offset: ArrayLike = 0.0,
                 num_rates: int = DEFAULT_NUM_RATES):
        if num_rates < 2:
            raise ValueError(f"`num_rates` must be at least 2, got {num_rates}.")
        self.loss_inf = jnp.asarray(loss_inf, dtype=float)
        self.amplitude = jnp.asarray(amplitude, dtype=float)
        self.exponent = jnp.asarray(exponent, dtype=float)
        self.drop_amplitude = jnp.asarray(drop_amplitude, dtype=float)
        self.drop_scale = jnp.asarray(drop_scale, dtype=float)
        self.drop_exponent = jnp.asarray(drop_exponent, dtype=float)
        self.lr_exponent = jnp.asarray(lr_exponent, dtype=float)
        self.offset = jnp.asarray(offset, dtype=float)
        self.num_rates = int(num_rates)

    def _kernel_scale(self, lr: Array) -> Array:
        """``C lr_k^{-gamma}`` with the LR floored at ``LR_FLOOR`` times the peak."""
        floor = LR_FLOOR * jnp.max(lr)
        return self.drop_scale * jnp.maximum(lr, floor) ** (-self.lr_exponent)

    def loss_drop_sum(self, lr: Array) -> Array:
        """``sum_{k=1}^{t} (lr_k - lr_{k-1}) G(...)`` for ``t = 0 .. T-1`` (so ``LD = -B x this``)."""
        beta = self.drop_exponent
        rises = jnp.concatenate([jnp.zeros((1,), lr.dtype), jnp.diff(lr)])  # lr_k - lr_{k-1}
        scale = self._kernel_scale(lr)
        total_area = jnp.sum(lr)
        low = jnp.log(TAIL / total_area)
        high = jnp.log(TOP * jnp.max(jnp.where(rises != 0, scale, 0.0)) + TOP)
        # The grid is a quadrature choice, not part of the model: no derivative flows through it,
        # which keeps the decay factors constant under differentiation (half the tangent work).
        low, high = jax.lax.stop_gradient((low, high))
        log_rates = jnp.linspace(low, high, self.num_rates)
        spacing = log_rates[1] - log_rates[0]
        # Trapezoid rule for the Gamma(beta) density of z = r / c on the log grid, plus the exact
        # mass below the grid lumped into a non-decaying mode. There the density grows like
        # z^beta, so the first node carries the Euler-Maclaurin end correction h/2 + beta h^2/12.
        trapezoid = jnp.ones(self.num_rates).at[0].set(0.5 + beta * spacing / 12) * spacing
        rates, log_norm = jnp.exp(log_rates), gammaln(beta)
        lumped = gammainc(beta, jnp.exp(low) / scale)

        def step(modes, inputs):
            lr_t, rise, log_scale = inputs
            log_z = log_rates - log_scale
            weights = jnp.exp(beta * log_z - jnp.exp(log_z) - log_norm) * trapezoid
            decay = jnp.exp(-rates * lr_t)
            modes = decay * modes + decay * (rise * weights)
            return modes, jnp.sum(modes)

        # One step at a time, keeping only the sum over rates: memory O(T + num_rates) per run,
        # not O(T x num_rates) (a fit's starts and tangents, or a ranking's draws, multiply it).
        _, remaining = jax.lax.scan(step, jnp.zeros(self.num_rates, scale.dtype), (lr, rises, jnp.log(scale)))
        return jnp.cumsum(rises * (1.0 - lumped)) - remaining

    def loss_drop_direct(self, lr: Array, steps) -> Array:
        """The same sum computed directly, O(T) per step: the reference for tests and benchmarks."""
        lr = jnp.asarray(lr, dtype=float)
        rises = jnp.concatenate([jnp.zeros((1,), lr.dtype), jnp.diff(lr)])
        scale = self._kernel_scale(lr)
        inclusive = jnp.cumsum(lr)
        k = jnp.arange(lr.shape[0])

        def at(t):
            area = inclusive[t] - inclusive + lr  # S_k(t) = sum_{tau=k}^{t} lr_tau
            g = 1.0 - (1.0 + scale * area) ** (-self.drop_exponent)
            return jnp.sum(jnp.where((k >= 1) & (k <= t), rises * g, 0.0))

        return jax.lax.map(at, jnp.asarray(np.asarray(steps) - 1), batch_size=16)

    def _loss(self, run, steps) -> Array:
        lr = run.lr
        steps = np.asarray(steps)
        area = cumulative_lr(lr)[steps]
        drop = jnp.concatenate([jnp.zeros((1,), lr.dtype), self.loss_drop_sum(lr)])[steps]
        return self.loss_inf + self.amplitude * (area + self.offset) ** (-self.exponent) + self.drop_amplitude * drop

    def parameters(self) -> dict[str, Parameter]:
        return {
            **power_law_parameters(),
            "drop_amplitude": Parameter("drop_amplitude", True, "loss-drop amplitude B"),
            "drop_scale": Parameter("drop_scale", True, "loss-drop scale C"),
            "drop_exponent": Parameter("drop_exponent", True, "loss-drop exponent beta"),
            "lr_exponent": Parameter("lr_exponent", False, "LR exponent gamma"),
            "offset": Parameter("offset", False, "cumulative-LR offset S_W"),
        }

    def initial_guess(self, curves: Sequence) -> MultiPowerLaw:
        low, peak, _ = scale_guess(curves)
        start = power_law_guess(curves)
        return self.replace(**start, drop_amplitude=0.3 * (low - start["loss_inf"]) / peak, drop_scale=2.0,
                            drop_exponent=0.6, lr_exponent=0.6)
