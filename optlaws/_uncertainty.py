"""Parameter uncertainty of a fit, and prediction bands drawn from it."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._model import AbstractLossModel, ParameterMap
from ._run import Run

__all__ = ["ParameterUncertainty"]

DEFAULT_NUM_SAMPLES = 256


class ParameterUncertainty(eqx.Module):
    r"""What a fit leaves uncertain: a Gaussian over the fitted parameters, in the fit's
    coordinates (log for positive ones), and the model's own error on a new run.

        theta ~ N(mean, covariance),    loss = model(theta).loss(run) * exp(discrepancy * z),
        z ~ N(0, 1)

    Prediction bands are quantiles of the loss over ``num_samples`` draws of ``(theta, z)``,
    evaluated as one vmapped batch. One ``z`` per draw serves every step: the model's error on a
    run moves its whole curve, not each point independently.

    Attributes:
        parameters: which parameters are uncertain, and their coordinates.
        mean: the fitted ``theta``.
        covariance: its covariance (see ``optlaws.fit``'s ``covariance`` argument).
        discrepancy: RMS log-loss error of the model on a run it was not fitted to (see
            ``optlaws.fit``'s ``discrepancy``); ``0`` for bands of the parameters alone.
    """

    parameters: ParameterMap
    mean: Float[Array, " p"]
    covariance: Float[Array, "p p"]
    discrepancy: Float[Array, ""] = eqx.field(default_factory=lambda: jnp.asarray(0.0), converter=jnp.asarray)

    def __check_init__(self):
        p = len(self.parameters.names)
        if self.mean.shape != (p,) or self.covariance.shape != (p, p):
            raise ValueError(
                f"ParameterUncertainty: {p} parameter names need `mean` of shape ({p},) and "
                f"`covariance` of shape ({p}, {p}), got {self.mean.shape} and {self.covariance.shape}."
            )
        if self.discrepancy.shape != () or not bool(self.discrepancy >= 0):
            raise ValueError(
                f"ParameterUncertainty: `discrepancy` must be a non-negative scalar, got {self.discrepancy}.")

    def draws(self, num_samples: int = DEFAULT_NUM_SAMPLES, key: int | Array = 0) -> Float[Array, "n p"]:
        """``num_samples`` draws of ``theta`` (a symmetric square root: valid for a singular covariance)."""
        if num_samples < 1:
            raise ValueError(f"`num_samples` must be positive, got {num_samples}.")
        key = as_key(key)
        values, vectors = jnp.linalg.eigh(0.5 * (self.covariance + self.covariance.T))
        root = vectors * jnp.sqrt(jnp.clip(values, 0.0))
        z = jax.random.normal(key, (num_samples, self.mean.shape[0]), dtype=self.mean.dtype)
        return self.mean + z @ root.T

    def sample_models(self, base: AbstractLossModel, num_samples: int = DEFAULT_NUM_SAMPLES,
                      key: int | Array = 0) -> AbstractLossModel:
        """A batch of models (leading axis ``num_samples``) drawn around ``base``."""
        return jax.vmap(lambda theta: self.parameters.to_model(base, theta))(self.draws(num_samples, key))

    def band(
        self,
        base: AbstractLossModel,
        run: Run,
        steps,
        *,
        level: float = 0.9,
        num_samples: int = DEFAULT_NUM_SAMPLES,
        key: int | Array = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The central ``level`` band ``(low, high)`` of the loss of ``run`` at ``steps``.

        Draws whose prediction is not finite (they diverge) count as ``+inf``.
        """
        _check_level(level)
        losses = _sampled_losses(self, base, run, tuple(int(s) for s in np.asarray(steps)), num_samples, key)
        return quantile_band(np.asarray(losses), level)


def as_key(key: int | Array) -> Array:
    """A PRNG key from a seed (or the key itself)."""
    return jax.random.PRNGKey(key) if isinstance(key, int) else key


def discrepancy_factors(discrepancy, key: Array, num_samples: int, dtype) -> Array:
    """``exp(discrepancy z)`` for each of ``num_samples`` draws (shape ``(num_samples, 1)``: one
    ``z`` serves every step and every run of a draw)."""
    return jnp.exp(discrepancy * jax.random.normal(key, (num_samples, 1), dtype=dtype))


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"`band` must be a probability in (0, 1), got {level!r}.")


def quantile_band(losses: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The central ``level`` range over draws (axis 0); a draw whose loss is not finite or not
    positive (it diverges) counts as ``+inf``."""
    _check_level(level)
    losses = np.where(np.isfinite(losses) & (losses > 0), losses, np.inf)
    low, high = np.quantile(losses, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return low, high


@eqx.filter_jit
def _sampled_losses(uncertainty, base, run, steps, num_samples, key):
    parameter_key, discrepancy_key = jax.random.split(as_key(key))
    models = uncertainty.sample_models(base, num_samples, parameter_key)
    losses = jax.vmap(lambda model: model.loss(run, steps))(models)
    return losses * discrepancy_factors(uncertainty.discrepancy, discrepancy_key, num_samples, losses.dtype)
