import json

import jax
import numpy as np
import pytest

import optlaws
from optlaws.cli import main

TRUE = dict(loss_inf=2.6, signal_amplitude=0.75, signal_exponent=0.46, noise_amplitude=900.0)


def write_curves(folder, truth, schedules, steps):
    """Curves of ``truth`` under ``schedules``, written in the Multi-Power Law CSV format (``step,lr,loss``)."""
    paths = {}
    for name, s in schedules.items():
        with jax.enable_x64(True):
            loss = np.asarray(truth.loss(s.lr, steps))
        paths[name] = folder / f"{name}.csv"
        optlaws.write_csv(paths[name], steps, loss, np.asarray(s.lr)[steps - 1])
    return paths


@pytest.fixture
def curve_files(tmp_path):
    """Three 24000-step curves from a known SDE model."""
    return write_curves(tmp_path, optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE), {
        "constant_24000": optlaws.constant(3e-4, 24000, warmup=2160),
        "cosine_24000": optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160),
        "wsd_24000": optlaws.wsd(3e-4, 24000, warmup=2160, decay_frac=0.2, final=3e-5),
    }, np.arange(2176, 24000, 128))


def test_fit_predict_evaluate(curve_files, tmp_path, capsys):
    fitted = tmp_path / "fitted.json"
    code = main(["fit", str(curve_files["constant_24000"]), str(curve_files["cosine_24000"]),
                 "--model", "sde-adam", "--warmup", "2160", "--out", str(fitted)])
    out = capsys.readouterr().out
    assert code == 0 and fitted.is_file()
    assert "signal_exponent" in out and "constant_24000" in out

    pred = tmp_path / "pred.csv"
    spec = "wsd:peak=3e-4,warmup=2160,total=24000,decay_frac=0.2,shape=linear,final=3e-5"
    assert main(["predict", str(fitted), "--schedule", spec, "--out", str(pred), "--plot",
                 str(tmp_path / "pred.png")]) == 0
    table = np.genfromtxt(pred, delimiter=",", names=True)
    assert table.dtype.names == ("step", "lr", "loss") and table["step"][-1] == 24000
    assert (tmp_path / "pred.png").stat().st_size > 10000
    capsys.readouterr()

    assert main(["evaluate", str(fitted), str(curve_files["wsd_24000"]), "--warmup", "2160", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [set(r) for r in rows] == [{"curve", "r2", "mean_rel_error", "max_rel_error", "final_rel_error"}]
    assert rows[0]["curve"] == "wsd_24000" and rows[0]["mean_rel_error"] < 1e-3

    assert main(["evaluate", str(fitted), str(curve_files["wsd_24000"]), "--warmup", "2160"]) == 0
    assert "wsd_24000" in capsys.readouterr().out


def test_predicted_csv_loads_back_as_a_schedule(curve_files, tmp_path, capsys):
    fitted = tmp_path / "fitted.json"
    main(["fit", str(curve_files["constant_24000"]), str(curve_files["cosine_24000"]),
          "--warmup", "2160", "--out", str(fitted), "--quiet", "--starts", "2"])
    out = tmp_path / "p.csv"
    assert main(["predict", str(fitted), "--schedule", str(curve_files["wsd_24000"]),
                 "--warmup", "2160", "--out", str(out), "--quiet"]) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "absent.csv", "--out", "x.json"], "no such file"),
        (["predict", "absent.json", "--schedule", "constant:peak=1,total=10", "--out", "p.csv"],
         "no such fitted-model file"),
    ],
)
def test_errors_exit_2_with_a_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_inputs_on_the_command_line(curve_files, tmp_path, capsys):
    nan_file = tmp_path / "nan.csv"
    nan_file.write_text("step,lr,loss\n100,1e-3,3.0\n200,1e-3,nan\n300,1e-3,2.8\n")
    assert main(["fit", str(nan_file), "--warmup", "10", "--out", str(tmp_path / "f.json")]) == 2
    assert "loss is nan at step 200" in capsys.readouterr().err
    no_lr = tmp_path / "no_lr.csv"
    no_lr.write_text("step,loss\n100,3.0\n200,2.9\n")
    assert main(["fit", str(no_lr), "--out", str(tmp_path / "f.json")]) == 2
    assert "no 'lr' column and no schedule" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", str(curve_files["wsd_24000"]), "--model", "transformer", "--out", "f.json"])
    assert "invalid choice: 'transformer'" in capsys.readouterr().err
    fitted = tmp_path / "fitted.json"
    main(["fit", str(curve_files["constant_24000"]), "--warmup", "2160", "--out", str(fitted),
          "--quiet", "--starts", "1"])
    assert main(["predict", str(fitted), "--schedule", "cosine:peak=-1,total=10", "--out", "p.csv"]) == 2
    assert "`peak`" in capsys.readouterr().err


def test_real_curves_through_the_cli(data_root, tmp_path, capsys):
    d = data_root / "mpl" / "100M"
    fitted = tmp_path / "fitted.json"
    assert main(["fit", str(d / "constant_24000.csv"), str(d / "cosine_24000.csv"), "--warmup", "2160",
                 "--out", str(fitted), "--quiet"]) == 0
    assert main(["evaluate", str(fitted), str(d / "wsdld_20000_24000.csv"), "--warmup", "2160", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["mean_rel_error"] < 0.002


@pytest.fixture
def short_curve_files(tmp_path):
    """Two 3000-step curves (constant, cosine) and a held-out WSD one, from a known SDE model."""
    return write_curves(tmp_path, optlaws.AdamModel(reference_lr=1e-3).replace(**TRUE), {
        "constant": optlaws.constant(1e-3, 3000, warmup=200),
        "cosine": optlaws.cosine(1e-3, 3000, final=1e-4, warmup=200),
        "wsd": optlaws.wsd(1e-3, 3000, warmup=200, decay_frac=0.3, final=1e-4),
    }, np.arange(250, 3001, 50))


@pytest.mark.parametrize("model", ["power", "lra", "mpl", "convex", "sde-sgd"])
def test_every_model_through_the_cli(model, short_curve_files, tmp_path, capsys):
    fitted = tmp_path / f"{model}.json"
    assert main(["fit", str(short_curve_files["constant"]), str(short_curve_files["cosine"]), "--warmup", "200",
                 "--model", model, "--starts", "2", "--quiet", "--out", str(fitted)]) == 0
    assert main(["predict", str(fitted), "--schedule", "wsd:peak=1e-3,warmup=200,total=3000,decay_frac=0.3,final=1e-4",
                 "--out", str(tmp_path / "p.csv")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(fitted), str(short_curve_files["wsd"]), "--warmup", "200", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    # Every law follows a smooth SDE curve to within a few percent; a broken fit would not.
    assert row["curve"] == "wsd" and row["mean_rel_error"] < 0.03


def test_sde_only_options_are_refused_for_laws(short_curve_files, tmp_path, capsys):
    assert main(["fit", str(short_curve_files["constant"]), "--warmup", "200", "--model", "mpl",
                 "--batch-size", "64", "--out", str(tmp_path / "f.json")]) == 2
    assert "model 'mpl' has no option 'batch_size'" in capsys.readouterr().err
