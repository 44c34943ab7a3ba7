"""FITTED.json is loaded strictly: a tampered or partial file is refused with the field named."""

import json
import warnings

import numpy as np
import pytest

import optlaws
from conftest import constant_and_cosine_curves
from optlaws._serialize import _content_hash
from optlaws.cli import main

TRUE = dict(loss_inf=2.6, signal_amplitude=0.75, signal_exponent=0.46, noise_amplitude=300.0)


def stored(tmp_path):
    model = optlaws.AdamModel(reference_lr=1e-3).replace(**TRUE)
    parameters = optlaws.ParameterMap.of(model, ("noise_amplitude", "signal_exponent"))
    with optlaws.float64():
        uncertainty = optlaws.ParameterUncertainty(parameters, parameters.to_theta(model), np.diag([0.04, 4e-4]), 0.002)
    path = tmp_path / "fitted.json"
    optlaws.save_model(path, model)
    document = json.loads(path.read_text())
    document["uncertainty"] = {"free": list(parameters.names), "positive": list(parameters.positive),
                               "theta": np.asarray(uncertainty.mean).tolist(),
                               "covariance": np.asarray(uncertainty.covariance).tolist(), "discrepancy": 0.002}
    document["sha256"] = _content_hash(document)  # as optlaws writes a file with an uncertainty
    return document


def tamper(tmp_path, edit):
    document = stored(tmp_path)
    edit(document)
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(document))
    return path


def spectrum(document):
    return document["model"]["fields"]["spectrum"]["fields"]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["model"]["fields"].pop("loss_inf"), "lacks `loss_inf`"),
    (lambda d: spectrum(d).pop("curvatures"), "lacks `curvatures`"),
    (lambda d: spectrum(d).update(curvatures=[]), "curvatures` is empty"),
    (lambda d: spectrum(d).update(noise_amplitude=-5.0), "`noise_amplitude` is -5.0; it cannot be negative"),
    (lambda d: d["model"]["fields"].update(loss_inf=float("nan")), "model.loss_inf` is NaN"),
    (lambda d: d["model"]["fields"].update(block=10**9), "`model.block` is 1000000000"),
    (lambda d: d["model"].update(fields=[1, 2]), "`model.fields` must be an object"),
    (lambda d: d.pop("model"), "no `model` object"),
    (lambda d: d["model"]["fields"].update(colour="red"), "unknown field"),
    (lambda d: spectrum(d).update(curvatures=["a", "b"]), "must be an array of numbers"),
    (lambda d: d["uncertainty"].update(theta=[1.0]), "parameter names need `mean`"),
    (lambda d: d["uncertainty"].update(free=["loss_inf", "colour"]), "colour, not parameters"),
    (lambda d: d["uncertainty"].pop("covariance"), "missing 'covariance'"),
    (lambda d: d.update(runs=[64]), "`runs` must be an object"),
])
def test_tampered_files_are_refused_with_the_field_named(tmp_path, capsys, edit, message):
    path = tamper(tmp_path, edit)
    with pytest.raises(ValueError, match=message):
        optlaws.load_fitted(path)
    # The command line says the same and exits 2, without a traceback.
    assert main(["predict", str(path), "--schedule", "constant:peak=1e-3,total=100",
                 "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optlaws: error:") and "Traceback" not in err


def older(document):
    """A version-2 file, written before the stability fields and the hash."""
    for name in ("sharpness_init", "sharpness_floor", "flattening_rate"):
        document["model"]["fields"].pop(name)
    document.pop("sha256")
    document["version"] = 2


def test_an_untampered_file_and_an_older_one_load(tmp_path):
    path = tamper(tmp_path, lambda d: None)
    assert optlaws.load_fitted(path).uncertainty is not None
    assert optlaws.load_fitted(tamper(tmp_path, older)).model.values() == optlaws.load_fitted(path).model.values()
    # Its fit report had the peak LR range alone.
    older_report = tamper(tmp_path, lambda d: (older(d), d.update(fit={"peak_lr_range": [1e-3, 2e-3]})))
    assert optlaws.load_fitted(older_report).ranges == {"peak_lr": (1e-3, 2e-3)}
    # The informational fit report is not what predictions depend on: not hashed.
    optlaws.load_fitted(tamper(tmp_path, lambda d: d.update(fit={"note": "edited"})))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["model"]["fields"].update(loss_inf=2.5), "does not match its `sha256`"),
    (lambda d: d["uncertainty"].update(discrepancy=0.02), "does not match its `sha256`"),
    (lambda d: d["runs"].update(batch_size=32.0), "does not match its `sha256`"),
    (lambda d: d.pop("sha256"), "has no `sha256`"),
])
def test_a_hand_edit_is_refused_unless_trusted(tmp_path, capsys, edit, message):
    document = stored(tmp_path)
    document["runs"] = {"batch_size": 64.0}
    document["sha256"] = _content_hash(document)
    edit(document)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message):
        optlaws.load_fitted(path)
    assert optlaws.load_fitted(path, trust=True).model.values() == optlaws.load_model(path, trust=True).values()
    command = ["predict", str(path), "--schedule", "constant:peak=1e-3,total=100", "--out", str(tmp_path / "p.csv")]
    assert main(command) == 2
    assert "--trust" in capsys.readouterr().err
    assert main([*command, "--trust", "--quiet"]) == 0


