"""Runs as inputs: the Run, its settings in every model, batches of runs, one fit across runs with
different settings, prediction bands, and the FITTED.json format."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlaws
from optlaws._precision import in_float64

TRUE = dict(loss_inf=2.6, signal_amplitude=0.75, signal_exponent=0.46, noise_amplitude=900.0)


def truth_model(**fields):
    return optlaws.AdamModel(reference_lr=3e-4, **fields).replace(**TRUE)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(batch_size=0.0), "`batch_size` must lie in \\(0"),
        (dict(weight_decay=-0.1), "`weight_decay` must lie in \\[0"),
        (dict(momentum=1.0), "`momentum` must lie in \\[0, 1\\)"),
        (dict(momentum=float("nan")), "`momentum`"),
    ],
)
def test_run_settings_are_checked(settings, message):
    with pytest.raises(ValueError, match=message):
        optlaws.Run(optlaws.constant(1e-3, 10), **settings)
    with pytest.raises(ValueError, match="negative"):
        optlaws.Run(np.array([1e-3, -1e-3]))
    with pytest.raises(ValueError, match="no setting"):
        optlaws.Run(optlaws.constant(1e-3, 10)).replace(beta2=0.95)


def test_unrecorded_settings_take_the_models_values():
    model = truth_model(reference_batch_size=256.0)
    schedule = optlaws.cosine(3e-4, 4000, warmup=200)
    explicit = optlaws.Run(schedule, batch_size=256.0, weight_decay=0.1, momentum=0.9)
    with optlaws.float64():
        np.testing.assert_array_equal(model.loss(schedule, [4000]), model.loss(explicit, [4000]))
        assert model.loss(explicit.replace(weight_decay=0.0), [4000]) != model.loss(explicit, [4000])
        assert model.loss(explicit.replace(batch_size=64.0), [4000]) != model.loss(explicit, [4000])
    assert optlaws.SGDModel().resolve(optlaws.Run(schedule)).settings() == dict(
        batch_size=1.0, weight_decay=0.0, momentum=0.0)


def test_laws_ignore_run_settings():
    schedule = optlaws.wsd(3e-4, 3000, warmup=100, decay_frac=0.3)
    run = optlaws.Run(schedule, batch_size=512.0, weight_decay=0.3, momentum=0.5)
    for name in ("power", "lra", "mpl", "convex"):
        law = optlaws.make_model(name)
        np.testing.assert_array_equal(law.loss(run, [1000, 3000]), law.loss(schedule, [1000, 3000]))


def test_stacked_runs_are_one_vmap():
    model = truth_model()
    runs = [optlaws.Run(optlaws.constant(3e-4, 3000, warmup=100), batch_size=64.0, weight_decay=0.1),
            optlaws.Run(optlaws.cosine(6e-4, 2000, warmup=100), batch_size=128.0, weight_decay=0.0)]
    stacked = optlaws.stack_runs(runs)
    assert stacked.lr.shape == (2, 3000) and float(stacked.lr[1, -1]) == float(runs[1].lr[-1])
    steps = [500, 2000]
    batched = jax.vmap(model.loss, in_axes=(0, None))(stacked, steps)
    looped = jnp.stack([model.loss(r, steps) for r in runs])
    np.testing.assert_allclose(batched, looped, rtol=1e-6)
    with pytest.raises(ValueError, match="some runs record"):
        optlaws.stack_runs([runs[0], optlaws.Run(optlaws.constant(3e-4, 100))])


def test_batched_float32_agrees_with_float64():
    """Precision is chosen at the boundary: a float32 batch of runs stays within 1e-4 of float64."""
    model = truth_model()
    fracs = np.linspace(0.05, 0.5, 8)
    steps = np.arange(2176, 24001, 512)

    def losses(model):
        runs = jax.vmap(lambda f: optlaws.Run(optlaws.wsd(3e-4, 24000, warmup=2160, decay_frac=f, final=3e-5).lr,
                                              batch_size=128.0))(jnp.asarray(fracs))
        return np.asarray(jax.jit(jax.vmap(lambda r: model.loss(r, steps)))(runs))

    single = losses(model)
    with optlaws.float64():
        double = losses(model)
        fitted = in_float64(model)  # what `fit` returns
    # A float64 model used outside float64 computes in float32 (JAX 0.4.31 cannot lower the mix).
    from_fitted = losses(fitted)
    assert single.dtype == from_fitted.dtype == np.float32 and double.dtype == np.float64
    assert np.max(np.abs(single - double) / double) < 1e-4
    np.testing.assert_allclose(from_fitted, single, rtol=1e-6)


def synthetic(model, runs, steps=np.arange(2176, 24000, 256)):
    with optlaws.float64():
        return [optlaws.LossCurve(steps, np.asarray(model.loss(run, steps)), run, name=name)
                for name, run in runs.items()]


@pytest.mark.slow
def test_one_fit_across_batch_sizes_and_weight_decays():
    # Reference scales as the fit will choose them: the largest peak LR and batch size of the runs.
    truth = optlaws.AdamModel(reference_lr=6e-4, reference_batch_size=256.0, norm_init=0.4).replace(**TRUE)
    runs = {
        "constant_b64": optlaws.Run(optlaws.constant(3e-4, 24000, warmup=2160), batch_size=64.0),
        "cosine_b256_wd0": optlaws.Run(optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160), batch_size=256.0,
                                       weight_decay=0.0),
        "wsd_b128_wd03": optlaws.Run(optlaws.wsd(6e-4, 24000, warmup=2160, final=3e-5), batch_size=128.0,
                                     weight_decay=0.3),
    }
    free = optlaws.AdamModel.default_free + ("norm_init",)
    result = optlaws.fit(optlaws.AdamModel(), synthetic(truth, runs), free=free, num_starts=4, progress=False)
    for name, value in {**TRUE, "norm_init": 0.4}.items():
        assert result.values[name] == pytest.approx(value, rel=1e-3), name
    assert float(result.model.reference_batch_size) == 256.0  # the largest batch of the runs
    held = optlaws.Run(optlaws.wsd(3e-4, 24000, warmup=2160, decay_frac=0.3), batch_size=512.0, weight_decay=0.05)
    [metrics] = optlaws.evaluate(result.model, synthetic(truth, {"held": held}))
    assert metrics.max_rel_error < 1e-5


def test_fixed_parameters_keep_the_callers_values():
    truth = truth_model()
    curves = synthetic(truth, {"constant": optlaws.constant(3e-4, 24000, warmup=2160),
                               "cosine": optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160)})
    model = optlaws.AdamModel().replace(loss_inf=2.6)
    free = ("signal_amplitude", "signal_exponent", "noise_amplitude")
    result = optlaws.fit(model, curves, free=free, num_starts=2, progress=False)
    assert result.values["loss_inf"] == pytest.approx(2.6, rel=1e-7) and "loss_inf" not in result.stderr
    assert result.values["signal_exponent"] == pytest.approx(0.46, rel=1e-3)


def test_fit_reports_the_solvers_convergence():
    truth = truth_model()
    curves = synthetic(truth, {"constant": optlaws.constant(3e-4, 24000, warmup=2160),
                               "cosine": optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160)})
    with pytest.warns(optlaws.FitWarning, match="did not converge"):
        stopped = optlaws.fit(optlaws.AdamModel(), curves, num_starts=1, max_steps=2, progress=False)
    assert not stopped.best_converged and stopped.converged == 0 and stopped.iterations == 2
    done = optlaws.fit(optlaws.AdamModel(), curves, num_starts=1, progress=False)
    assert done.best_converged and done.converged == 1 and done.problems() == []


def test_fit_reuses_its_objective():
    """The FitProblem keeps the objective and the parameter map: evaluating it at the fitted theta
    gives the fit's objective and model."""
    truth = truth_model()
    curves = synthetic(truth, {"cosine": optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160)})
    result = optlaws.fit(optlaws.AdamModel(), curves, num_starts=2, progress=False)
    with optlaws.float64():
        theta = jnp.asarray(result.theta)
        assert float(result.problem.objective(theta)) == pytest.approx(result.objective, rel=1e-9, abs=1e-18)
        assert result.problem.model(theta).values() == result.model.values()
        shifted = result.problem.parameters.to_theta(result.model.replace(loss_inf=2.5))
        assert float(result.problem.objective(shifted)) > 1e-4


