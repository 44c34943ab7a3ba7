"""The closed forms of heavy-ball second-moment dynamics against the exact recursion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optlaws
from optlaws._sde.dynamics import (
    heavy_ball_equilibrium_factor,
    heavy_ball_log_contraction,
    stability_edge,
)


def transition(x, mu):
    # State (theta, v): v' = mu v - alpha (h theta + xi), theta' = theta + v'; x = alpha h, alpha = 1.
    return np.array([[1 - x, mu], [-x, mu]])


def stationary_loss(x, mu, h=1.0, noise_var=1.0):
    a = transition(x, mu)
    b = np.array([-1.0, -1.0])
    s = np.zeros((2, 2))
    for _ in range(200000):
        new = a @ s @ a.T + noise_var * np.outer(b, b)
        if np.max(np.abs(new - s)) < 1e-15:
            break
        s = new
    return 0.5 * h * s[0, 0]


CASES = [(x, mu) for mu in (0.0, 0.5, 0.9) for x in (1e-4, 0.01, 0.3, 1.0, 1.9)]


@pytest.mark.parametrize("x, mu", CASES)
def test_contraction_is_largest_squared_root(x, mu):
    rho = np.max(np.abs(np.linalg.eigvals(transition(x, mu)))) ** 2
    with optlaws.float64():
        got = float(jnp.exp(heavy_ball_log_contraction(x, mu)))
    assert got == pytest.approx(rho, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("x, mu", [c for c in CASES if c[0] < 2 * (1 + c[1]) and c[0] >= 0.01])
def test_equilibrium_factor_matches_lyapunov_fixed_point(x, mu):
    # alpha = 1, h = x: small-step stationary loss is alpha/(1-mu) * noise_var/4.
    exact = stationary_loss(x, mu, h=x)
    with optlaws.float64():
        q = float(heavy_ball_equilibrium_factor(x, mu))
    assert exact == pytest.approx(q / (1 - mu) / 4, rel=1e-6)


def test_beyond_the_edge_the_moments_grow():
    for mu in (0.0, 0.9):
        edge = float(stability_edge(mu))
        assert float(heavy_ball_log_contraction(0.99 * edge, mu)) < 0
        assert float(heavy_ball_log_contraction(1.01 * edge, mu)) > 0


def test_tiny_steps_are_accurate_in_float32():
    # 1 - (1 - x)^2 would round to 0 in float32; the log form keeps 2x.
    got = heavy_ball_log_contraction(jnp.float32(1e-9), jnp.float32(0.0))
    assert float(got) == pytest.approx(-2e-9, rel=1e-4)


def test_gradients_are_finite_across_regimes():
    xs = jnp.array([0.0, 1e-6, 0.0026, 0.5, 3.9, 50.0])
    grads = jax.vmap(jax.grad(lambda x: heavy_ball_log_contraction(x, 0.9)))(xs)
    assert np.all(np.isfinite(np.asarray(grads)))
