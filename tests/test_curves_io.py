import csv
import json
import sys
import time
import warnings

import numpy as np
import pytest

import optlaws
from optlaws.cli import main

LR = optlaws.constant(1e-3, 100)


def curve(steps, loss, schedule=LR):
    return optlaws.LossCurve(np.asarray(steps), np.asarray(loss, dtype=float), schedule, name="c")


@pytest.mark.parametrize(
    "steps, loss, message",
    [
        ([], [], "empty"),
        ([1, 2, 3], [3.0, 2.0], "mismatched lengths, 3 steps but 2 losses"),
        ([1, 3, 2], [3.0, 2.9, 2.8], "not sorted: step 2 .* after 3"),
        ([1, 2, 2], [3.0, 2.9, 2.8], "duplicate step 2"),
        ([1, 2, 3], [3.0, float("nan"), 2.8], "loss is nan at step 2"),
        ([1, 2, 3], [3.0, -1.0, 2.8], "must be positive"),
        ([10, 20, 30, 40], [3.0, 2.5, 5.0, 9.0], "diverged at step 30"),
        ([10, 200], [3.0, 2.5], "schedule has 100 steps but the loss is observed up to step 200"),
    ],
)
def test_bad_curves_name_the_problem(steps, loss, message):
    with pytest.raises(optlaws.InvalidCurveError, match=message):
        curve(steps, loss)


def test_diverged_run_can_be_truncated():
    with pytest.raises(optlaws.DivergedRunError) as info:
        curve([10, 20, 30, 40], [3.0, 2.5, 5.0, 9.0])
    assert "curve.until(29)" in str(info.value)
    good = curve([10, 20], [3.0, 2.5])
    assert len(good.until(15)) == 1 and len(good.since(15)) == 1


