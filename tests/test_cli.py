import json

import numpy as np
import pytest

import optlaws
from optlaws.cli import main

TRUE = dict(loss_inf=2.6, signal_amplitude=0.75, signal_exponent=0.46, noise_amplitude=900.0)


def write_curves(folder, truth, schedules, steps):
    """Curves of ``truth`` under ``schedules``, written in the Multi-Power Law CSV format (``step,lr,loss``)."""
    paths = {}
    for name, s in schedules.items():
        with optlaws.float64():
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


@pytest.mark.slow
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


@pytest.mark.parametrize("model", ["power", "lra", pytest.param("mpl", marks=pytest.mark.slow), "convex", "sde-sgd"])
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


def write_json_run(path, truth, schedule_config, weight_decay, steps):
    """A tracker JSON export (the llm-baselines layout) of ``truth``'s loss under a run."""
    config = {"lr": 1e-3, "iterations": 3000, "warmup_steps": 200, "batch_size": 32, "acc_steps": 2,
              "beta1": 0.9, "weight_decay": weight_decay, **schedule_config}
    with optlaws.float64():
        run = optlaws.Run(optlaws.schedule_from_config(config), weight_decay=weight_decay)
        loss = np.asarray(truth.loss(run, steps))
    path.write_text(json.dumps({"config": config, "history": {"val": {"iter": steps.tolist(),
                                                                      "val_loss": loss.tolist()}}}))
    return path


def test_one_fit_across_weight_decays(tmp_path, capsys):
    """Runs that differ only in weight decay, read from JSON exports that record it: one fitted
    landscape predicts each; told the wrong weight decay, the same model misses them."""
    truth = optlaws.AdamModel(reference_lr=1e-3, reference_batch_size=64.0, norm_init=0.3).replace(**TRUE)
    steps = np.arange(200, 3001, 50)
    constant, cosine = {"scheduler": "none"}, {"scheduler": "cos", "cos_final_lr": 1e-4}
    train = [write_json_run(tmp_path / f"{name}_{wd}.json", truth, config, wd, steps)
             for name, config in (("constant", constant), ("cosine", cosine)) for wd in (0.0, 0.3)]
    held = [write_json_run(tmp_path / f"held_{wd}.json", truth, {"scheduler": "wsd", "wsd_fract_decay": 0.3},
                           wd, steps) for wd in (0.0, 0.3)]
    fitted = tmp_path / "fitted.json"
    assert main(["fit", *map(str, train), "--free", "loss_inf,signal_amplitude,signal_exponent,noise_amplitude,norm_init",
                 "--starts", "2", "--quiet", "--strict", "--out", str(fitted)]) == 0
    stored = json.loads(fitted.read_text())
    assert stored["runs"] == {"batch_size": 64.0, "momentum": 0.9}  # weight decay differs between runs
    capsys.readouterr()
    assert main(["evaluate", str(fitted), *map(str, train + held), "--json"]) == 0
    errors = [row["max_rel_error"] for row in json.loads(capsys.readouterr().out)]
    assert max(errors) < 1e-4, errors
    assert main(["evaluate", str(fitted), *map(str, held), "--weight-decay", "0.1", "--json"]) == 0
    errors = [row["max_rel_error"] for row in json.loads(capsys.readouterr().out)]
    assert min(errors) > 1e-3, errors


def test_free_takes_the_models_named_sets():
    """``--free sweep`` / ``transfer`` / ``default`` are the model's own sets; anything else is a
    list of names (a law has no ``transfer`` set: the name reaches fit, which lists the real ones)."""
    from optlaws.cli import _free_parameters

    adam, power = optlaws.AdamModel(), optlaws.make_model("power")
    assert _free_parameters(adam, "transfer") == optlaws.AdamModel.transfer_free
    assert {"norm_exponent", "sharpening_time"} <= set(optlaws.AdamModel.transfer_free)
    assert _free_parameters(adam, "sweep") == optlaws.AdamModel.sweep_free
    assert _free_parameters(power, "default") == type(power).default_free
    assert _free_parameters(adam, "loss_inf,norm_init") == ("loss_inf", "norm_init")
    assert _free_parameters(power, "transfer") == ("transfer",)
    assert _free_parameters(adam, None) is None


