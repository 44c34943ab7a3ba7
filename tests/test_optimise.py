"""The free-form schedule of `optimise`: its bounds, and the published findings it must reproduce."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import optlaws
from optlaws.cli import main

# An AdamModel with the scales of a fit to the Multi-Power Law's 100M curves (constant + cosine).
MPL_100M = dict(loss_inf=2.6, signal_amplitude=0.74, signal_exponent=0.46, noise_amplitude=945.0)


def mpl_like_model():
    return optlaws.AdamModel(reference_lr=3e-4).replace(**MPL_100M)


@settings(max_examples=40, deadline=None)
@given(logits=arrays(np.float64, st.integers(2, 40), elements=st.floats(-30, 30)),
       peak=st.floats(1e-5, 1.0), min_share=st.floats(0.0, 0.9), warmup=st.integers(0, 50))
def test_shares_schedule_never_rises_after_warmup_and_keeps_its_bounds(logits, peak, min_share, warmup):
    min_lr = min_share * peak
    with optlaws.float64():
        lr = np.asarray(optlaws.shares_schedule(jnp.asarray(logits), peak_lr=peak, min_lr=min_lr, warmup=warmup,
                                                total_steps=200))
    after = lr[warmup:]
    assert after[0] == pytest.approx(peak, rel=1e-12)
    assert np.all(np.diff(after) <= 1e-12 * peak)
    assert np.all(after >= min_lr * (1 - 1e-12)) and np.all(lr <= peak * (1 + 1e-12))
    assert np.all(np.diff(lr[:warmup + 1]) >= 0)


def test_optimised_schedule_from_a_linear_decay_beats_cosine_and_looks_like_wsd():
    """The MPL paper's finding (Luo et al. 2025): the optimised schedule beats cosine and has the
    shape of WSD, a long stable phase and a short, steep cooldown to (near) zero. Started from the
    linear decay, so that the shape is found, not given."""
    total, peak = 8000, 3e-4
    result = optlaws.optimise(mpl_like_model(), total, peak_lr=peak, warmup=500, knots=32, iterations=300,
                              compare=False, progress_bar=False)
    assert result.best_family is None
    assert result.history[-1] < result.history[0] - 1e-3  # a real improvement over the linear decay
    lr = np.asarray(result.schedule.lr) / peak
    assert lr[int(0.6 * total)] > 0.95 and lr[-1] < 0.05
    with optlaws.float64():
        cosine = float(mpl_like_model().loss(optlaws.cosine(peak, total, warmup=500, final=0.1 * peak), [total])[0])
    assert result.final_loss < cosine


def test_optimised_schedule_is_no_worse_than_the_best_family_member():
    total, peak = 8000, 3e-4
    result = optlaws.optimise(mpl_like_model(), total, peak_lr=peak, warmup=500, knots=32, iterations=100,
                              progress_bar=False)
    assert result.best_family.startswith("wsd:")
    assert result.final_loss <= result.best_family_loss


def test_linear_decay_to_zero_beats_cosine_to_ten_percent_at_long_horizons():
    """Bergsma et al. 2025 (Straight to Zero): at long horizons linear decay to zero beats cosine to
    10% of the peak."""
    model = mpl_like_model()
    with optlaws.float64():
        for total in (50_000, 200_000):
            linear = float(model.loss(optlaws.linear(3e-4, total, warmup=2000, final=0.0), [total])[0])
            cosine = float(model.loss(optlaws.cosine(3e-4, total, warmup=2000, final=3e-5), [total])[0])
            assert linear < cosine


def test_a_second_optimise_of_the_same_shape_is_not_traced_again(monkeypatch):
    """The loop is compiled once per problem shape: another peak LR, minimum LR or step size
    reuses it (before, every call traced and compiled its own closure)."""
    from optlaws import _optimise

    traces = []
    original = _optimise._final_loss
    monkeypatch.setattr(_optimise, "_final_loss", lambda *a, **k: traces.append(1) or original(*a, **k))
    # A shape no other test uses, so that the first call must trace.
    common = dict(warmup=30, knots=7, iterations=30, compare=False, progress_bar=False)
    first = optlaws.optimise(mpl_like_model(), 913, peak_lr=3e-4, learning_rate=0.05, **common)
    assert traces
    traced = len(traces)
    second = optlaws.optimise(mpl_like_model(), 913, peak_lr=6e-4, min_lr=1e-5, learning_rate=0.1, **common)
    assert len(traces) == traced
    assert second.schedule.lr.max() == pytest.approx(6e-4) and first.schedule.lr.max() == pytest.approx(3e-4)
    assert second.schedule.lr[30:].min() >= 1e-5 * (1 - 1e-9)  # after warmup


def test_optimise_refuses_bad_bounds():
    with pytest.raises(ValueError, match="`min_lr`"):
        optlaws.optimise(mpl_like_model(), 1000, peak_lr=1e-3, min_lr=2e-3)
    with pytest.raises(ValueError, match="`knots`"):
        optlaws.optimise(mpl_like_model(), 1000, peak_lr=1e-3, knots=1)
    with pytest.raises(ValueError, match="`warmup`"):
        optlaws.optimise(mpl_like_model(), 1000, peak_lr=1e-3, warmup=1000)


def test_optimise_on_the_command_line(tmp_path, capsys):
    fitted = tmp_path / "fitted.json"
    optlaws.save_model(fitted, mpl_like_model())
    out = tmp_path / "optimised.csv"
    argv = ["optimise", str(fitted), "--total", "4000", "--peak", "3e-4", "--warmup", "300", "--knots", "16",
            "--iterations", "50", "--out", str(out), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["optimised"]["final_loss"] <= report["best_family"]["final_loss"] + 1e-9
    assert report["best_family"]["schedule"].startswith(("wsd:", "linear:", "cosine:"))
    # The written schedule is read back by `predict --schedule` and predicts the same final loss.
    predicted = tmp_path / "predicted.csv"
    assert main(["predict", str(fitted), "--schedule", str(out), "--out", str(predicted), "--quiet"]) == 0
    final = float(predicted.read_text().strip().splitlines()[-1].split(",")[2])
    assert final == pytest.approx(report["optimised"]["final_loss"], rel=1e-4)
    assert main(argv) == 2  # --out exists
    assert "--force" in capsys.readouterr().err
