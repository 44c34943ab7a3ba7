"""Transfer of the optimal peak LR: sweep optima, the power law across horizons, a model's optima,
and the command line."""

import json

import jax
import numpy as np
import pytest

import optlaws
from optlaws.cli import main


def quadratic_sweep(lr_star, horizons, lrs, curvature=0.05, noise=0.0, seed=0):
    """Final losses ``L*(D) + k (log lr - log LR*(D))^2`` (times ``1 + noise z``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for horizon in horizons:
        for lr in lrs:
            loss = 3.0 - 0.1 * np.log10(horizon) + curvature * (np.log(lr) - np.log(lr_star(horizon))) ** 2
            rows.append((horizon, lr, loss * (1 + noise * rng.standard_normal())))
    return np.array(rows).T


def test_sweep_vertex_and_power_law_recover_the_truth():
    """An exact quadratic in log LR gives its vertex; optima on ``C D^-0.32`` give beta 0.32 and
    the LR* of a fourth horizon."""
    def lr_star(d):
        return 0.05 * d**-0.32

    horizons, lrs, losses = quadratic_sweep(lr_star, [5000, 15000, 45000], np.geomspace(2e-4, 8e-3, 6))
    optima = optlaws.sweep_optima(horizons, lrs, losses)
    for o in optima:
        assert o.lr_opt == pytest.approx(lr_star(o.horizon), rel=1e-6)
        assert o.lr_low <= o.lr_opt <= o.lr_high
    law = optlaws.fit_lr_transfer(optima)
    assert law.beta == pytest.approx(0.32, abs=1e-4)
    lr_opt, low, high = law.predict(135000)
    assert lr_opt == pytest.approx(lr_star(135000), rel=1e-3) and low < lr_opt < high


def test_sweep_intervals_cover_noisy_optima():
    """With 0.1% noise on each final loss, the 90% interval of LR* (estimated from each horizon's
    residuals, 7 LRs) holds the true optimum in most of 40 seeded sweeps, and a noisier sweep gives
    wider intervals."""
    def lr_star(d):
        return 1e-3

    inside, widths = 0, {}
    for seed in range(40):
        horizons, lrs, losses = quadratic_sweep(lr_star, [10000], np.geomspace(2.5e-4, 4e-3, 7), noise=1e-3,
                                                seed=seed)
        [o] = optlaws.sweep_optima(horizons, lrs, losses)
        inside += o.lr_low <= 1e-3 <= o.lr_high
        widths.setdefault("low", []).append(np.log(o.lr_high / o.lr_low))
        horizons, lrs, losses = quadratic_sweep(lr_star, [10000], np.geomspace(2.5e-4, 4e-3, 7), noise=4e-3,
                                                seed=seed)
        [o] = optlaws.sweep_optima(horizons, lrs, losses)
        widths.setdefault("high", []).append(np.log(o.lr_high / o.lr_low))
    assert 30 <= inside <= 40
    assert np.median(widths["high"]) > 2 * np.median(widths["low"])


@pytest.mark.parametrize(
    "lrs, losses, message",
    [
        ([1e-4, 2e-4, 4e-4], [3.0, 2.9, 2.85], "above the swept range"),
        ([1e-4, 2e-4, 4e-4], [2.8, 2.85, 2.95], "below the swept range"),
        ([1e-4, 2e-4, 4e-4], [2.9, 2.8, 2.95], None),
        ([1e-4, 2e-4, 4e-4], [2.8, 2.9, 2.8], "no minimum"),
        ([1e-4, 2e-4], [2.8, 2.9], "at least 3"),
        ([1e-4, -2e-4, 4e-4], [2.9, 2.8, 2.95], "`peak_lr` must be finite and positive"),
    ],
)
def test_sweep_refuses_what_it_cannot_say(lrs, losses, message):
    args = (np.full(len(lrs), 1000.0), lrs, losses)
    if message is None:
        [o] = optlaws.sweep_optima(*args)
        assert 1e-4 < o.lr_opt < 4e-4
    else:
        with pytest.raises(ValueError, match=message):
            optlaws.sweep_optima(*args)
    with pytest.raises(ValueError, match="two or more horizons"):
        optlaws.fit_lr_transfer(optlaws.sweep_optima(np.full(3, 1000.0), [1e-4, 2e-4, 4e-4], [2.9, 2.8, 2.95]))


def test_model_optimum_is_the_minimum_of_its_predictions():
    """The model's LR* (vertex over a 41-point grid) agrees with a fine search of its own
    predictions, and its interval holds it."""
    model = optlaws.AdamModel(reference_lr=1e-3).replace(loss_inf=2.6, signal_amplitude=0.75, signal_exponent=0.46,
                                                         noise_amplitude=300.0)
    family = "wsd:warmup=100,decay_frac=0.2,shape=1-sqrt,final=0"
    parameters = optlaws.ParameterMap.of(model, ("noise_amplitude",))
    with optlaws.float64():
        uncertainty = optlaws.ParameterUncertainty(parameters, parameters.to_theta(model), np.array([[0.01]]))
    [optimum] = optlaws.model_optima(model, family, [4000], uncertainty=uncertainty, num_samples=16)
    fine = np.geomspace(optimum.lr_opt / 1.3, optimum.lr_opt * 1.3, 61)
    runs = optlaws.stack_runs([model.resolve(optlaws.family_run(family, lr, 4000)) for lr in fine])
    with optlaws.float64():
        finals = jax.jit(jax.vmap(lambda run: model.loss(run, [4000])[0]))(runs)
    assert optimum.lr_opt == pytest.approx(fine[int(np.argmin(finals))], rel=0.02)
    assert optimum.lr_low < optimum.lr_opt < optimum.lr_high
    with pytest.raises(ValueError, match="edge of the peak-LR grid"):
        optlaws.model_optima(model, family, [4000], lrs=np.geomspace(1e-5, 3e-5, 5))
    with pytest.raises(ValueError, match="leave out `peak` and `total`"):
        optlaws.family_run("wsd:peak=1e-3", 1e-3, 4000)


def test_transfer_on_the_command_line(tmp_path, capsys):
    def lr_star(d):
        return 0.05 * d**-0.32

    horizons, lrs, losses = quadratic_sweep(lr_star, [5000, 15000], np.geomspace(2e-4, 8e-3, 5))
    sweep = tmp_path / "sweep.csv"
    sweep.write_text("horizon,peak_lr,final_loss\n" + "".join(f"{h:g},{float(lr)!r},{float(loss)!r}\n"
                                                              for h, lr, loss in zip(horizons, lrs, losses)))
    assert main(["transfer", str(sweep), "--to-horizon", "50000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"lr_opt", "lr_low", "lr_high", "beta"} <= set(out)
    assert out["lr_opt"] == pytest.approx(lr_star(50000), rel=1e-3) and out["beta"] == pytest.approx(0.32, abs=1e-3)

    bad = tmp_path / "bad.csv"
    bad.write_text("horizon,lr,final_loss\n1000,1e-3,3.0\n")
    assert main(["transfer", str(bad), "--to-horizon", "5000"]) == 2
    assert "missing peak_lr" in capsys.readouterr().err
    assert main(["transfer", str(sweep)]) == 2
    assert "--to-horizon" in capsys.readouterr().err

    model = optlaws.AdamModel(reference_lr=1e-3).replace(loss_inf=2.6, signal_amplitude=0.75, signal_exponent=0.46,
                                                         noise_amplitude=300.0)
    fitted = tmp_path / "fitted.json"
    optlaws.save_model(fitted, model)
    assert main(["transfer", str(fitted), "--family", "wsd:warmup=100,decay_frac=0.2,shape=linear,final=0",
                 "--horizons", "2000,8000", "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [set(r) for r in rows] == [{"horizon", "lr_opt", "lr_low", "lr_high", "final_loss"}] * 2
    assert [r["horizon"] for r in rows] == [2000, 8000] and rows[1]["final_loss"] < rows[0]["final_loss"]
    # a model saved without its fit's uncertainty: no interval, rather than a zero-width one
    assert all(r["lr_low"] is None and r["lr_high"] is None for r in rows)
    assert "no parameter uncertainty" in captured.err
