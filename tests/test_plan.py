"""Planning a run in progress: continuations from the checkpoint, anchored to the observed loss."""

import json

import numpy as np
import pytest

import optlaws
from optlaws.cli import main

TRUE = dict(loss_inf=2.6, signal_amplitude=0.75, signal_exponent=0.46, noise_amplitude=300.0)


def truth_model():
    return optlaws.AdamModel(reference_lr=1e-3).replace(**TRUE)


def observed_trunk(until=1500, scale=1.0):
    """A constant-LR run of the truth model observed every 50 steps up to ``until``."""
    schedule = optlaws.constant(1e-3, 3000, warmup=100)
    steps = np.arange(200, until + 1, 50)
    with optlaws.float64():
        loss = scale * np.asarray(truth_model().loss(schedule, steps))
    return optlaws.LossCurve.from_arrays(steps, loss, schedule, name="trunk")


def test_plan_ranks_the_continuations_as_the_model_predicts_them():
    result = optlaws.plan(truth_model(), observed_trunk(), 3000, band=None, progress_bar=False)
    assert result.checkpoint == 1500 and result.current_lr == pytest.approx(1e-3)
    assert result.anchor == pytest.approx(1.0, abs=1e-5)  # segments cut elsewhere: a few parts in 1e6
    rows = result.rows()
    assert all(r["start"] >= 1500 and r["start"] + r["length"] == 3000 for r in rows)
    assert {r["shape"] for r in rows} == {"linear", "sqrt", "cosine"}
    # Every continuation is the observed prefix then the cooldown: its loss is the truth's.
    best = rows[0]
    schedule = optlaws.wsd(1e-3, 3000, warmup=100, decay_frac=best["length"] / 3000, shape=best["shape"])
    with optlaws.float64():
        assert float(truth_model().loss(schedule, [3000])[0]) == pytest.approx(best["final_loss"], rel=3e-5)
    finals = [r["final_loss"] for r in rows]
    assert finals == sorted(finals)
    assert "cool down at step" in result.summary()


def test_plan_anchors_its_losses_to_the_observed_checkpoint():
    plain = optlaws.plan(truth_model(), observed_trunk(), 3000, band=None, progress_bar=False)
    shifted = optlaws.plan(truth_model(), observed_trunk(scale=1.01), 3000, band=None, progress_bar=False)
    assert shifted.anchor == pytest.approx(1.01, rel=1e-5)
    np.testing.assert_allclose(shifted.ranking.final_loss, 1.01 * plain.ranking.final_loss, rtol=1e-9)
    assert shifted.rows()[0]["schedule"] == plain.rows()[0]["schedule"]


def test_plan_refuses_a_total_before_the_checkpoint():
    with pytest.raises(ValueError, match="`total_steps`"):
        optlaws.plan(truth_model(), observed_trunk(), 1000, progress_bar=False)
    with pytest.raises(ValueError, match="`final_lr`"):
        optlaws.plan(truth_model(), observed_trunk(), 3000, final_lr=1.0, progress_bar=False)


def test_plan_on_the_command_line(tmp_path, capsys):
    fitted = tmp_path / "fitted.json"
    optlaws.save_model(fitted, truth_model())
    trunk = observed_trunk(until=3000)
    observed = tmp_path / "run.csv"
    optlaws.write_csv(observed, trunk.steps, trunk.loss, trunk.lr_at_steps)
    argv = ["plan", str(fitted), "--observed", str(observed), "--warmup", "100", "--until", "2000",
            "--total", "3000", "--top", "3", "--samples", "16", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoint"] == 2000 and len(report["continuations"]) == 3
    assert all(r["start"] >= 2000 for r in report["continuations"])
    assert report["continuations"][0]["p_best"] is None  # a model saved without a fit has no uncertainty
    assert main(argv[:-1]) == 0
    out = capsys.readouterr().out
    assert "cool down at step" in out and "rank" in out
    assert main(["plan", str(fitted), "--observed", str(observed), "--total", "100"]) == 2
    assert "`total_steps`" in capsys.readouterr().err
