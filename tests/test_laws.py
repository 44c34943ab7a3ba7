"""Closed-form baseline laws: exact formulas, the fast loss-drop sum, parameter recovery."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optlaws

SCHEDULES = {
    "constant": optlaws.constant(3e-4, 6000, warmup=500),
    "cosine": optlaws.cosine(3e-4, 6000, final=3e-5, warmup=500),
    "wsd": optlaws.wsd(3e-4, 6000, warmup=500, decay_frac=0.2, final=3e-5, shape="exponential"),
    "two_phase": optlaws.constant(3e-4, 3000, warmup=500) + optlaws.constant(5e-5, 3000),
    "rewarm": optlaws.cosine(3e-4, 3000, warmup=500, final=3e-5) + optlaws.cosine(3e-4, 3000, warmup=300),
}
STEPS = np.arange(600, 6001, 100)


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("beta, gamma", [(0.6, 0.65), (1.5, 0.0), (0.3, -0.2)])
def test_fast_loss_drop_equals_direct_double_sum(name, beta, gamma):
    with optlaws.float64():
        law = optlaws.MultiPowerLaw(drop_scale=2.0, drop_exponent=beta, lr_exponent=gamma, num_rates=256)
        lr = jnp.asarray(SCHEDULES[name].lr, dtype=jnp.float64)
        fast = np.asarray(law.loss_drop_sum(lr))[STEPS - 1]
        direct = np.asarray(law.loss_drop_direct(lr, STEPS))
    scale = np.max(np.abs(direct))
    assert np.max(np.abs(fast - direct)) <= 1e-12 * scale


def test_loss_drop_sum_keeps_no_array_of_steps_by_rates():
    """The recurrence's working memory grows with the steps, not with steps x rates: a ranking's
    64 draws of a chunk of 25k-step runs once asked for 45 GB."""
    law = optlaws.MultiPowerLaw(num_rates=96)
    lr = jnp.asarray(optlaws.wsd(1e-3, 20000, warmup=100, decay_frac=0.2).lr, dtype=jnp.float32)
    memory = jax.jit(lambda model, x: model.loss_drop_sum(x)).lower(law, lr).compile().memory_analysis()
    if memory is None:
        pytest.skip("this JAX backend reports no memory analysis")
    assert memory.temp_size_in_bytes < 64 * 4 * lr.size  # float32 numbers per step; arrays of 96 rates: 3 x 96


def test_annealing_area_is_the_momentum_of_lr_drops():
    lr = np.asarray(SCHEDULES["wsd"].lr, dtype=float)[:800]
    lam, m, s2 = 1 - 1 / 50.0, 0.0, [0.0]
    for i in range(len(lr)):
        m = lam * m + (lr[i - 1] - lr[i] if i > 0 else 0.0)
        s2.append(s2[-1] + m)
    with optlaws.float64():
        law = optlaws.AnnealingLaw(memory=50.0)
        got = np.asarray(law.annealing_area(jnp.asarray(lr)))
    np.testing.assert_allclose(got, s2, rtol=1e-10, atol=1e-18)


def reference_bound(etas, distance):
    """Schaipp et al.'s `_compute_refined_rate` (lr-scheduling, src/scheduled), with G = 1."""
    total, cumsum = etas.sum(), etas.cumsum()
    sq = etas**2
    alpha = total - cumsum
    alpha[-1] += 1e-10
    betas = alpha + etas
    gammas = sq.sum() - sq.cumsum() + sq
    term3 = 0.5 * ((etas / alpha) * (gammas / betas))[:-1].sum()
    return distance**2 / (2 * total) + sq.sum() / (2 * total) + term3


def test_convex_bound_matches_the_papers_code():
    lr = np.asarray(SCHEDULES["cosine"].lr, dtype=float)
    steps = np.array([700, 2500, 6000])
    with optlaws.float64():
        law = optlaws.ConvexBound(distance=3.0)
        got = np.asarray(law.bound(lr, steps))
    expected = [reference_bound(lr[:t].copy(), 3.0) for t in steps]
    np.testing.assert_allclose(got, expected, rtol=1e-10)


TRUTHS = {
    "power": (optlaws.PowerLaw, dict(loss_inf=2.6, amplitude=0.6, exponent=0.45), 2e-3),
    "lra": (optlaws.AnnealingLaw, dict(loss_inf=2.6, amplitude=0.6, exponent=0.45, annealing=0.4, memory=800.0), 0.02),
    "mpl": (optlaws.MultiPowerLaw, dict(loss_inf=2.65, amplitude=0.6, exponent=0.45, drop_amplitude=440.0,
                                        drop_scale=2.1, drop_exponent=0.6, lr_exponent=0.65), 0.05),
    "convex": (optlaws.ConvexBound, dict(loss_inf=2.7, scale=0.002, distance=2.0), 0.01),
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "mpl" else n for n in TRUTHS])
def test_each_law_recovers_its_own_parameters(name):
    cls, values, tolerance = TRUTHS[name]
    truth = cls().replace(**values)
    curves = []
    for key in ("constant", "cosine", "wsd"):
        s = SCHEDULES[key]
        with optlaws.float64():
            loss = np.asarray(truth.loss(s.lr, STEPS))
        curves.append(optlaws.LossCurve(STEPS, loss, s, name=key))
    result = optlaws.fit(cls(), curves, progress=False)
    for key, value in values.items():
        assert result.values[key] == pytest.approx(value, rel=tolerance), key
    assert max(m.max_rel_error for m in result.curves) < 1e-5
    held_out = SCHEDULES["two_phase"]
    with optlaws.float64():
        true_curve = np.asarray(truth.loss(held_out.lr, STEPS))
    predicted = optlaws.predict(result.model, held_out, steps=STEPS).loss
    assert np.max(np.abs(predicted - true_curve) / true_curve) < 1e-4


@pytest.mark.parametrize("name", list(TRUTHS))
def test_laws_vmap_over_schedules(name):
    cls, values, _ = TRUTHS[name]
    law = cls().replace(**values)
    fracs = jnp.array([0.1, 0.3])
    lrs = jax.vmap(lambda f: optlaws.wsd(3e-4, 6000, decay_frac=f, warmup=500, final=3e-5).lr)(fracs)
    batched = jax.vmap(lambda lr: law.loss(lr, STEPS))(lrs)
    looped = jnp.stack([law.loss(lr, STEPS) for lr in lrs])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-5)
