"""Where training diverges: the SDE models' sharpest direction, and its calibration on labelled runs."""

import dataclasses

import numpy as np
import pytest

import optlaws

# Critical peak LRs of the SGD truth below (momentum 0.9, edge x = 3.8, EDGE_MARGIN 0.9): without
# warmup about 3.8 / 4 ~ 0.95, whatever the warmup 3.8 / 2.5 ~ 1.5.
STABILITY = dict(sharpness_init=4.0, sharpness_floor=2.5, flattening_rate=0.01)


def sgd_truth(**stability):
    return optlaws.SGDModel(reference_lr=0.5, **stability).replace(
        loss_inf=0.02, signal_amplitude=0.3, signal_exponent=0.5, noise_amplitude=0.05)


def run(peak, warmup, total=800):
    return optlaws.Run(optlaws.cosine(peak, total, warmup=warmup, final=0.0), batch_size=64.0, momentum=0.9)


def diverges(model, r):
    return optlaws.predict(model, r, every=10).diverged_at


def test_warmup_moves_the_edge_and_the_floor_bounds_it():
    model = sgd_truth(**STABILITY)
    assert diverges(model, run(0.8, 0)) is None
    assert diverges(model, run(1.2, 0)) is not None
    assert diverges(model, run(1.2, 400)) is None  # warmup flattens the sharpest direction in time
    assert diverges(model, run(2.0, 400)) is not None  # past the floor's edge no warmup helps
    # The run's settings move the edge: without momentum it is x = 2, not 3.8, and below the floor.
    assert diverges(model, run(1.2, 400).replace(momentum=0.0)) is not None
    # The default model has no sharpest direction: stable curves say nothing about divergence (only
    # the spectrum's stiffest mode, h = 1 / reference_lr, has an edge, at 3.8 reference_lr here).
    assert diverges(sgd_truth(), run(1.5, 0)) is None


def test_divergence_step_is_within_a_segment_of_the_exact_recursion():
    """``block=16`` (segments of 16 updates) against ``block=1`` (every update): the step at which
    the predicted loss blows up moves by at most one segment, and stable runs stay stable."""
    model = sgd_truth(**STABILITY)
    for peak, warmup in [(1.2, 0), (1.2, 50), (2.0, 400), (1.6, 100)]:
        coarse = optlaws.predict(model, run(peak, warmup), steps=np.arange(1, 801)).diverged_at
        fine = optlaws.predict(dataclasses.replace(model, block=1), run(peak, warmup),
                               steps=np.arange(1, 801)).diverged_at
        assert (coarse is None) == (fine is None)
        if coarse is not None:
            assert abs(coarse - fine) <= 16, (peak, warmup, coarse, fine)


@pytest.mark.slow
def test_fit_stability_recovers_held_out_verdicts():
    """Labels from a known model on a peak LR x warmup grid: calibrated on two warmups, the fitted
    model reproduces them and predicts the other two with F1 >= 0.9 (the two warmups bound the
    flattening rate only to an interval, so the edge between them can shift by a grid row)."""
    truth = sgd_truth(**STABILITY)
    peaks, warmups = np.geomspace(0.6, 2.4, 8), (0, 25, 100, 400)
    runs = {(p, w): run(p, w) for p in peaks for w in warmups}
    labels = {key: diverges(truth, r) is not None for key, r in runs.items()}
    assert 0 < sum(labels.values()) < len(labels)
    train = [key for key in runs if key[1] in (0, 100)]
    fitted = optlaws.fit_stability(sgd_truth(), [runs[k] for k in train], [labels[k] for k in train])
    assert fitted.f1 == 1.0
    test = [key for key in runs if key[1] in (25, 400)]
    predicted = [diverges(fitted.model, runs[k]) is not None for k in test]
    assert optlaws.divergence_scores(predicted, [labels[k] for k in test])[2] >= 0.9


def test_fit_stability_refuses_what_cannot_locate_the_edge():
    runs = [run(0.5, 0), run(2.0, 0)]
    with pytest.raises(ValueError, match="both diverged and stable"):
        optlaws.fit_stability(sgd_truth(), runs, [False, False])
    with pytest.raises(ValueError, match="one label per run"):
        optlaws.fit_stability(sgd_truth(), runs, [False, True, True])
    with pytest.raises(TypeError, match="SDE model"):
        optlaws.fit_stability(optlaws.make_model("mpl"), runs, [False, True])


def test_divergence_scores():
    assert optlaws.divergence_scores([True, True, False, False], [True, False, True, False]) == (0.5, 0.5, 0.5)
    precision, recall, f1 = optlaws.divergence_scores([False, False], [False, False])
    assert np.isnan(precision) and np.isnan(recall) and np.isnan(f1)


def test_stability_survives_the_fitted_file(tmp_path):
    model = sgd_truth(**STABILITY)
    path = tmp_path / "fitted.json"
    optlaws.save_model(path, model)
    loaded = optlaws.load_model(path)
    with optlaws.float64():
        assert {k: float(v) for k, v in loaded.values().items()} == pytest.approx(
            {k: float(v) for k, v in model.values().items()})
    assert diverges(loaded, run(1.2, 0)) is not None and diverges(loaded, run(1.2, 400)) is None
