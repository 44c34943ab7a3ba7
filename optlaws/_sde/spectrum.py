"""Landscape spectra: curvatures of the modes, their initial (signal) loss and their noise."""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln
from jaxtyping import Array, ArrayLike, Float

from .._model import Parameter

__all__ = ["AbstractSpectrum", "DiscreteSpectrum", "PowerLawSpectrum"]

DEFAULT_NUM_MODES = 64
# Grid of curvatures h as per-step rates h * reference_lr: 1e-7 covers the slowest progress
# visible in 10^6 steps, 1 the fastest mode that is stable for plain SGD at the reference LR.
DEFAULT_SPAN = (1e-7, 1.0)


class AbstractSpectrum(eqx.Module):
    """Modes ``k`` of a quadratic landscape near the optimizer's path.

    Each mode has a curvature ``h_k`` (in units of 1 / learning rate, in the optimizer's
    preconditioned coordinates), an initial excess loss ``signal_k`` and a noise weight
    ``noise_k``: its stationary loss per unit of effective learning rate.
    """

    curvatures: eqx.AbstractVar[Float[Array, " K"]]

    @abc.abstractmethod
    def signal(self) -> Float[Array, " K"]:
        """Initial excess loss of each mode."""

    @abc.abstractmethod
    def noise(self) -> Float[Array, " K"]:
        """Stationary loss of each mode per unit of learning rate (small-step limit)."""

    @abc.abstractmethod
    def parameters(self) -> dict[str, Parameter]:
        """Fittable scalars, by name, with paths relative to the spectrum."""


class PowerLawSpectrum(AbstractSpectrum):
    r"""Power-law signal and noise spread over log-spaced modes by quadrature.

    Signal: a density ``\propto h^{alpha - 1}`` normalised so that, for a constant schedule,

        sum_k signal_k exp(-2 h_k S) = A S^{-alpha},    S = cumulative learning rate,

    i.e. ``signal_k = A (2 h_k)^alpha / Gamma(alpha) * dlog h`` (the power law in cumulative LR
    of Kaplan-style fits, here produced by modes that finish learning one after another).

    Noise: ``noise_k \propto h_k^beta exp(-h_k / h_c)`` with ``sum_k noise_k = W``, so the noise
    floor of a long constant-LR phase is ``W * lr`` and its drain after an LR drop follows the
    spread of relaxation rates ``2 h_k lr``.

    Attributes:
        signal_amplitude: ``A``.
        signal_exponent: ``alpha`` (> 0).
        noise_amplitude: ``W``, loss per unit learning rate.
        noise_exponent: ``beta``.
        noise_cutoff: ``h_c`` in units of 1 / learning rate (``inf``: none).
        curvatures: the log-spaced grid ``h_k``.
    """

    signal_amplitude: Float[Array, ""]
    signal_exponent: Float[Array, ""]
    noise_amplitude: Float[Array, ""]
    noise_exponent: Float[Array, ""]
    noise_cutoff: Float[Array, ""]
    curvatures: Float[Array, " K"]

    def __init__(
        self,
        *,
        signal_amplitude: ArrayLike = 0.5,
        signal_exponent: ArrayLike = 0.5,
        noise_amplitude: ArrayLike = 100.0,
        noise_exponent: ArrayLike = 0.0,
        noise_cutoff: ArrayLike = jnp.inf,
        reference_lr: float = 1e-3,
        num_modes: int = DEFAULT_NUM_MODES,
        span: tuple[float, float] = DEFAULT_SPAN,
        curvatures: ArrayLike | None = None,
    ):
        if curvatures is None:
            if not reference_lr > 0:
                raise ValueError(f"`reference_lr` must be positive, got {reference_lr!r}.")
            if num_modes < 2:
                raise ValueError(f"`num_modes` must be at least 2, got {num_modes}.")
            low, high = span
            if not 0 < low < high:
                raise ValueError(f"`span` must be (low, high) with 0 < low < high, got {span!r}.")
            curvatures = np.geomspace(low / reference_lr, high / reference_lr, num_modes)  # no program to compile
        self.curvatures = jnp.asarray(curvatures, dtype=float)
        self.signal_amplitude = jnp.asarray(signal_amplitude, dtype=float)
        self.signal_exponent = jnp.asarray(signal_exponent, dtype=float)
        self.noise_amplitude = jnp.asarray(noise_amplitude, dtype=float)
        self.noise_exponent = jnp.asarray(noise_exponent, dtype=float)
        self.noise_cutoff = jnp.asarray(noise_cutoff, dtype=float)

    def _log_spacing(self) -> Array:
        return jnp.log(self.curvatures[1] / self.curvatures[0])

    def signal(self) -> Array:
        alpha = self.signal_exponent
        log_density = alpha * jnp.log(2.0 * self.curvatures) - gammaln(alpha)
        return self.signal_amplitude * jnp.exp(log_density) * self._log_spacing()

    def noise(self) -> Array:
        h = self.curvatures
        log_weight = self.noise_exponent * jnp.log(h / h[-1]) - h / self.noise_cutoff
        weight = jnp.exp(log_weight - jnp.max(log_weight))
        return self.noise_amplitude * weight / jnp.sum(weight)

    def parameters(self) -> dict[str, Parameter]:
        return {
            "signal_amplitude": Parameter("signal_amplitude", True, "signal power-law amplitude A"),
            "signal_exponent": Parameter("signal_exponent", True, "signal power-law exponent alpha"),
            "noise_amplitude": Parameter("noise_amplitude", True, "noise floor per unit LR W"),
            "noise_exponent": Parameter("noise_exponent", False, "noise spectrum exponent beta"),
            "noise_cutoff": Parameter("noise_cutoff", True, "noise cutoff curvature h_c"),
        }


class DiscreteSpectrum(AbstractSpectrum):
    """Explicit modes, e.g. the eigenvalues of a known least-squares problem.

    Attributes:
        curvatures: ``h_k``.
        signal_loss: initial excess loss ``h_k theta_k(0)^2 / 2`` of each mode.
        noise_loss: stationary loss per unit learning rate, ``sigma_k^2 / (4 B)`` for SGD.
    """

    curvatures: Float[Array, " K"]
    signal_loss: Float[Array, " K"]
    noise_loss: Float[Array, " K"]

    def __init__(self, curvatures: ArrayLike, signal_loss: ArrayLike, noise_loss: ArrayLike):
        self.curvatures = jnp.asarray(curvatures, dtype=float)
        self.signal_loss = jnp.asarray(signal_loss, dtype=float)
        self.noise_loss = jnp.asarray(noise_loss, dtype=float)
        shapes = {self.curvatures.shape, self.signal_loss.shape, self.noise_loss.shape}
        if len(shapes) != 1 or self.curvatures.ndim != 1:
            raise ValueError(
                "DiscreteSpectrum: `curvatures`, `signal_loss` and `noise_loss` must be 1-D arrays "
                f"of one length, got shapes {sorted(shapes)}."
            )

    def signal(self) -> Array:
        return self.signal_loss

    def noise(self) -> Array:
        return self.noise_loss

    def parameters(self) -> dict[str, Parameter]:
        return {}