def test_the_solver_linearises_the_residuals_by_their_jacobian():
    """Levenberg-Marquardt sees the residuals through a rule that takes their Jacobian in one
    forward-mode pass; linearised (and vmapped over starts, as the fit runs them) it must give
    the residuals and Jacobian of plain autodiff, and, as auxiliary output, the log residuals,
    their Jacobian and the predictions."""
    from optlaws._fit import FitProblem, _huber_as_least_squares, _solver_residuals

    truth = truth_model()
    curves = synthetic(truth, {"cosine": optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160)})
    with optlaws.float64():
        problem = FitProblem.build(in_float64(truth), optlaws.AdamModel.default_free, curves,
                                   huber_delta=1e-4)  # small: some residuals in Huber's linear tail
        center = problem.parameters.to_theta(problem.base)
        thetas = jnp.stack([center, center + 0.3])

        def linearised(theta):
            residuals, linear, aux = jax.linearize(lambda t: _solver_residuals(t, problem), theta, has_aux=True)
            return residuals, jax.vmap(linear)(jnp.eye(theta.size, dtype=theta.dtype)).T, aux

        def huber_residuals(theta):
            return _huber_as_least_squares(problem.residuals(theta), problem.huber_delta)

        residuals, jacobian, (log_residuals, log_jacobian, predicted) = jax.vmap(linearised)(thetas)
        for i, theta in enumerate(thetas):
            # differences of O(1) log losses: exact to about one rounding in absolute terms
            np.testing.assert_allclose(residuals[i], huber_residuals(theta), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(jacobian[i], jax.jacrev(huber_residuals)(theta), rtol=1e-8, atol=1e-12)
            np.testing.assert_allclose(log_residuals[i], problem.residuals(theta), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(log_jacobian[i], jax.jacrev(problem.residuals)(theta), rtol=1e-8, atol=1e-12)
            np.testing.assert_allclose(predicted[i], problem.predictions(theta), rtol=1e-12)
        assert np.abs(residuals[1]).max() > 1e-4


@pytest.mark.parametrize("step_cap", [1, 4, 300])
def test_the_solve_returns_the_linearisation_at_its_solution(step_cap):
    """The objective, Jacobian and predictions a solve returns are those of the parameters it
    returns, whether it converged or was stopped right after an accepted step."""
    from optlaws._fit import FitProblem, _linearised, _solve

    truth = truth_model()
    curves = synthetic(truth, {"cosine": optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160),
                               "constant": optlaws.constant(3e-4, 24000, warmup=2160)})
    with optlaws.float64():
        problem = FitProblem.build(in_float64(truth), optlaws.AdamModel.default_free, curves)
        center = np.asarray(problem.parameters.to_theta(problem.base))
        thetas, objectives, _, steps, residuals, jacobians, predictions = _solve(
            problem, center + np.array([[0.0] * center.size, [0.2] * center.size, [-0.2] * center.size]), step_cap)
        assert steps.max() <= step_cap
        for i, theta in enumerate(thetas):
            res, jac, predicted = _linearised(problem, theta)
            np.testing.assert_allclose(residuals[i], res, rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(jacobians[i], jac, rtol=1e-8, atol=1e-12)
            np.testing.assert_allclose(predictions[i], predicted, rtol=1e-12)
            assert objectives[i] == pytest.approx(float(problem.objective(jnp.asarray(theta))), rel=1e-10)


def noisy_curves(truth, schedules, seed, scale=2e-3):
    """Curves of ``truth`` with correlated (smoothed) relative noise of about ``scale``."""
    rng = np.random.default_rng(seed)
    steps = np.arange(2176, 24001, 128)
    curves = []
    for name, schedule in schedules.items():
        [clean] = synthetic(truth, {name: schedule}, steps)
        smooth = np.convolve(rng.standard_normal(steps.size + 9), np.ones(10) / 10, mode="valid")
        curves.append(optlaws.LossCurve(steps, clean.loss * (1 + scale * smooth), schedule, name=name))
    return curves


def test_band_holds_the_truth_of_noisy_curves():
    """Curves with correlated (smoothed) noise: the 90% band of a held-out schedule holds its true
    loss, and a Newey-West band is wider than a Laplace one."""
    truth = truth_model()
    curves = noisy_curves(truth, {"constant": optlaws.constant(3e-4, 24000, warmup=2160),
                                  "cosine": optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160)}, seed=3)
    result = optlaws.fit(optlaws.AdamModel(), curves, num_starts=2, covariance="newey-west", discrepancy=0.0,
                         progress=False)
    held = optlaws.wsd(3e-4, 24000, warmup=2160, decay_frac=0.2, final=3e-5)
    pred = optlaws.predict(result, held, steps=[12000, 24000], band=0.9)
    with optlaws.float64():
        true = np.asarray(truth.loss(held, [12000, 24000]))
    assert np.all(pred.loss_low <= true) and np.all(true <= pred.loss_high)
    assert np.all(pred.loss_low < pred.loss) and np.all(pred.loss < pred.loss_high)
    laplace = optlaws.predict(result.with_covariance("laplace"), held, steps=[24000], band=0.9)
    assert laplace.loss_high[0] - laplace.loss_low[0] < pred.loss_high[0] - pred.loss_low[0]
    with pytest.raises(ValueError, match="`band` needs"):
        optlaws.predict(result.model, held, band=0.9)
    with pytest.raises(ValueError, match="`band` must be a probability"):
        optlaws.predict(result, held, band=1.5)


def _refitted_last_errors(result, curves, rests):
    """Each curve's last log-loss error after refitting (300 solver steps from the fit's theta) on
    ``rests[c]`` instead of all ``curves``."""
    from optlaws._fit import FitProblem, _solve

    errors = []
    for curve, rest in zip(curves, rests):
        problem = FitProblem.build(result.problem.base, result.free, rest)
        theta = np.asarray(_solve(problem, jnp.asarray(result.theta)[None], 300)[0][0])
        final = problem.model(jnp.asarray(theta)).loss(curve.run, [int(curve.steps[-1])])
        errors.append(np.log(curve.loss[-1]) - np.log(float(final[0])))
    return np.array(errors)


@pytest.mark.parametrize(("num_curves", "rms_tolerance"), [(4, 0.15), (2, 0.25)])
def test_held_out_discrepancy_matches_refits(num_curves, rms_tolerance):
    """The linearised error of each curve's final loss with that curve left out (four curves) or
    its later half left out (two curves) agrees with refitting without it (each to 35% of the
    error, their RMS to 15% or 25%: one Gauss-Newton step of the least-squares objective, where
    the refit minimises the Huber one), and the fit's discrepancy is their RMS."""
    from optlaws._fit import _left_out_last_errors, _linearised

    truth = truth_model()
    schedules = {"constant": optlaws.constant(3e-4, 24000, warmup=2160),
                 "cosine": optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160),
                 "wsd": optlaws.wsd(3e-4, 24000, warmup=2160, decay_frac=0.2),
                 "cosine-high": optlaws.cosine(6e-4, 24000, final=0.0, warmup=2160)}
    curves = noisy_curves(truth, schedules, seed=5)[:num_curves]
    result = optlaws.fit(optlaws.AdamModel(), curves, free=optlaws.AdamModel.default_free, num_starts=2,
                         progress=False)
    with optlaws.float64():
        res, jac, _ = _linearised(result.problem, result.theta)
    index = np.asarray(result.problem.curve_index)
    steps = np.asarray(result.problem.steps)[np.asarray(result.problem.step_index)]
    lasts = [np.flatnonzero(index == c)[-1] for c in range(num_curves)]
    if num_curves >= optlaws._fit.MIN_CURVES_FOR_DISCREPANCY:
        assert result.discrepancy_source == "leave-one-curve-out"
        blocks = [np.flatnonzero(index == c) for c in range(num_curves)]
        rests = [curves[:c] + curves[c + 1:] for c in range(num_curves)]
    else:
        assert result.discrepancy_source == "leave-later-half-out"
        middles = [(int(c.steps[0]) + int(c.steps[-1])) / 2 for c in curves]
        blocks = [np.flatnonzero((index == c) & (steps > middles[c])) for c in range(num_curves)]
        rests = [[other if o != c else other.until(int(middles[c])) for o, other in enumerate(curves)]
                 for c in range(num_curves)]
    with optlaws.float64():
        linear = _left_out_last_errors(jac, res, blocks, lasts)
        refitted = _refitted_last_errors(result, curves, rests)
    assert np.all(np.abs(linear - refitted) <= 0.35 * np.abs(refitted) + 2e-5), (linear, refitted)
    assert np.sqrt(np.mean(linear**2)) == pytest.approx(np.sqrt(np.mean(refitted**2)), rel=rms_tolerance)
    assert result.discrepancy == pytest.approx(np.sqrt(np.mean(linear**2)), rel=1e-6)