def test_a_peak_lr_far_outside_the_fitted_ones_is_reported(tmp_path, capsys):
    truth = optlaws.AdamModel(reference_lr=1e-3).replace(**TRUE)
    curves = constant_and_cosine_curves(truth, 3000, np.arange(200, 3001, 100))
    result = optlaws.fit(optlaws.AdamModel(), curves, progress=False)
    assert result.ranges["peak_lr"] == pytest.approx((1e-3, 1e-3)) and result.ranges["horizon"] == (3000, 3000)
    path = tmp_path / "fitted.json"
    optlaws.save_model(path, result.model, result)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optlaws.predict(optlaws.load_fitted(path), optlaws.constant(2e-3, 3000, warmup=100))  # 2x: no warning
    with pytest.warns(UserWarning, match="peak LR 0.1 is far outside the fitted runs' peak LRs"):
        optlaws.predict(optlaws.load_fitted(path), optlaws.constant(0.1, 3000, warmup=100))
    with pytest.warns(UserWarning, match="horizon 10000 is far outside the fitted runs' horizons \\(3000 to 3000"):
        longer = optlaws.predict(optlaws.load_fitted(path), optlaws.constant(1e-3, 10000, warmup=100))
    assert len(longer.extrapolations) == 1
    with pytest.warns(UserWarning, match="batch size 64 is far outside the fitted runs' batch sizes \\(1 to 1\\)"):
        optlaws.predict(result, optlaws.Run(optlaws.constant(1e-3, 3000, warmup=100), batch_size=64))
    with pytest.warns(UserWarning, match="extrapolates"):
        optlaws.rank(result, [optlaws.constant(1e-3, 3000), optlaws.constant(1e-5, 3000)], band=None,
                     progress_bar=False)
    assert main(["predict", str(path), "--schedule", "constant:peak=0.1,total=3000", "--out",
                 str(tmp_path / "p.csv"), "--quiet"]) == 0
    assert "optlaws: warning: peak LR 0.1" in capsys.readouterr().err


def with_retired_ceiling(value):
    """A version-3 file written while the experimental ``curvature_ceiling`` existed (it had no
    ``area_ceiling`` nor ``ceiling_exponent``), hashed as optlaws wrote it."""
    def edit(document):
        fields = document["model"]["fields"]
        fields.pop("area_ceiling")
        fields.pop("ceiling_exponent")
        fields["curvature_ceiling"] = value
        document["sha256"] = _content_hash(document)
    return edit


def test_a_file_with_the_retired_curvature_ceiling_loads_only_when_it_was_off(tmp_path):
    current = optlaws.load_fitted(tamper(tmp_path, lambda d: None)).model.values()
    assert optlaws.load_fitted(tamper(tmp_path, with_retired_ceiling(0.0))).model.values() == current
    with pytest.raises(ValueError, match=r"model.curvature_ceiling` is no longer supported.*area_ceiling"):
        optlaws.load_fitted(tamper(tmp_path, with_retired_ceiling(1.3e-3)))


def test_a_file_from_before_the_norms_unit_predicts_as_it_did(tmp_path):
    """Written before ``reference_weight_decay``, a model's weight norm settled at 1 (at the
    reference LR) whatever the weight decay; loaded, the weight decay its runs shared becomes the
    norm's unit, so at that weight decay it still settles at 1: lr_eff = lr at the reference LR."""
    def before(document):
        document["model"]["fields"].pop("reference_weight_decay")
        document["runs"] = {"weight_decay": 0.05}
        document["sha256"] = _content_hash(document)

    model = optlaws.load_model(tamper(tmp_path, before))
    assert float(model.reference_weight_decay) == pytest.approx(0.05)
    with optlaws.float64():
        settled = model.effective_lr(optlaws.Run(optlaws.constant(1e-3, 100_000), weight_decay=0.05))
    assert float(settled[-1]) == pytest.approx(1e-3, rel=1e-3)  # 1e-3 / sqrt(2) with the default unit
    assert float(optlaws.load_model(tamper(tmp_path, lambda d: None)).reference_weight_decay) == pytest.approx(0.1)


def test_a_file_from_before_the_signals_own_mobility_predicts_as_it_did(tmp_path):
    """Written before ``signal_mobility_exponent``, a model relaxed its signal at the noise's
    mobility; loaded, the signal takes the stored ``mobility_exponent``, not the class default."""
    def before(document):
        document["model"]["fields"].pop("signal_mobility_exponent")
        document["model"]["fields"]["mobility_exponent"] = 0.6
        document["sha256"] = _content_hash(document)

    model = optlaws.load_model(tamper(tmp_path, before))
    assert float(model.signal_mobility_exponent) == pytest.approx(0.6)
    assert float(optlaws.load_model(tamper(tmp_path, lambda d: None)).signal_mobility_exponent) == pytest.approx(0.8)