def test_laws_take_run_settings_and_ignore_them(short_curve_files, tmp_path):
    fitted = tmp_path / "power.json"
    assert main(["fit", str(short_curve_files["constant"]), "--warmup", "200", "--model", "power", "--quiet",
                 "--batch-size", "64", "--weight-decay", "0.05", "--out", str(fitted)]) == 0
    spec = "wsd:peak=1e-3,warmup=200,total=3000,decay_frac=0.3,final=1e-4"
    for options, out in (([], "a.csv"), (["--batch-size", "512", "--weight-decay", "0.3"], "b.csv")):
        assert main(["predict", str(fitted), "--schedule", spec, "--out", str(tmp_path / out), "--quiet", *options]) == 0
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_strict_fit_fails_on_a_poor_fit(tmp_path, capsys):
    """A power law cannot follow a curve with a sharp LR drop: the fit ends far from its data."""
    steps = np.arange(100, 4001, 50)
    schedule = optlaws.constant(1e-3, 2000) + optlaws.constant(1e-4, 2000)
    loss = 3.0 + 0.5 * (steps / 100.0) ** -0.5 - 0.5 * (steps > 2000)
    optlaws.write_csv(tmp_path / "drop.csv", steps, loss, np.asarray(schedule.lr)[steps - 1])
    args = ["fit", str(tmp_path / "drop.csv"), "--model", "power", "--quiet", "--out", str(tmp_path / "f.json")]
    assert main(args) == 0
    assert "far from its own training data" in capsys.readouterr().err
    assert main(args + ["--strict", "--force"]) == 3


def test_a_rising_curve_is_named(tmp_path, capsys):
    """A loss that rises over training (a slowly diverging run) is no input for a model of a
    falling loss: the fit names the curve, and --strict fails."""
    steps = np.arange(100, 3001, 100)
    loss = 3.0 + 0.02 * np.sqrt(steps / 100.0) + 0.003 * np.sin(steps / 70.0)
    optlaws.write_csv(tmp_path / "up.csv", steps, loss, np.full(steps.shape, 1e-3))
    args = ["fit", str(tmp_path / "up.csv"), "--model", "power", "--quiet", "--out", str(tmp_path / "f.json")]
    assert main(args + ["--strict"]) == 3
    assert "the loss of 'up' rises over the curve" in capsys.readouterr().err
    optlaws.write_csv(tmp_path / "down.csv", steps, loss[::-1], np.full(steps.shape, 1e-3))
    assert optlaws.fit(optlaws.PowerLaw(), optlaws.read_csv(tmp_path / "down.csv"), progress=False).rising == ()


def test_outputs_never_clobber_inputs_or_existing_files(curve_files, tmp_path, capsys):
    constant = str(curve_files["constant_24000"])
    before = curve_files["constant_24000"].read_text()
    assert main(["fit", constant, "--warmup", "2160", "--out", constant]) == 2
    assert "is an input of this command" in capsys.readouterr().err
    assert curve_files["constant_24000"].read_text() == before
    fitted = tmp_path / "fitted.json"
    fitted.write_text("{}")
    assert main(["fit", constant, "--warmup", "2160", "--out", str(fitted)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert fitted.read_text() == "{}"
    assert main(["fit", constant, "--warmup", "2160", "--out", str(tmp_path / "missing" / "f.json")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "missing").exists()
    assert main(["fit", constant, "--warmup", "2160", "--out", str(fitted), "--force", "--quiet"]) == 0
    assert optlaws.load_fitted(fitted).model is not None


def test_a_write_that_fails_partway_leaves_the_previous_file(tmp_path, monkeypatch):
    """Atomic writes: a CSV whose rows fail halfway, and a FITTED.json whose serialisation fails,
    leave the previous file byte for byte and no temporary file behind."""
    path = tmp_path / "pred.csv"
    optlaws.write_csv(path, [1, 2], [3.0, 2.9], [1e-3, 1e-3])
    before = path.read_bytes()

    class Bad:
        def __float__(self):
            raise KeyboardInterrupt  # an interrupt in the middle of the rows

    with pytest.raises(KeyboardInterrupt):
        optlaws.write_csv(path, [1, 2, 3], np.array([3.0, 2.9, Bad()], dtype=object), [1e-3] * 3)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["pred.csv"]

    fitted = tmp_path / "fitted.json"
    model = optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE)
    optlaws.save_model(fitted, model)
    before = fitted.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(optlaws._io.os, "fsync", fail)
    with pytest.raises(OSError, match="No space left"):
        optlaws.save_model(fitted, model.replace(loss_inf=2.0))
    assert fitted.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["fitted.json", "pred.csv"]


@pytest.mark.parametrize("option", [["--warmup", "-5"], ["--every", "0"], ["--every", "-5"]])
def test_counts_on_the_command_line_are_checked(tmp_path, capsys, option):
    fitted = tmp_path / "fitted.json"
    optlaws.save_model(fitted, optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE))
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(fitted), "--schedule", "constant:peak=3e-4,total=100", "--out", str(tmp_path / "p.csv"),
              *option])
    assert exit_info.value.code == 2 and option[0] in capsys.readouterr().err