def test_undetermined_discrepancy_is_the_prior_and_a_given_one_is_kept():
    """One curve, or a constant run beside a WSD run whose whole cooldown is in its later half
    (without it, nothing fixes the response to a decaying LR): the prior."""
    truth = truth_model()
    curves = noisy_curves(truth, {"constant": optlaws.constant(3e-4, 24000, warmup=2160),
                                  "cosine": optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160),
                                  "wsd": optlaws.wsd(3e-4, 24000, warmup=2160, decay_frac=0.2)}, seed=5)
    for fitted in (curves[:1], [curves[0], curves[2]]):
        undetermined = optlaws.fit(optlaws.AdamModel(), fitted, free=optlaws.AdamModel.default_free,
                                   num_starts=2, progress=False)
        assert (undetermined.discrepancy, undetermined.discrepancy_source) == (optlaws._fit.PRIOR_DISCREPANCY,
                                                                                 "prior")
    given = optlaws.fit(optlaws.AdamModel(), curves[:2], num_starts=2, discrepancy=0.0, progress=False)
    assert (given.discrepancy, given.discrepancy_source) == (0.0, "given")
    with pytest.raises(ValueError, match="`discrepancy`"):
        optlaws.fit(optlaws.AdamModel(), curves[:2], discrepancy=-1.0, progress=False)


