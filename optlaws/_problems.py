"""A least-squares problem with a known spectrum, trained for real with optax.

It is where the moment models can be checked against the optimizers they describe, and the
small built-in example: linear regression on Gaussian features ``x ~ N(0, diag(h))`` with labels
``y = x . theta_star + eps``, ``eps ~ N(0, label_noise^2)``, trained by minibatch SGD or Adam on
fresh samples. Its population loss is exactly

    L(theta) = sum_i h_i (theta_i - theta_star_i)^2 / 2 + label_noise^2 / 2,

and the minibatch gradient noise in coordinate ``i`` has variance
``(label_noise^2 + 2 L_excess) h_i / B`` (plus a small ``h_i^2 delta_i^2 / B``), dominated by the
label noise once the excess loss is small.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from ._curves import LossCurve
from ._predict import default_steps
from ._run import Run, as_run, name_of
from ._schedules import Schedule
from ._sde.models import AdamModel, SGDModel
from ._sde.spectrum import DiscreteSpectrum

__all__ = ["LeastSquaresProblem"]


class LeastSquaresProblem(eqx.Module):
    """Linear regression with feature variances ``curvatures`` (the Hessian's eigenvalues).

    Attributes:
        curvatures: ``h_i``, shape ``(d,)``.
        displacement: ``theta_0 - theta_star``, shape ``(d,)``.
        label_noise: standard deviation of the label noise.
        batch_size: minibatch size, and the reference batch size of its moment models.
    """

    curvatures: Float[Array, " d"]
    displacement: Float[Array, " d"]
    label_noise: float = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)

    @classmethod
    def power_law(
        cls,
        *,
        dim: int = 256,
        curvature_exponent: float = 1.3,
        signal_exponent: float = 0.3,
        label_noise: float = 1.0,
        initial_excess: float = 0.5,
        batch_size: int = 16,
    ) -> LeastSquaresProblem:
        """``h_i = i^-curvature_exponent`` and initial excess loss per mode ``~ i^-(1 + signal_exponent)``
        summing to ``initial_excess``: a power law in the cumulative learning rate, as in
        language-model training."""
        i = np.arange(1, dim + 1, dtype=float)
        h = i**-curvature_exponent
        excess = i ** -(1.0 + signal_exponent)
        excess = initial_excess * excess / excess.sum()
        return cls(jnp.asarray(h), jnp.asarray(np.sqrt(2 * excess / h)), float(label_noise), int(batch_size))

    @property
    def loss_inf(self) -> float:
        return 0.5 * self.label_noise**2

    def loss(self, theta_minus_star: Array) -> Array:
        """Population loss at ``theta = theta_star + theta_minus_star``."""
        return 0.5 * jnp.sum(self.curvatures * theta_minus_star**2, axis=-1) + self.loss_inf

    def train(
        self,
        optimizer: Callable[[optax.Schedule], optax.GradientTransformation],
        run: Run | Schedule,
        *,
        seeds: int = 8,
        every: int = 25,
        key: int = 0,
        name: str | None = None,
    ) -> LossCurve:
        """Train with ``optimizer(learning_rate_schedule)`` on fresh minibatches of
        ``run.batch_size`` (default: the problem's ``batch_size``).

        Returns the population loss averaged over ``seeds`` independent runs, every ``every``
        steps; the curve carries ``run`` with its batch size. The optimizer is the caller's: its
        settings should match the run's (``momentum``, ``weight_decay``). Example::

            problem.train(lambda lr: optax.sgd(lr, momentum=0.9),
                          optlaws.Run(schedule, momentum=0.9, batch_size=64))
        """
        name = name_of(run, name)
        run = as_run(run)
        if run.batch_size is None:
            run = run.replace(batch_size=self.batch_size)
        batch_size = int(run.batch_size)
        if batch_size != float(run.batch_size):
            raise ValueError(f"`run.batch_size` must be a whole number of samples, got {float(run.batch_size)}.")
        lr = run.lr
        tx = optimizer(lambda count: lr[jnp.minimum(count, lr.shape[0] - 1)])
        h = self.curvatures
        d = h.shape[0]

        def one_seed(seed_key):
            def step(carry, step_key):
                delta, opt_state = carry
                kx, ke = jax.random.split(step_key)
                x = jax.random.normal(kx, (batch_size, d)) * jnp.sqrt(h)
                noise = self.label_noise * jax.random.normal(ke, (batch_size,))
                grad = x.T @ (x @ delta - noise) / batch_size
                updates, opt_state = tx.update(grad, opt_state, delta)
                delta = optax.apply_updates(delta, updates)
                return (delta, opt_state), self.loss(delta)

            keys = jax.random.split(seed_key, lr.shape[0])
            _, losses = jax.lax.scan(step, (self.displacement, tx.init(self.displacement)), keys)
            return losses

        losses = jax.jit(jax.vmap(one_seed))(jax.random.split(jax.random.PRNGKey(key), seeds))
        steps = default_steps(run.total_steps, every)
        mean = np.asarray(jnp.mean(losses, axis=0))[steps - 1]
        return LossCurve(steps, mean, run, name=name,
                         metadata={"seeds": seeds, "source": "LeastSquaresProblem.train"})

    def _mode_losses(self):
        h = self.curvatures
        return h, 0.5 * h * self.displacement**2, self.label_noise**2 * h / self.batch_size

    def sgd_model(self, *, block: int = 1) -> SGDModel:
        """The exact moment model of ``optax.sgd(lr, momentum)`` on this problem (label-noise part;
        the momentum and batch size are the run's)."""
        h, signal, noise_var = self._mode_losses()
        spectrum = DiscreteSpectrum(h, signal, noise_var / 4.0)
        return SGDModel(spectrum=spectrum, loss_inf=self.loss_inf, reference_batch_size=self.batch_size,
                        block=block)

    def adam_model(self, *, eps: float = 1e-8, block: int = 1) -> AdamModel:
        """The moment model of ``optax.adam(lr, b1, b2, eps)`` with the stationary preconditioner
        ``1 / (sqrt(v_i) + eps)``, ``v_i = label_noise^2 h_i / B`` (any ``b2`` close to 1; ``b1``
        and the batch size are the run's; run it with ``weight_decay=0``). A linear model has no
        scale-invariant weights, so its weight norm does not move (``reference_weight_decay=0``)."""
        h, signal, noise_var = self._mode_losses()
        precondition = 1.0 / (jnp.sqrt(noise_var) + eps)
        spectrum = DiscreteSpectrum(precondition * h, signal, precondition * noise_var / 4.0)
        return AdamModel(spectrum=spectrum, loss_inf=self.loss_inf, reference_batch_size=self.batch_size,
                         norm_init=1.0, reference_weight_decay=0.0, mobility_exponent=1.0,
                         signal_mobility_exponent=1.0, block=block)
