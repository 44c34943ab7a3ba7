import dataclasses
import re
import warnings

import numpy as np
import pytest

import optlaws
from optlaws import _progress

TRUE = dict(loss_inf=2.6, signal_amplitude=0.75, signal_exponent=0.46, noise_amplitude=900.0)


def synthetic_curves(model, names=("constant", "cosine"), noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    schedules = {
        "constant": optlaws.constant(3e-4, 24000, warmup=2160),
        "cosine": optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160),
        "wsd": optlaws.wsd(3e-4, 24000, warmup=2160, decay_frac=0.2, final=3e-5),
    }
    curves = []
    for name in names:
        s = schedules[name]
        steps = np.arange(2176, 24000, 128)
        with optlaws.float64():
            loss = np.asarray(model.loss(s.lr, steps))
        loss = loss * (1 + noise * rng.standard_normal(loss.shape))
        curves.append(optlaws.LossCurve(steps, loss, s, name=name))
    return curves


def test_fit_recovers_known_parameters_and_predicts_a_third_schedule():
    truth = optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE)
    result = optlaws.fit(optlaws.AdamModel(), synthetic_curves(truth), progress=False)
    for name, value in TRUE.items():
        assert result.values[name] == pytest.approx(value, rel=2e-3), name
        assert 0 < result.stderr[name] < 0.05 * abs(value)
    [held_out] = synthetic_curves(truth, ["wsd"])
    [metrics] = optlaws.evaluate(result.model, held_out)
    assert metrics.mean_rel_error < 1e-5 and metrics.r2 > 0.99999
    assert result.converged >= 1 and "signal_exponent" in result.summary()


def test_stderr_covers_the_truth_under_noise():
    """Independent noise on every point: the Laplace covariance's assumption, and its stderr
    covers the truth. (Two curves are too few clusters for the default per-curve estimate.)"""
    truth = optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE)
    result = optlaws.fit(optlaws.AdamModel(), synthetic_curves(truth, noise=1e-3, seed=4),
                         num_starts=3, covariance="laplace", progress=False)
    for name, value in TRUE.items():
        assert abs(result.values[name] - value) < 5 * result.stderr[name], name


def test_mechanisms_that_are_off_start_positive_only_where_freed():
    """The area ceiling and the peak-LR floor are off (0) by default; freed, a fit starts them
    positive (a parameter fitted in log space cannot leave 0), and left fixed they stay off."""
    truth = optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE)
    curves = synthetic_curves(truth)
    guess = optlaws.AdamModel().initial_guess(curves)
    assert (float(guess.get("area_ceiling")), float(guess.get("peak_floor"))) == pytest.approx((10.0, 0.01))
    assert float(optlaws.AdamModel(peak_floor=0.5).initial_guess(curves).get("peak_floor")) == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optlaws.FitWarning)  # five steps: not converged
        result = optlaws.fit(optlaws.AdamModel(), curves, free=optlaws.AdamModel.default_free + ("peak_floor",),
                             num_starts=1, max_steps=5, progress=False)
    assert result.values["area_ceiling"] == 0.0 and result.values["peak_floor"] > 0


def test_screening_and_refining_share_one_compiled_solve(monkeypatch):
    """The step budget is traced, not static: the starts' 10 screening steps and the best two's
    refinement (and a later fit of the same shape with another ``max_steps``) are traced once."""
    from optlaws import _fit

    traces = []
    original = _fit._huber_as_least_squares
    monkeypatch.setattr(_fit, "_huber_as_least_squares", lambda *a: traces.append(1) or original(*a))
    truth = optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE)
    curves = synthetic_curves(truth, names=("constant", "wsd"))[:1]  # a shape no other test uses
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optlaws.FitWarning)  # one curve, few steps: not converged
        optlaws.fit(optlaws.AdamModel(), curves, num_starts=4, max_steps=40, progress=False)
        traced = len(traces)
        assert traced > 0
        result = optlaws.fit(optlaws.AdamModel(), curves, num_starts=4, max_steps=3, seed=1, progress=False)
    assert len(traces) == traced and result.iterations <= 3 and not result.best_converged


