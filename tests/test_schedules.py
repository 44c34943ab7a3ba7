import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlaws


def test_constant_with_warmup():
    s = optlaws.constant(1e-3, 100, warmup=10)
    lr = np.asarray(s.lr)
    assert s.total_steps == 100
    np.testing.assert_allclose(lr[:10], 1e-3 * np.arange(10) / 10, rtol=1e-6)
    np.testing.assert_allclose(lr[10:], 1e-3)


def test_cosine_matches_formula():
    s = optlaws.cosine(3e-4, 1000, final=3e-5, warmup=100)
    t = np.arange(100, 1000)
    expected = 3e-5 + 0.5 * (3e-4 - 3e-5) * (1 + np.cos(np.pi * (t - 100) / 900))
    np.testing.assert_allclose(np.asarray(s.lr)[100:], expected, rtol=1e-5)


@pytest.mark.parametrize("shape", ["linear", "cosine", "sqrt", "exponential"])
def test_wsd_shapes(shape):
    s = optlaws.wsd(1.0, 1000, decay_frac=0.2, shape=shape, final=0.1)
    lr = np.asarray(s.lr)
    np.testing.assert_allclose(lr[:800], 1.0)
    x = (np.arange(800, 1000) - 800) / 200
    expected = {
        "linear": 1 - 0.9 * x,
        "cosine": 0.1 + 0.45 * (1 + np.cos(np.pi * x)),
        "sqrt": 1 - 0.9 * np.sqrt(x),
        "exponential": 0.1**x,
    }[shape]
    np.testing.assert_allclose(lr[800:], expected, rtol=1e-5)
    assert np.all(np.diff(lr[800:]) < 0)


def test_step_decay_is_8_1_1():
    lr = np.asarray(optlaws.step_decay(1.0, 1000).lr)
    np.testing.assert_allclose(lr[[0, 799, 800, 899, 900, 999]],
                               [1, 1, 10**-0.5, 10**-0.5, 0.1, 0.1], rtol=1e-6)


def test_inverse_sqrt_and_cyclic():
    lr = np.asarray(optlaws.inverse_sqrt(1.0, 400, warmup=100).lr)
    np.testing.assert_allclose(lr[[100, 400 - 1]], [1.0, np.sqrt(100 / 399)], rtol=1e-6)
    cyc = np.asarray(optlaws.cyclic(1.0, 300, period=100, final=0.0).lr)
    np.testing.assert_allclose(cyc[[0, 100, 200]], 1.0)
    assert cyc[99] < 0.01


def test_from_optax_equals_optax():
    fn = optax.warmup_cosine_decay_schedule(0.0, 1e-3, 50, 500, end_value=1e-5)
    s = optlaws.from_optax(fn, 500)
    np.testing.assert_allclose(np.asarray(s.lr), [fn(t) for t in range(500)], rtol=1e-5, atol=1e-12)


def test_concatenate_and_add():
    s = optlaws.constant(1.0, 10) + optlaws.constant(0.5, 5)
    assert s.total_steps == 15
    np.testing.assert_allclose(np.asarray(s.lr)[9:11], [1.0, 0.5])


def test_spec_matches_builders():
    spec = "wsd:peak=3e-4,warmup=2160,total=24000,decay_frac=0.2,shape=linear,final=3e-5"
    np.testing.assert_array_equal(
        np.asarray(optlaws.parse_schedule(spec).lr),
        np.asarray(optlaws.wsd(3e-4, 24000, warmup=2160, decay_frac=0.2, shape="linear", final=3e-5).lr),
    )
    two = optlaws.parse_schedule("constant:peak=3e-4,total=8000,warmup=2160+constant:peak=3e-5,total=8000")
    assert two.total_steps == 16000 and float(two.lr[-1]) == pytest.approx(3e-5)
    step = optlaws.parse_schedule("step:peak=1,total=100,milestones=0.5/0.75,factor=0.5")
    np.testing.assert_allclose(np.asarray(step.lr)[[0, 50, 75]], [1, 0.5, 0.25])