def write(tmp_path, text, name="c.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_csv_with_lr_column(tmp_path):
    path = write(tmp_path, "step,lr,loss\n100,1e-3,3.0\n200,5e-4,2.8\n300,1e-4,2.7\n")
    c = optlaws.read_csv(path, warmup=50)
    lr = np.asarray(c.schedule.lr)
    assert c.schedule.total_steps == 300 and c.name == "c"
    np.testing.assert_allclose(lr[[0, 25, 50, 100, 150, 299]], [0, 5e-4, 1e-3, 1e-3, 7.5e-4, 1.04e-4], rtol=1e-5)


def test_read_csv_warns_when_lr_before_first_step_is_unknown(tmp_path):
    path = write(tmp_path, "step,lr,loss\n100,1e-3,3.0\n200,1e-3,2.8\n")
    with pytest.warns(UserWarning, match="before step 100 is not in the data"):
        optlaws.read_csv(path)


def test_read_csv_with_spec(tmp_path):
    path = write(tmp_path, "step,loss\n100,3.0\n200,2.8\n")
    c = optlaws.read_csv(path, schedule="cosine:peak=1e-3,total=200,warmup=10")
    assert c.schedule.total_steps == 200


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("", {}, "empty"),
        ("step,loss\n", {}, "no data rows"),
        ("step,loss\n100,3.0\n", {}, "no 'lr' column and no schedule"),
        ("epoch,metric\n1,2\n", {}, "needs a header with column"),
        ("step,lr,loss\n100,1e-3,abc\n", {}, "row 2, column 'loss': not a number"),
        ("step,lr,loss\n100,nan,3.0\n200,1e-3,2.9\n", {"warmup": 10}, "learning rate is nan at step 100"),
        ("step,lr,loss\n100,-1e-3,3.0\n200,1e-3,2.9\n", {"warmup": 10}, "negative learning rate"),
        ("step,lr,loss\n100,1e-3,3.0\n50,1e-3,2.9\n", {"warmup": 10}, "not sorted"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, text, kwargs, message):
    with pytest.raises(optlaws.InvalidCurveError, match=message):
        optlaws.read_csv(write(tmp_path, text), **kwargs)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(optlaws.InvalidCurveError, match="unknown file format '.parquet'"):
        optlaws.read_curve(write(tmp_path, "x", "c.parquet"))
    with pytest.raises(FileNotFoundError):
        optlaws.read_curve(tmp_path / "absent.csv")


def export(steps, losses, **config):
    base = {"lr": 1e-3, "iterations": 1000, "scheduler": "wsd", "warmup_steps": 100,
            "wsd_fract_decay": 0.2, "decay_type": "linear", "wsd_final_lr_scale": 0.0}
    return {"config": {**base, **config}, "history": {"val": {"iter": steps, "val_loss": losses}}}


def test_read_json_export_rebuilds_schedule(tmp_path):
    path = write(tmp_path, json.dumps(export([200, 400, 1000], [4.0, 3.5, 3.2])), "run.json")
    with pytest.warns(UserWarning, match="history starts at step 200"):
        c = optlaws.read_json(path)
    expected = optlaws.wsd(1e-3, 1000, decay_frac=0.2, warmup=100)
    np.testing.assert_allclose(np.asarray(c.schedule.lr), np.asarray(expected.lr))
    assert c.metadata["notes"] == ["history starts at step 200"]


def test_read_json_fragment_is_sorted_and_reported(tmp_path):
    record = export([200, 400, 600, 400, 600], [4.0, 3.6, 3.4, 3.5, 3.3])
    path = write(tmp_path, json.dumps(record), "resumed.json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = optlaws.read_json(path)
    np.testing.assert_array_equal(c.steps, [200, 400, 600])
    np.testing.assert_allclose(c.loss, [4.0, 3.5, 3.3])  # the resumed run's values win
    notes = " ".join(c.metadata["notes"])
    assert "out of order" in notes and "dropped 2 repeated" in notes and "ends at step 600 of 1000" in notes
    assert any("resumed.json" in str(w.message) for w in caught)


def test_read_json_errors(tmp_path):
    with pytest.raises(optlaws.InvalidCurveError, match="not valid JSON"):
        optlaws.read_json(write(tmp_path, "{oops", "a.json"))
    with pytest.raises(optlaws.InvalidCurveError, match="'history'"):
        optlaws.read_json(write(tmp_path, "{}", "b.json"))
    with pytest.raises(optlaws.InvalidCurveError, match="unknown scheduler 'triangle'"):
        optlaws.read_json(write(tmp_path, json.dumps(export([200], [4.0], scheduler="triangle")), "c.json"))


def test_mpl_loader_reads_local_copy(data_root, monkeypatch):
    monkeypatch.setenv("OPTLAWS_DATA", str(data_root))
    c = optlaws.load_mpl("100M", "wsdcon_9")
    assert c.steps[0] == 2176 and c.schedule.total_steps == 16000
    np.testing.assert_allclose(np.asarray(c.schedule.lr)[[7999, 8000]], [3e-4, 9e-5], rtol=1e-6)
    # The schedule rebuilt from the file's own lr column agrees where it is logged.
    logged = optlaws.read_csv(data_root / "mpl/100M/wsdcon_9.csv", warmup=2160)
    np.testing.assert_allclose(np.asarray(logged.schedule.lr)[c.steps[:-1]],
                               np.asarray(c.schedule.lr)[c.steps[:-1]], rtol=1e-6)


def test_mpl_loader_errors(tmp_path):
    with pytest.raises(ValueError, match="`size`"):
        optlaws.load_mpl("7B", "cosine_24000")
    with pytest.raises(ValueError, match="unknown Multi-Power Law curve"):
        optlaws.load_mpl("100M", "zigzag")
    with pytest.raises(FileNotFoundError, match="local data folder"):
        optlaws.load_mpl("100M", "cosine_24000", root=tmp_path)


def test_schaipp_fragment_is_read(data_root):
    path = next((data_root / "schaipp124m").glob("ann124-0.8_*lr0.001_*iter25000*.json"))
    with pytest.warns(UserWarning, match="out of order"):
        c = optlaws.read_json(path)
    assert np.all(np.diff(c.steps) > 0) and c.schedule.total_steps == 25000


def test_sparse_lr_column_keeps_step_changes_sharp():
    """An LR logged every 128 steps and at the step of a drop (as the MPL wsdcon runs log step
    8000): the drop between two flat stretches is rebuilt exactly, while a smooth decay is still
    interpolated linearly (within 1e-3 relative)."""
    steps = np.union1d(np.arange(2176, 16001, 128), [8000])
    true = np.asarray(optlaws.concatenate(optlaws.constant(3e-4, 8000, warmup=2160),
                                          optlaws.constant(3e-5, 8000)).lr)
    rebuilt = np.asarray(optlaws.schedule_from_samples(steps, true[np.minimum(steps, 15999)], total=16000,
                                                        warmup=2160).lr)
    np.testing.assert_allclose(rebuilt[7800:8200], true[7800:8200], rtol=1e-6)
    smooth = np.asarray(optlaws.cosine(3e-4, 24000, final=3e-5, warmup=2160).lr)
    logged = np.arange(2176, 24001, 128)
    rebuilt = np.asarray(optlaws.schedule_from_samples(logged, smooth[np.minimum(logged, 23999)], total=24000,
                                                        warmup=2160).lr)
    np.testing.assert_allclose(rebuilt[2200:23900], smooth[2200:23900], rtol=1e-3)


def test_wandb_history_export_with_blank_cells_and_two_losses(tmp_path):
    """W&B's history CSV: ``_step``, metrics logged on different rows (blank elsewhere)."""
    path = tmp_path / "wandb_export.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["_step", "_runtime", "train/loss", "val/loss", "lr"])
        for step in range(0, 1001, 100):
            writer.writerow([step, step * 0.1, 5 - step / 500, "", 1e-3])
            if step % 500 == 0 and step:
                writer.writerow([step + 1, step * 0.1, "", 4.5 - step / 500, ""])
    with pytest.warns(UserWarning, match="several loss columns \\(val/loss, train/loss\\); using 'val/loss'"):
        val = optlaws.read_curve(path, warmup=50)
    np.testing.assert_array_equal(val.steps, [501, 1001])
    train = optlaws.read_curve(path, warmup=50, loss_col="train/loss")
    assert len(train) == 11 and train.loss[0] == pytest.approx(5.0)  # step 0: the loss before any update
    assert float(train.run.lr[600]) == pytest.approx(1e-3)
    with pytest.raises(optlaws.InvalidCurveError, match="no column 'loss/train'"):
        optlaws.read_curve(path, loss_col="loss/train")


def test_a_pandas_data_frame_reads_as_its_csv_does(tmp_path):
    """A W&B-style history in a pandas DataFrame (NaN where a metric was not logged, the LR
    logged sparsely with a step drop, weight decay as a column) gives the curve that the CSV pandas
    writes from it gives."""
    pd = pytest.importorskip("pandas")
    steps = np.arange(0, 2001, 50)
    frame = pd.DataFrame({"_step": steps, "train/loss": 5 - steps / 1000,
                          "lr": np.where(steps < 1500, 1e-3, 1e-4), "weight_decay": 0.1})
    frame.loc[frame["_step"] % 200 == 50, "train/loss"] = np.nan
    frame.loc[frame["_step"] % 100 == 50, "lr"] = np.nan
    path = tmp_path / "history.csv"
    frame.to_csv(path, index=False)
    from_frame = optlaws.LossCurve.from_dataframe(frame, warmup=50, name="history")
    from_file = optlaws.read_curve(path, warmup=50)
    np.testing.assert_array_equal(from_frame.steps, from_file.steps)
    np.testing.assert_array_equal(from_frame.loss, from_file.loss)
    np.testing.assert_array_equal(np.asarray(from_frame.run.lr), np.asarray(from_file.run.lr))
    assert float(from_frame.run.weight_decay) == 0.1 and len(from_frame) == 31
    assert float(from_frame.run.lr[1499]) == pytest.approx(1e-3) and float(from_frame.run.lr[1500]) == pytest.approx(1e-4)
    with pytest.raises(optlaws.InvalidCurveError, match="data frame 'history'.*no column 'val/loss'"):
        optlaws.LossCurve.from_dataframe(frame, loss_col="val/loss", name="history")
    with pytest.raises(TypeError, match="`frame` must be a data frame"):
        optlaws.LossCurve.from_dataframe([1, 2, 3])


def test_settings_come_from_a_config_beside_the_log(tmp_path):
    """A config.json beside the log gives the run's settings (W&B's {"value": ...} unwrapped);
    a column overrides it, a given setting overrides both, and {stem}.config.json comes first."""
    log = tmp_path / "run.csv"
    optlaws.write_csv(log, [100, 200], [3.0, 2.9], [1e-3, 1e-3])
    (tmp_path / "config.json").write_text(json.dumps({"batch_size": {"value": 32}, "acc_steps": 2,
                                                       "weight_decay": 0.05, "beta1": 0.95, "n_layer": 12}))
    curve = optlaws.read_curve(log, warmup=10)
    assert (float(curve.run.batch_size), float(curve.run.weight_decay), float(curve.run.momentum)) == (64.0, 0.05, 0.95)
    assert curve.metadata["config"] == str(tmp_path / "config.json")
    assert float(optlaws.read_curve(log, warmup=10, weight_decay=0.2).run.weight_decay) == 0.2
    (tmp_path / "run.config.json").write_text(json.dumps({"weight_decay": 0.3}))
    own = optlaws.read_curve(log, warmup=10)
    assert float(own.run.weight_decay) == 0.3 and own.run.batch_size is None
    (tmp_path / "run.config.json").write_text("{not json")
    with pytest.raises(optlaws.InvalidCurveError, match="run.config.json \\(the config beside run.csv\\): not JSON"):
        optlaws.read_curve(log, warmup=10)


def test_settings_from_yaml_configs_of_lightning_hydra_and_wandb(tmp_path):
    """YAML configs beside a log, written by PyYAML as Lightning writes hparams.yaml: nested
    sections are searched, gradient accumulation multiplies the batch size, betas give beta1."""
    yaml = pytest.importorskip("yaml")
    run = tmp_path / "lightning_logs" / "version_0"
    run.mkdir(parents=True)
    log = run / "metrics.csv"
    optlaws.write_csv(log, [100, 200], [3.0, 2.9], [1e-3, 1e-3])
    hparams = {"model": {"n_layer": 12}, "optimizer": {"lr": 1e-3, "weight_decay": 0.05, "betas": [0.95, 0.99]},
               "data": {"batch_size": 32}, "trainer": {"accumulate_grad_batches": 4, "precision": "bf16"}}
    (run / "hparams.yaml").write_text(yaml.safe_dump(hparams))
    curve = optlaws.read_curve(log, warmup=10)
    assert (float(curve.run.batch_size), float(curve.run.weight_decay), float(curve.run.momentum)) == (128.0, 0.05, 0.95)
    assert curve.metadata["config"] == str(run / "hparams.yaml")
    # Nested keys of one name that disagree: named in a warning, and the setting left unrecorded.
    hparams["eval"] = {"batch_size": 8}
    (run / "hparams.yaml").write_text(yaml.safe_dump(hparams))
    with pytest.warns(UserWarning, match=r"several values of batch_size \(data.batch_size=32, eval.batch_size=8\)"):
        ambiguous = optlaws.read_curve(log, warmup=10)
    assert ambiguous.run.batch_size is None and float(ambiguous.run.weight_decay) == 0.05
    with warnings.catch_warnings():  # given by the caller: the config's keys are not consulted
        warnings.simplefilter("error")
        given = optlaws.read_curve(log, warmup=10, batch_size=64)
    assert float(given.run.batch_size) == 64.0 and float(given.run.weight_decay) == 0.05
    # A top-level key wins over nested ones; W&B's config.yaml form ({desc, value}) is unwrapped.
    (run / "config.yaml").write_text(yaml.safe_dump({"_wandb": {"desc": None, "value": {"cli_version": "0.16.0"}},
                                                     "batch_size": {"desc": None, "value": 256},
                                                     "optimizer": {"desc": None, "value": {"weight_decay": 0.1}}}))
    wandb_style = optlaws.read_curve(log, warmup=10)
    assert float(wandb_style.run.batch_size) == 256.0 and float(wandb_style.run.weight_decay) == 0.1
    # Hydra keeps its config in the run folder's .hydra/.
    hydra = tmp_path / "outputs" / "2026-11-26" / "12-00-00"
    (hydra / ".hydra").mkdir(parents=True)
    optlaws.write_csv(hydra / "log.csv", [100, 200], [3.0, 2.9], [1e-3, 1e-3])
    (hydra / ".hydra" / "config.yaml").write_text("optim:\n  weight_decay: 0.2\n  momentum: 0.8\n")
    assert float(optlaws.read_curve(hydra / "log.csv", warmup=10).run.momentum) == 0.8
    # Unreadable configs are refused with the file's name.
    (run / "metrics.config.yaml").write_text("batch_size: [unclosed\n")
    with pytest.raises(optlaws.InvalidCurveError, match=r"metrics.config.yaml \(the config beside metrics.csv\): not YAML"):
        optlaws.read_curve(log, warmup=10)
    (run / "metrics.config.yaml").write_text("!!python/object:builtins.object {}\n")
    with pytest.raises(optlaws.InvalidCurveError, match="not YAML that can be read safely"):
        optlaws.read_curve(log, warmup=10)
    (run / "metrics.config.yaml").write_text("- a list\n")
    with pytest.raises(optlaws.InvalidCurveError, match="not a mapping"):
        optlaws.read_curve(log, warmup=10)


def test_tensorboard_scalar_csv_and_byte_order_mark(tmp_path):
    path = tmp_path / "run-train-tag-loss.csv"
    path.write_text("\ufeffWall time,Step,Value\n1700000000.0,100,3.5\n1700000010.0,200,3.2\n", encoding="utf-8")
    curve = optlaws.read_curve(path, schedule="constant:peak=1e-3,total=200")
    np.testing.assert_allclose(curve.loss, [3.5, 3.2])


def test_json_lines_log(tmp_path):
    path = tmp_path / "log.jsonl"
    lines = [{"step": s, "loss": 4 - s / 1000, "learning_rate": 2e-3} for s in range(100, 1001, 100)]
    lines.insert(3, {"step": 350, "grad_norm": 0.5})  # another metric on its own line
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    curve = optlaws.read_curve(path, warmup=100)
    assert len(curve) == 10 and curve.run.total_steps == 1000
    (tmp_path / "bad.jsonl").write_text('{"step": 1, "loss": 2}\n[1, 2]\n')
    with pytest.raises(optlaws.InvalidCurveError, match="line 2 is not a JSON object"):
        optlaws.read_curve(tmp_path / "bad.jsonl")


def test_tensorboard_event_files_written_by_tensorboardx(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    tensorboardX = pytest.importorskip("tensorboardX")
    truth = optlaws.AdamModel(reference_lr=1e-3).replace(loss_inf=2.6, signal_amplitude=0.75,
                                                         signal_exponent=0.46, noise_amplitude=300.0)
    schedule = optlaws.wsd(1e-3, 2000, warmup=100, decay_frac=0.3)
    steps = np.arange(100, 2001, 50)
    with optlaws.float64():
        loss = np.asarray(truth.loss(schedule, steps))
    writer = tensorboardX.SummaryWriter(str(tmp_path / "run1"))
    for step in range(0, 2000, 10):
        writer.add_scalar("train/lr", float(schedule.lr[step]), step)
    for step, value in zip(steps, loss):
        writer.add_scalar("train/loss", float(value), int(step))
    writer.close()
    curve = optlaws.read_curve(tmp_path / "run1")
    assert curve.name == "run1" and len(curve) == steps.size
    np.testing.assert_allclose(curve.loss, loss, rtol=1e-6)  # event files hold float32
    np.testing.assert_allclose(np.asarray(curve.run.lr)[:1990], np.asarray(schedule.lr)[:1990], rtol=1e-5, atol=2e-6)
    assert main(["evaluate", _fitted(tmp_path, truth), str(tmp_path / "run1"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["max_rel_error"] < 2e-3
    with pytest.raises(ValueError, match="event files record each value's step"):
        optlaws.read_curve(tmp_path / "run1", step_col="global_step")


def wandb_offline_run(tmp_path, monkeypatch, schedule, steps, loss):
    """A W&B run folder written by wandb itself, offline: the LR every 10 steps, the training loss
    at ``steps``, a sparser validation loss, and the optimizer settings in ``wandb.config``."""
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(mode="offline", dir=str(tmp_path), project="optlaws-test",
                     config={"batch_size": 64, "weight_decay": 0.05, "beta1": 0.95, "model": {"layers": 2}})
    logged = dict(zip(steps.tolist(), loss.tolist()))
    for step in range(0, schedule.total_steps, 10):
        row = {"lr": float(schedule.lr[step])}
        if step in logged:
            row["train/loss"] = logged[step]
        if step in logged and step % 500 == 0:
            row["val/loss"] = logged[step] + 0.01
        wandb.log(row, step=step)
    run.finish()
    (folder,) = (tmp_path / "wandb").glob("offline-run-*")
    deadline = time.monotonic() + 60
    while not _has_exit_record(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    return folder


def _has_exit_record(folder) -> bool:
    """Whether W&B's service has written the run's exit record, its last: ``run.finish()`` may
    return before it has (seen under load: 139 of 145 history rows in the log)."""
    from wandb.proto import wandb_internal_pb2

    from optlaws._wandb import _records, run_file

    for data in _records(run_file(folder)):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "exit":
            return True
    return False


def test_wandb_run_folder_written_by_wandb(tmp_path, monkeypatch, capsys):
    truth = optlaws.AdamModel(reference_lr=1e-3).replace(loss_inf=2.6, signal_amplitude=0.75,
                                                         signal_exponent=0.46, noise_amplitude=300.0)
    schedule = optlaws.wsd(1e-3, 3000, warmup=100, decay_frac=0.3)
    steps = np.arange(100, 3000, 20)
    with optlaws.float64():  # the settings wandb.config records
        loss = np.asarray(truth.loss(optlaws.Run(schedule, batch_size=64.0, weight_decay=0.05, momentum=0.95), steps))
    folder = wandb_offline_run(tmp_path, monkeypatch, schedule, steps, loss)
    (log,) = folder.glob("run-*.wandb")
    assert log.stat().st_size > 32768  # records cross the log's 32 KiB blocks
    with pytest.warns(UserWarning, match="val/loss"):
        validation = optlaws.read_curve(folder)
    np.testing.assert_array_equal(validation.steps, steps[steps % 500 == 0])
    curve = optlaws.read_curve(folder, loss_col="train/loss")
    assert curve.name == folder.name
    np.testing.assert_array_equal(curve.steps, steps)
    np.testing.assert_allclose(curve.loss, loss, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(curve.run.lr)[:2990], np.asarray(schedule.lr)[:2990], rtol=1e-5, atol=1e-9)
    assert (float(curve.run.batch_size), float(curve.run.weight_decay), float(curve.run.momentum)) == (64.0, 0.05, 0.95)
    assert curve.metadata["config"]["model"] == {"layers": 2}
    assert optlaws.read_wandb(log, loss_col="train/loss", batch_size=128).run.batch_size == 128.0
    assert len(optlaws.read_curve(tmp_path / "wandb" / "latest-run", loss_col="train/loss")) == steps.size
    assert main(["evaluate", _fitted(tmp_path, truth), str(folder), "--loss-col", "train/loss", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["max_rel_error"] < 2e-3

    data = log.read_bytes()
    # A run still being written ends at its last whole record.
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / log.name).write_bytes(data[:40000])
    partial = optlaws.read_curve(tmp_path / "partial", loss_col="train/loss")
    assert 0 < len(partial) < steps.size
    np.testing.assert_array_equal(partial.steps, steps[:len(partial)])
    damaged = tmp_path / "damaged.wandb"
    # The second block opens with a chunk header: CRC-32 (bytes 0-3), length (4-5), type (6).
    for byte, problem in [(32768, "damaged at byte 32768 .checksum"), (32773, "damaged at byte 32768 .* past its 32 KiB block")]:
        damaged.write_bytes(data[:byte] + bytes([data[byte] ^ 0xFF]) + data[byte + 1:])
        with pytest.raises(optlaws.InvalidCurveError, match=problem):
            optlaws.read_curve(damaged)
    (tmp_path / "other.wandb").write_bytes(b"not a run")
    with pytest.raises(optlaws.InvalidCurveError, match="not a W&B run file"):
        optlaws.read_curve(tmp_path / "other.wandb")
    monkeypatch.setitem(sys.modules, "wandb.proto", None)  # as if wandb were not installed
    with pytest.raises(ImportError, match=r"optlaws\[wandb\]"):
        optlaws.read_curve(folder)


def _fitted(tmp_path, model):
    path = tmp_path / "fitted.json"
    optlaws.save_model(path, model)
    return str(path)


@pytest.mark.parametrize("steps, message", [("100,300,200", "not sorted"), ("100,200,200", "duplicate step 200")])
def test_schedule_csv_is_checked_like_a_curve(tmp_path, steps, message):
    path = tmp_path / "schedule.csv"
    path.write_text("step,lr\n" + "".join(f"{s},1e-3\n" for s in steps.split(",")))
    with pytest.raises(optlaws.InvalidCurveError, match=message):
        optlaws.read_schedule_csv(path)


def test_written_numbers_carry_no_float32_noise(tmp_path):
    path = tmp_path / "out.csv"
    lr = np.asarray(optlaws.constant(0.002, 3).lr, dtype=np.float32)
    optlaws.write_csv(path, [1, 2, 3], np.array([2.9571062071505443, 3.0, np.inf]), lr)
    rows = path.read_text().splitlines()
    assert rows[1] == "1,0.002,2.9571062071505443" and rows[3] == "3,0.002,inf"
    # A prediction keeps the schedule's own LRs (float32 here), though it computes in float64.
    warmup = optlaws.constant(0.002, 301, warmup=300)
    optlaws.predict(optlaws.AdamModel(), warmup, steps=[1, 301]).to_csv(path)
    lr_1 = np.asarray(warmup.lr)[1]
    assert str(lr_1) != repr(float(lr_1))  # its float64 text would carry noise
    assert path.read_text().splitlines()[1].startswith(f"1,{str(lr_1)},")