def test_a_piped_fit_reports_its_solver_steps_and_the_time_left(monkeypatch, capsys):
    monkeypatch.setattr(_progress, "HEARTBEAT_SECONDS", 0.01)
    monkeypatch.setattr(_progress, "HEARTBEAT_LONGEST_SECONDS", 0.01)  # a line every 0.01 s
    truth = optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE)
    result = optlaws.fit(optlaws.AdamModel(), synthetic_curves(truth, noise=1e-3), num_starts=4, max_steps=50)
    log = capsys.readouterr().err
    screening, refining = "4 starts, 10 steps each", "the best 2 to convergence"
    assert f"{screening} (at most 22 steps) ..." in log and f"{refining} (at most 51 steps) ..." in log
    ticks = [tuple(map(int, m)) for m in re.findall(r"step (\d+)/(\d+), \d+ s, at most \d+ s left", log)]
    assert ticks and all(0 < done <= bound for done, bound in ticks), log
    # The refined batch took about as many steps as its slowest start (one more to start).
    [refined] = re.findall(rf"{refining}: done in [\d.]+ s \((\d+) steps\)", log)
    assert result.iterations <= int(refined) + 1 and int(refined) <= 51


def test_the_time_left_is_measured_from_the_first_step(monkeypatch):
    now = iter([0.0, 100.0, 102.0])  # opened; first step after 100 s of compiling; 2 s per step
    monkeypatch.setattr(_progress.time, "monotonic", lambda: next(now))
    clock = _progress._StepClock(bound=10)
    clock.tick()
    assert clock.remaining() == "compiling"
    clock.tick()
    assert clock.remaining() == "at most 16 s left (2 s per step)"  # 8 steps left at 2 s: not 50 s
    _progress.count_step()  # no display open: nothing to advance
    assert clock.done == 2


@pytest.mark.slow
def test_fit_more_parameters_when_asked():
    truth = optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE, norm_init=0.3, mobility_exponent=0.6)
    curves = synthetic_curves(truth, ["constant", "cosine", "wsd"])
    free = optlaws.AdamModel.default_free + ("norm_init", "mobility_exponent")
    result = optlaws.fit(optlaws.AdamModel(), curves, free=free, progress=False)
    assert result.values["norm_init"] == pytest.approx(0.3, rel=0.02)
    assert result.values["mobility_exponent"] == pytest.approx(0.6, rel=0.02)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(free=("bogus",)), ValueError, "unknown parameter"),
        (dict(free=()), ValueError, "`free` is empty"),
        (dict(num_starts=0), ValueError, "`num_starts`"),
        (dict(huber_delta=-1.0), ValueError, "`huber_delta`"),
        (dict(free=("noise_cutoff",)), ValueError, "cannot fit `noise_cutoff` from its current value inf"),
    ],
)
def test_fit_argument_errors(kwargs, error, message):
    truth = optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE)
    curves = synthetic_curves(truth, ["constant"])
    with pytest.raises(error, match=message):
        optlaws.fit(optlaws.AdamModel(), curves, progress=False, **kwargs)


def test_fit_input_errors():
    with pytest.raises(optlaws.InvalidCurveError, match="empty"):
        optlaws.fit(optlaws.AdamModel(), [], progress=False)
    with pytest.raises(TypeError, match="LossCurve"):
        optlaws.fit(optlaws.AdamModel(), [np.zeros(3)], progress=False)
    tiny = optlaws.LossCurve(np.array([10, 20]), np.array([3.0, 2.9]), optlaws.constant(1e-3, 20))
    with pytest.raises(optlaws.InvalidCurveError, match="cannot determine 4 free parameters"):
        optlaws.fit(optlaws.AdamModel(), tiny, progress=False)


