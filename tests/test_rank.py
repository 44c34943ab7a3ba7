"""Ranking candidate runs: order, chunking, bands and p_best, divergence, and `optlaws search`."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

import optlaws
from optlaws.cli import main

TRUE = dict(loss_inf=2.6, signal_amplitude=0.75, signal_exponent=0.46, noise_amplitude=300.0)


def truth_model(**fields):
    return optlaws.AdamModel(reference_lr=1e-3, **fields).replace(**TRUE)


def candidates(total=3000):
    return [optlaws.wsd(peak, total, warmup=100, decay_frac=frac, final=0.0, name=f"wsd_{peak:g}_{frac:g}")
            for peak in (3e-4, 1e-3, 3e-3) for frac in (0.1, 0.3)] + [
        optlaws.cosine(1e-3, total // 2, warmup=100, name="short_cosine")]


def uncertainty_of(model):
    parameters = optlaws.ParameterMap.of(model, ("noise_amplitude", "signal_exponent"))
    with optlaws.float64():
        return optlaws.ParameterUncertainty(parameters, parameters.to_theta(model), np.diag([0.04, 0.0004]), 0.002)


def test_ranking_sorts_the_models_own_predictions_whatever_the_chunks():
    model = truth_model()
    runs = candidates()
    with optlaws.float64():
        finals = [float(model.loss(r, [r.total_steps])[0]) for r in runs]
    ranking = optlaws.rank(model, runs, band=None, progress_bar=False)
    assert list(ranking.index) == list(np.argsort(finals))
    # The divergence checks cut the 16-step segments elsewhere than one final step does.
    np.testing.assert_allclose(ranking.final_loss, np.sort(finals), rtol=3e-5)
    assert ranking.loss_low is None and ranking.p_best is None
    chunked = optlaws.rank(model, runs, band=None, chunk_size=3, progress_bar=False)
    assert chunked.names == ranking.names
    np.testing.assert_allclose(chunked.final_loss, ranking.final_loss, rtol=1e-12)


@pytest.mark.parametrize("law", [optlaws.PowerLaw(), optlaws.MultiPowerLaw(), optlaws.AnnealingLaw(annealing=0.1),
                                 optlaws.ConvexBound()], ids=lambda law: type(law).__name__)
def test_a_law_is_ranked_not_marked_diverged(law, tmp_path, capsys):
    """A law's power law in the LR area is infinite until a warmup from zero has moved the run:
    that first checked step is no blow-up (every candidate was once marked diverged at step 1)."""
    runs = candidates()
    finals = [optlaws.predict(law, r, steps=[r.total_steps]).final_loss for r in runs]
    prediction = optlaws.predict(law, runs[0], steps=[1, 50, 3000])
    assert prediction.loss[0] == np.inf and np.isfinite(prediction.loss[1:]).all()
    assert prediction.diverged_at is None
    ranking = optlaws.rank(law, runs, band=None, progress_bar=False)
    assert (ranking.diverged_at == -1).all()
    # MultiPowerLaw's quadrature grid follows the (padded) run's LR area: within its 1e-6
    np.testing.assert_allclose(ranking.final_loss, np.sort(finals), rtol=1e-6)
    optlaws.save_model(tmp_path / "fitted.json", law)
    (tmp_path / "candidates.txt").write_text("cosine:peak=1e-3,total=3000,warmup=100\nlinear:peak=1e-3,total=3000,warmup=100\n")
    assert main(["search", str(tmp_path / "fitted.json"), "--candidates", str(tmp_path / "candidates.txt"), "--json"]) == 0
    assert [row["diverged_at"] for row in json.loads(capsys.readouterr().out)] == [None, None]


@pytest.mark.parametrize("runs_at_once", [21, 3])
def test_a_law_draws_in_groups_as_it_would_all_at_once(monkeypatch, runs_at_once):
    """A law holds every step in memory, so its candidates and parameter draws are evaluated a
    group at a time (``RUN_STEPS_AT_ONCE``: here 21 run-lengths, all 7 candidates and 3 draws at
    once, or 3, three candidates and one draw): the same bands and p_best as all at once."""
    import optlaws._rank

    law = optlaws.MultiPowerLaw(loss_inf=2.5, drop_amplitude=300.0, drop_scale=2.0, drop_exponent=0.6)
    parameters = optlaws.ParameterMap.of(law, ("exponent", "drop_amplitude"))
    with optlaws.float64():
        uncertainty = optlaws.ParameterUncertainty(parameters, parameters.to_theta(law), np.diag([1e-4, 0.01]), 0.0)
    runs = candidates()
    together = optlaws.rank(law, runs, uncertainty=uncertainty, num_samples=16, progress_bar=False)
    monkeypatch.setattr(optlaws._rank, "RUN_STEPS_AT_ONCE", runs_at_once * 3000)
    grouped = optlaws.rank(law, runs, uncertainty=uncertainty, num_samples=16, progress_bar=False)
    assert grouped.names == together.names and np.ptp(together.p_best) > 0
    for field in ("final_loss", "loss_low", "loss_high", "p_best"):
        np.testing.assert_allclose(getattr(grouped, field), getattr(together, field), rtol=1e-12)


def test_first_blow_up_is_where_the_loss_leaves_for_good():
    from optlaws._predict import first_blow_up

    for losses, first in [([np.inf, 5.0, 4.0], -1), ([3.0, np.inf, np.inf], 1), ([3.0, 2.0, 3.5], 2),
                          ([3.0, np.nan, 2.0, np.inf], 3), ([np.inf, np.inf], 0)]:
        assert int(first_blow_up(np.array(losses))) == first
        assert int(first_blow_up(jnp.array(losses))) == first


def test_float32_ranking_agrees_with_float64():
    """``precision="float32"``: the same order for candidates further apart than float32's error,
    final losses within 1e-4 relative; bands and p_best come from draws in float32 (other random
    numbers than float64's), so their widths agree only as Monte Carlo estimates do."""
    model = truth_model()
    runs = candidates()
    exact = optlaws.rank(model, runs, uncertainty=uncertainty_of(model), num_samples=32, progress_bar=False)
    fast = optlaws.rank(model, runs, uncertainty=uncertainty_of(model), num_samples=32, precision="float32",
                        progress_bar=False)
    assert fast.names == exact.names
    np.testing.assert_allclose(fast.final_loss, exact.final_loss, rtol=1e-4)
    assert not np.array_equal(fast.final_loss, exact.final_loss)  # computed in float32 indeed
    widths = [(r.loss_high - r.loss_low) / r.final_loss for r in (fast, exact)]
    assert np.all(widths[0] > 0.5 * widths[1]) and np.all(widths[0] < 2 * widths[1])
    assert fast.p_best.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="`precision` must be one of"):
        optlaws.rank(model, runs, precision="bfloat16")


