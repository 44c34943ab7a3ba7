"""Sample paths of the SDE behind a moment model, solved with diffrax.

For every mode ``k`` (curvature ``h_k``, noise weight ``w_k``), ``theta_k = mean_k + xi_k`` with

    d mean_k = -s(t) h_k mean_k dt,
    d xi_k = -m(t) h_k xi_k dt + sqrt(4 m(t) T(t) w_k) dW_k,     L = L_inf + sum_k h_k theta_k^2 / 2,

with ``T(t)``, ``m(t)`` and ``s(t)`` the model's temperature, mobility and signal mobility of
update ``floor(t)`` (small-step effective learning rates, equal unless ``mobility_exponent`` or
``signal_mobility_exponent`` is not 1; time is counted in updates), ``mean_k(0) = sqrt(2 signal_k /
h_k)`` and ``xi_k(0) = 0``: with ``s = m`` one linear SDE for ``theta_k``. Euler-Maruyama with
``dt = 1`` is exactly minibatch SGD with Gaussian gradient noise, so its mean loss is the model's
``dynamics="discrete"`` prediction without momentum; as ``dt -> 0`` it tends to the continuous
SDE, whose mean is the ``dynamics="sde"`` prediction. Paths give the spread of the loss across seeds.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import lineax
import numpy as np
from jaxtyping import Array

from .._run import Run
from .._schedules import Schedule
from .models import AbstractSDEModel

__all__ = ["sample_paths"]


def sample_paths(
    model: AbstractSDEModel,
    run: Run | Schedule | Array,
    steps,
    *,
    num_paths: int = 256,
    key: int | Array = 0,
    dt: float = 1.0,
    solver: diffrax.AbstractSolver | None = None,
) -> np.ndarray:
    """Loss along ``num_paths`` independent paths, at ``steps``; shape ``(num_paths, len(steps))``.

    Args:
        model: an SDE model (its spectrum, optimizer and weight-norm dynamics).
        run: a :class:`Run` (or a :class:`Schedule` / per-step learning rates).
        steps: steps at which to record the loss (each in ``[0, T]``).
        num_paths: number of Brownian paths (vmapped).
        key: PRNG seed or key.
        dt: solver step in units of updates.
        solver: a diffrax SDE solver (default Euler-Maruyama, ``diffrax.Euler()``).
    """
    run = model.resolve(run)
    # Both change the spectrum as training goes, which the paths' fixed curvatures do not follow.
    if float(model.area_ceiling) > 0:
        raise NotImplementedError("sample_paths does not model the area ceiling (a spectrum that flattens "
                                  "as training goes); set area_ceiling=0 or use the moments (model.loss).")
    if float(model.sharpening_time) > 0:
        raise NotImplementedError("sample_paths does not model the sharpening (a spectrum that sharpens in "
                                  "from the start); set sharpening_time=0 or use the moments (model.loss).")
    if num_paths < 1:
        raise ValueError(f"`num_paths` must be positive, got {num_paths}.")
    if not dt > 0:
        raise ValueError(f"`dt` must be positive, got {dt!r}.")
    steps = np.asarray(steps, dtype=float)
    total = run.total_steps
    if steps.min() < 0 or steps.max() > total:
        raise ValueError(f"`steps` must lie in [0, {total}].")
    key = jax.random.PRNGKey(key) if isinstance(key, int) else key
    solver = diffrax.Euler() if solver is None else solver

    h = model.spectrum.curvatures
    noise = model.spectrum.noise() * model.reference_batch_size / run.batch_size
    temperature, mobility, signal_mobility = model.temperature_and_mobility(run)
    # The diffusion sqrt(4 m T w) split into its per-step and per-mode factors, each computed once.
    diffusion_rate, mode_scale = jnp.sqrt(mobility * temperature), jnp.sqrt(4.0 * noise)
    # State [mean, xi], one vector (a diagonal operator takes a vector): the mean is deterministic,
    # so its half of the diffusion is 0.
    y0 = jnp.concatenate([jnp.sqrt(2.0 * model.spectrum.signal() / h), jnp.zeros_like(h)])
    mode_scale = jnp.concatenate([jnp.zeros_like(h), mode_scale])
    both = jnp.concatenate([h, h])

    def at(rate, t):
        return rate[jnp.clip(jnp.floor(t).astype(int), 0, total - 1)]

    def drift(t, y, args):
        rates = jnp.concatenate([jnp.full_like(h, at(signal_mobility, t)), jnp.full_like(h, at(mobility, t))])
        return -rates * both * y

    def diffusion(t, y, args):
        return lineax.DiagonalLinearOperator(at(diffusion_rate, t) * mode_scale)

    def one_path(path_key):
        # Fixed steps (StepTo) make the cheap, non-reusable Brownian path valid.
        brownian = diffrax.UnsafeBrownianPath(shape=y0.shape, key=path_key)
        terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, brownian))
        solution = diffrax.diffeqsolve(
            terms, solver, 0.0, float(total), None, y0,
            saveat=diffrax.SaveAt(ts=jnp.asarray(steps)),
            stepsize_controller=diffrax.StepTo(jnp.arange(0.0, total + dt / 2, dt)),
            max_steps=int(np.ceil(total / dt)) + 8,
            # The default adjoint refuses UnsafeBrownianPath; ForwardMode (diffrax >= 0.6.1) and,
            # before it, DirectAdjoint accept it.
            adjoint=getattr(diffrax, "ForwardMode", diffrax.DirectAdjoint)(),
        )
        theta = solution.ys[..., :h.shape[0]] + solution.ys[..., h.shape[0]:]  # mean + xi
        return model.loss_inf + 0.5 * jnp.sum(h * theta**2, axis=-1)

    # The peak-LR floor after each recorded step: lr_max is the largest LR of the updates so far.
    lr_max = np.concatenate([[0.0], np.maximum.accumulate(np.asarray(run.lr))])[np.floor(steps).astype(int)]
    floor = np.asarray(model._floor(jnp.asarray(lr_max)))
    return np.asarray(jax.jit(jax.vmap(one_path))(jax.random.split(key, num_paths))) + floor