def test_fitted_file_round_trip(tmp_path):
    truth = optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE)
    result = optlaws.fit(optlaws.AdamModel(), synthetic_curves(truth), num_starts=2, progress=False)
    path = tmp_path / "fitted.json"
    optlaws.save_model(path, result.model, result)
    loaded = optlaws.load_model(path)
    schedule = optlaws.wsd(3e-4, 30000, warmup=2160, final=3e-5)
    a = optlaws.predict(result.model, schedule)
    b = optlaws.predict(loaded, schedule)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert loaded.values() == result.model.values()
    for model in (optlaws.SGDModel(reference_batch_size=32.0),
                  optlaws.LeastSquaresProblem.power_law(dim=8).adam_model()):
        optlaws.save_model(path, model)
        assert optlaws.load_model(path).values() == model.values()


def test_fitted_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not an optlaws fitted-model file"):
        optlaws.load_model(bad)
    bad.write_text('{"format": "optlaws.fitted", "version": 99, "model": {}}')
    with pytest.raises(ValueError, match="version 99"):
        optlaws.load_model(bad)
    with pytest.raises(FileNotFoundError):
        optlaws.load_model(tmp_path / "absent.json")


def test_a_fit_the_data_cannot_determine_says_so():
    """Five noisy points of one constant-LR run cannot pin the irreducible loss down."""
    truth = optlaws.AdamModel(reference_lr=1e-3).replace(loss_inf=2.6, signal_amplitude=0.75, signal_exponent=0.46,
                                                         noise_amplitude=300.0)
    schedule = optlaws.constant(1e-3, 3000, warmup=100)
    steps = np.array([600, 1200, 1800, 2400, 3000])
    with optlaws.float64():
        loss = np.asarray(truth.loss(schedule, steps)) * (1 + 2e-3 * np.random.default_rng(0).standard_normal(5))
    curve = optlaws.LossCurve.from_arrays(steps, loss, schedule, name="five")
    with pytest.warns(optlaws.FitWarning, match="not determined by these curves: loss_inf"):
        result = optlaws.fit(optlaws.AdamModel(), [curve], progress=False)
    assert any("not determined" in p for p in result.problems())
    # Ending where the model predicts no finite loss is a failed fit, not residuals of 1.
    from optlaws._metrics import curve_metrics

    ended_badly = dataclasses.replace(result, curves=(curve_metrics("five", np.array([3.0, np.inf]), np.ones(2)),))
    assert any(p.startswith("the fit failed") and "'five'" in p for p in ended_badly.problems())


def test_a_fit_that_misses_the_start_of_its_curves_says_to_start_later():
    """A tracker's first points (the loss at step 0, the fast initial drop) are not what the
    models describe: when a fit's worst errors are there, it says so and names the last step
    missed; a fit of the same curves from later on says nothing."""
    truth = optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE)
    curves = synthetic_curves(truth)
    early = [optlaws.LossCurve(np.concatenate([[0, 600], c.steps]), np.concatenate([[10.9, 5.0], c.loss]), c.run,
                               name=c.name) for c in curves]
    with pytest.warns(optlaws.FitWarning, match=r"misses the start of 2 curve\(s\), by up to .* at steps up to \d+"):
        result = optlaws.fit(optlaws.AdamModel(), early, progress=False)
    assert set(result.early_misses) == {"constant", "cosine"}
    # the fit bends toward the first points, so its misses reach past them (but not past 10%)
    assert all(600 <= step <= 0.1 * 24000 and error > 0.05 for step, error in result.early_misses.values())
    later = optlaws.fit(optlaws.AdamModel(), [c.since(1000) for c in early], progress=False)
    assert later.early_misses == {} and not any("start" in p for p in later.problems())
    # one noisy point at the start, however far off, is noise and not a miss of the start
    noisy = [dataclasses.replace(c, loss=np.where(np.arange(len(c.steps)) == 1, 1.05, 1.0) * c.loss) for c in curves]
    assert optlaws.fit(optlaws.AdamModel(), noisy, progress=False).early_misses == {}
    # nor is a miss at the first points of a run resumed late: the fast drop is at the start of training
    resumed = [c.since(12000) for c in curves]
    resumed[0] = dataclasses.replace(resumed[0], loss=np.where(np.arange(len(resumed[0])) < 8, 1.03, 1.0) * resumed[0].loss)
    assert optlaws.fit(optlaws.AdamModel(), curves + resumed, progress=False).early_misses == {}