def test_bands_and_p_best_come_from_joint_draws():
    model = truth_model()
    runs = candidates()
    ranking = optlaws.rank(model, runs, uncertainty=uncertainty_of(model), num_samples=128, chunk_size=4,
                           progress_bar=False)
    assert np.all(ranking.loss_low < ranking.final_loss) and np.all(ranking.final_loss < ranking.loss_high)
    assert ranking.p_best.sum() == pytest.approx(1.0)
    # Draws are joint: p_best is that of the argmin over each draw's candidates, and the best
    # candidate is the most often best.
    assert ranking.p_best[0] == ranking.p_best.max()
    rows = json.loads(ranking.to_json(top=2))
    assert len(rows) == 2 and set(rows[0]) == {"schedule", "final_loss", "loss_low", "loss_high", "p_best",
                                               "diverged_at"}


def test_diverging_candidates_go_last():
    """With a calibrated sharpest direction, an unwarmed high peak LR blows up: it is ranked last,
    marked, never best, and its JSON final loss is null (strict JSON)."""
    model = optlaws.SGDModel(reference_lr=0.5, sharpness_init=4.0, sharpness_floor=2.5,
                             flattening_rate=0.01).replace(loss_inf=0.02, signal_amplitude=0.3, signal_exponent=0.5,
                                                           noise_amplitude=0.05)
    settings = ((1.2, 0), (0.6, 0), (1.2, 400), (0.3, 0))
    runs = [optlaws.Run(optlaws.cosine(peak, 800, warmup=warmup, final=0.0), batch_size=64.0, momentum=0.9)
            for peak, warmup in settings]
    ranking = optlaws.rank(model, runs, names=[f"{p}_{w}" for p, w in settings], band=None, progress_bar=False)
    assert ranking.names[-1] == "1.2_0" and ranking.diverged_at[-1] > 0
    assert np.all(ranking.diverged_at[:-1] == -1)
    assert json.loads(ranking.to_json())[-1]["final_loss"] is None
    assert "at step" in ranking.table().splitlines()[-1]