def test_discrepancy_widens_the_band_as_a_lognormal_error():
    """A band of the model alone (zero covariance) is ``loss * exp(+-z discrepancy)``, the 90%
    quantiles of a log-normal error, to the sampling error of 4096 draws."""
    model = truth_model()
    parameters = optlaws._model.ParameterMap.of(model, ("loss_inf",))
    with optlaws.float64():
        theta = parameters.to_theta(model)
        uncertainty = optlaws.ParameterUncertainty(parameters, theta, jnp.zeros((1, 1)), 0.01)
        run = optlaws.Run(optlaws.cosine(3e-4, 4000, warmup=200))
        low, high = uncertainty.band(model, run, [4000], level=0.9, num_samples=4096)
        loss = float(model.loss(run, [4000])[0])
    np.testing.assert_allclose([low[0], high[0]], loss * np.exp([-0.01 * 1.6449, 0.01 * 1.6449]), rtol=1e-3)
    with pytest.raises(ValueError, match="`discrepancy`"):
        optlaws.ParameterUncertainty(parameters, theta, jnp.zeros((1, 1)), -0.01)


def test_fitted_file_keeps_the_band_and_the_runs(tmp_path):
    truth = truth_model()
    runs = {"constant": optlaws.Run(optlaws.constant(3e-4, 24000, warmup=2160), batch_size=64.0, weight_decay=0.1),
            "cosine": optlaws.Run(optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160), batch_size=64.0,
                                  weight_decay=0.0)}
    result = optlaws.fit(optlaws.AdamModel(), synthetic(truth, runs), num_starts=2, progress=False)
    path = tmp_path / "fitted.json"
    optlaws.save_model(path, result.model, result)
    stored = json.loads(path.read_text())
    assert stored["version"] == 3 and stored["runs"] == {"batch_size": 64.0, "momentum": 0.9}
    fitted = optlaws.load_fitted(path)
    assert fitted.run_settings == stored["runs"]
    held = optlaws.Run(optlaws.wsd(3e-4, 24000, warmup=2160), batch_size=64.0)
    a, b = (optlaws.predict(f, held, steps=[24000], band=0.9) for f in (result, fitted))
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_allclose([a.loss_low, a.loss_high], [b.loss_low, b.loss_high], rtol=1e-12)