def test_concrete_arguments_compile_nothing(caplog):
    """Builders with concrete arguments compute in NumPy, and so do stacking runs and checking a
    loss for divergence: eager jax.numpy would compile each operation again for every new length
    (about 0.7 s per schedule)."""
    from optlaws._predict import first_blow_up

    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        for total in (1001, 1013):
            phases = [optlaws.wsd(1e-3, total, warmup=10, decay_frac=0.3, shape="1-sqrt"),
                      optlaws.cosine(1e-3, total + 1, final=1e-4, warmup=10), optlaws.linear(1e-3, total + 2),
                      optlaws.constant(1e-3, total + 3), optlaws.step_decay(1e-3, total + 4),
                      optlaws.inverse_sqrt(1e-3, total + 5, warmup=10), optlaws.cyclic(1e-3, total + 6, period=100)]
            joined = optlaws.concatenate(*phases)
            assert joined.peak == pytest.approx(1e-3)
            optlaws.stack_runs([optlaws.Run(p) for p in phases])
            assert int(first_blow_up(np.linspace(3.0, 2.0, total))) == -1
    compiled = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert not compiled, compiled


def test_family_is_one_vmap():
    fracs = jnp.linspace(0.1, 0.5, 5)
    lrs = jax.vmap(lambda f: optlaws.wsd(1.0, 100, decay_frac=f).lr)(fracs)
    assert lrs.shape == (5, 100)
    # The traced family computes in float32, the concrete builder in float64 and then rounds: the
    # cooldown's last steps (1 - x, x near 1) differ by float32's absolute rounding.
    np.testing.assert_allclose(np.asarray(lrs[2]), np.asarray(optlaws.wsd(1.0, 100, decay_frac=0.3).lr),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: optlaws.constant(-1.0, 10), "`peak`"),
        (lambda: optlaws.constant(1.0, 0), "`total`"),
        (lambda: optlaws.wsd(1.0, 10, shape="zigzag"), "`shape`"),
        (lambda: optlaws.wsd(1.0, 10, decay_frac=1.5), "`decay_frac`"),
        (lambda: optlaws.wsd(1.0, 10, shape="exponential", final=0.0), "`final`"),
        (lambda: optlaws.from_array([1.0, float("nan")]), "not finite at step 1"),
        (lambda: optlaws.from_array([1.0, -1.0]), "negative"),
        (lambda: optlaws.from_array([]), "empty"),
        (lambda: optlaws.parse_schedule("zigzag:peak=1,total=10"), "unknown schedule 'zigzag'"),
        (lambda: optlaws.parse_schedule("constant:peak=1"), "missing `total`"),
        (lambda: optlaws.parse_schedule("constant:peak=abc,total=10"), "not a number"),
        (lambda: optlaws.parse_schedule("cosine:peak=1,total=10,bogus=3"), "bogus"),
    ],
)
def test_bad_schedules_name_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("spec, message", [
    ("wsd:peak=1e-3,total=100.5", "`total` must be a whole number"),
    ("wsd:peak=1e-3,total=100,warmup=10.5", "`warmup` must be a whole number"),
    ("wsd:peak=1e-3,total=100,total=200", "`total` is given twice"),
    ("wsd:peak=inf,total=100", "`peak` is not finite"),
    ("wsd:peak=1e-3,total=1e400", "`total` is not finite"),
    ("constant:peak=1e-3,total=5000000000", "past the maximum of 1,000,000,000: .* about 200 GB"),
    ("wsd:peak=1e-3,total=100,colour=2", "wsd has no key 'colour'; its keys: peak, total, decay_frac"),
])
def test_spec_parser_refuses_what_it_would_have_coerced(spec, message):
    with pytest.raises(ValueError, match=message):
        optlaws.parse_schedule(spec)


def test_spec_with_one_milestone():
    schedule = optlaws.parse_schedule("step:peak=1e-3,total=100,milestones=0.5")
    assert float(schedule.lr[60]) < float(schedule.lr[40])