def test_ranking_at_a_step_orders_the_loss_there():
    """``at``: the loss after that many updates, which reorders a long cooldown still under way
    against a short one that has ended (at 2500 the 50% cooldown has not reached its end)."""
    model = truth_model()
    runs = [optlaws.wsd(1e-3, 3000, warmup=100, decay_frac=frac, final=0.0, name=f"wsd_{frac:g}")
            for frac in (0.1, 0.5)]
    at_end = optlaws.rank(model, runs, band=None, progress_bar=False)
    at_2500 = optlaws.rank(model, runs, at=2500, band=None, progress_bar=False)
    with optlaws.float64():
        expected = [float(model.loss(r, [2500])[0]) for r in runs]
    np.testing.assert_allclose(at_2500.final_loss, np.sort(expected), rtol=3e-5)
    assert list(at_2500.index) == list(np.argsort(expected)) and at_2500.at == 2500
    assert list(at_2500.index) != list(at_end.index)
    assert at_2500.rows()[0]["at_step"] == 2500 and "at_step" not in at_end.rows()[0]
    assert "loss at step 2500" in at_2500.table()
    with pytest.raises(ValueError, match="`at` = 2000 is past the end of 1 candidate.*'short_cosine' \\(1500 steps\\)"):
        optlaws.rank(model, candidates(), at=2000, band=None)
    with pytest.raises(ValueError, match="`at` must be a positive number of steps"):
        optlaws.rank(model, runs, at=0)


def test_rank_refuses_bad_input():
    with pytest.raises(ValueError, match="`candidates` is empty"):
        optlaws.rank(truth_model(), [])
    with pytest.raises(ValueError, match="`names` has 1"):
        optlaws.rank(truth_model(), candidates()[:2], names=["a"])
    with pytest.raises(ValueError, match="`band`"):
        optlaws.rank(truth_model(), candidates()[:2], band=2.0)


def test_search_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "fitted.json"
    optlaws.save_model(path, truth_model())
    argv = ["search", str(path), "--family", "wsd", "--total", "3000", "--grid", "warmup=100",
            "--grid", "decay_frac=0.1:0.3:3", "--grid", "shape=linear,1-sqrt", "--grid", "peak=3e-4:3e-3:3:log",
            "--top", "4", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and rows[0]["final_loss"] <= rows[1]["final_loss"] <= rows[3]["final_loss"]
    assert rows[0]["schedule"].startswith("wsd:warmup=100,decay_frac=") and rows[0]["p_best"] is None
    spec = optlaws.parse_schedule(rows[0]["schedule"])
    with optlaws.float64():
        assert float(truth_model().loss(spec, [3000])[0]) == pytest.approx(rows[0]["final_loss"], rel=3e-5)

    listed = tmp_path / "candidates.txt"
    listed.write_text("# two schedules\ncosine:peak=1e-3,total=3000,warmup=100\nlinear:peak=1e-3,total=3000,warmup=100\n")
    assert main(["search", str(path), "--candidates", str(listed)]) == 0
    assert "linear:peak=1e-3" in capsys.readouterr().out
    assert main(["search", str(path), *argv[2:], "--precision", "float32"]) == 0
    fast = json.loads(capsys.readouterr().out)
    assert [r["schedule"] for r in fast] == [r["schedule"] for r in rows]
    assert fast[0]["final_loss"] == pytest.approx(rows[0]["final_loss"], rel=1e-4)
    assert main(["search", str(path), *argv[2:], "--at", "2000"]) == 0
    early = json.loads(capsys.readouterr().out)
    assert all(r["at_step"] == 2000 for r in early)
    with optlaws.float64():
        spec = optlaws.parse_schedule(early[0]["schedule"])
        assert float(truth_model().loss(spec, [2000])[0]) == pytest.approx(early[0]["final_loss"], rel=3e-5)
    assert main(["search", str(path), "--family", "wsd", "--total", "3000", "--grid", "peak=1:2:x"]) == 2
    assert "--grid" in capsys.readouterr().err
    assert main(["search", str(path)]) == 2
    assert "--candidates" in capsys.readouterr().err


def test_ranking_is_the_same_on_four_devices(tmp_path):
    """The candidate batch sharded across 4 simulated CPU devices gives the ranking of one CPU
    device. Both run on the CPU, in subprocesses: on a GPU machine this process computes on the GPU,
    whose float64 transcendentals differ from the CPU's by about 1e-7 (seen on an H200)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "ranking.py"
    script.write_text(
        "import json, jax, optlaws, sys\n"
        "sys.path.insert(0, %r)\n"
        "from test_rank import candidates, truth_model\n"
        "assert len(jax.devices()) == int(sys.argv[1])\n"
        "r = optlaws.rank(truth_model(), candidates(), band=None, chunk_size=5, progress_bar=False)\n"
        "print(json.dumps({'names': r.names, 'loss': r.final_loss.tolist()}))\n" % os.path.dirname(__file__))

    def ranking(devices: int) -> dict:
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
               "JAX_PLATFORMS": "cpu"}
        out = subprocess.run([sys.executable, str(script), str(devices)], capture_output=True, text=True,
                             env=env, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    four, one = ranking(4), ranking(1)
    assert four["names"] == one["names"]
    np.testing.assert_allclose(four["loss"], one["loss"], rtol=1e-12)