def test_version_1_files_still_load(tmp_path):
    """Version 1 kept the run settings in the model; they load as the file's run settings."""
    model = truth_model(reference_batch_size=64.0)
    document = {"format": "optlaws.fitted", "version": 1, "optlaws_version": "0.1.0",
                "model": json.loads(json.dumps(optlaws._serialize._encode(model)))}
    document["model"]["fields"].update(weight_decay=0.05, batch_size=64.0, b1=0.95)
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(document))
    fitted = optlaws.load_fitted(path)
    assert fitted.run_settings == {"weight_decay": 0.05, "batch_size": 64.0, "momentum": 0.95}
    assert fitted.uncertainty is None and fitted.model.values() == model.values()


@pytest.mark.slow
def test_least_squares_fit_at_two_batch_sizes_predicts_a_third():
    """SGD (momentum 0.9) on the least-squares problem, trained for real at batch 16 and 128: one
    fitted landscape predicts batch 48 within the seed noise of the real runs (the gap between two
    independent 16-seed averages), and far better than at either training batch size."""
    problem = optlaws.LeastSquaresProblem.power_law(initial_excess=0.2, batch_size=16)

    def train(schedule, batch, key):
        run = optlaws.Run(schedule, batch_size=batch, momentum=0.9)
        curve = problem.train(lambda lr: optax.sgd(lr, momentum=0.9), run, seeds=16, every=20, key=key,
                              name=f"{schedule.name}_{batch}")
        return curve.since(300)

    constant, cosine = optlaws.constant(0.05, 2000, warmup=100), optlaws.cosine(0.05, 2000, warmup=100)
    curves = [train(s, b, key) for key, (s, b) in enumerate([(constant, 16), (cosine, 16), (constant, 128),
                                                             (cosine, 128)])]
    result = optlaws.fit(optlaws.SGDModel(), curves, progress=False)
    a, b = train(cosine, 48, 10), train(cosine, 48, 11)
    real = (a.loss + b.loss) / 2
    noise = np.mean(np.abs(a.loss - b.loss) / real)

    def error(batch):
        predicted = optlaws.predict(result, a.run.replace(batch_size=batch), steps=a.steps).loss
        return np.mean(np.abs(predicted - real) / real)

    assert error(48.0) < noise
    assert min(error(16.0), error(128.0)) > 3 * noise


def test_fitted_file_is_strict_json(tmp_path):
    """No NaN or Infinity tokens: an infinite field (no noise cutoff) is stored as "inf" and loads
    back; a NaN field is refused with its name."""
    model = truth_model()
    assert not np.isfinite(float(model.spectrum.noise_cutoff))
    path = tmp_path / "fitted.json"
    optlaws.save_model(path, model)
    text = path.read_text()
    json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))
    assert '"noise_cutoff": "inf"' in text
    assert float(optlaws.load_model(path).spectrum.noise_cutoff) == np.inf
    with pytest.raises(ValueError, match="`model.loss_inf` is NaN"):
        optlaws.save_model(path, model.replace(loss_inf=float("nan")))