def test_interrupt_and_unexpected_errors_exit_cleanly(tmp_path, capsys, monkeypatch):
    fitted = tmp_path / "fitted.json"
    optlaws.save_model(fitted, optlaws.AdamModel(reference_lr=3e-4).replace(**TRUE))
    argv = ["predict", str(fitted), "--schedule", "constant:peak=3e-4,total=100", "--out", str(tmp_path / "p.csv")]
    for error, code, text in ((KeyboardInterrupt(), 130, "interrupted"), (ZeroDivisionError("x"), 2, "ZeroDivisionError"),
                              (KeyError("lr"), 2, "KeyError")):
        def fail(*args, error=error, **kwargs):
            raise error
        monkeypatch.setattr("optlaws.cli.predict", fail)
        assert main(argv) == code
        err = capsys.readouterr().err
        assert err.startswith("optlaws:") and text in err and "Traceback" not in err
    assert not (tmp_path / "p.csv").exists()


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "(default: 8)" in out and "(default: sde-adam)" in out and "(default: None)" not in out


def test_out_dash_writes_to_stdout_and_seeds_choose_the_draws(short_curve_files, tmp_path, capsys):
    """``--out -`` puts the file on stdout (the report goes to stderr); ``--seed`` picks the
    random starts and band draws: the same seed repeats them, another changes them."""
    assert main(["fit", str(short_curve_files["constant"]), str(short_curve_files["cosine"]), "--starts", "2",
                 "--out", "-"]) == 0
    out, err = capsys.readouterr()
    fitted = tmp_path / "fitted.json"
    fitted.write_text(out)
    assert optlaws.load_fitted(fitted).model is not None and "signal_exponent" in err
    spec = "wsd:peak=1e-3,warmup=200,total=3000,decay_frac=0.3,final=1e-4"

    def predicted(*options):
        assert main(["predict", str(fitted), "--schedule", spec, "--every", "500", "--band", "0.9", "--out", "-",
                     *options]) == 0
        out, err = capsys.readouterr()
        assert "predicted final loss" in err and "wrote" not in out
        return np.genfromtxt(out.splitlines(), delimiter=",", names=True)

    first, again, other = predicted(), predicted("--seed", "0"), predicted("--seed", "7")
    assert first.dtype.names == ("step", "lr", "loss", "loss_low", "loss_high") and first["step"][-1] == 3000
    np.testing.assert_array_equal(first["loss_low"], again["loss_low"])
    assert not np.array_equal(first["loss_low"], other["loss_low"])
    np.testing.assert_array_equal(first["loss"], other["loss"])
    assert main(["optimise", str(fitted), "--total", "3000", "--peak", "1e-3", "--out", "-", "--json"]) == 2
    assert "both write to stdout" in capsys.readouterr().err


def test_tables_stay_aligned_with_long_names():
    """Every table goes through one helper: a cell longer than its header (a W&B run name) widens
    its column and the numbers stay right-aligned under theirs, on one line each, piped or not."""
    from optlaws._metrics import CurveMetrics, metrics_table

    long_name = "llama-124m_lr0.001_wsd-0.2-linear_seed1337_run-2026-11-26T08:00:00"
    lines = metrics_table([CurveMetrics(long_name, 0.99, 0.001, 0.002, 0.0005),
                           CurveMetrics("short", 0.5, 0.1, 0.2, 0.05)]).splitlines()
    assert len(lines) == 3 and lines[1].startswith(long_name)
    ends = {line.index(cell) + len(cell) for line, cell in zip(lines, ["R2", "0.99000", "0.50000"])}
    assert len(ends) == 1  # the R2 column's right edge
    assert lines[2].endswith("5.000%") and len({len(line) for line in lines}) == 1
