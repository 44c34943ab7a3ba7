import time

import numpy as np

from optlaws import _progress
from optlaws._example import run_example


def test_status_lines_say_a_long_step_is_alive_when_piped(monkeypatch, capsys):
    """Piped, a long step logs when it starts, at doubling intervals while it runs (after 0.05,
    0.15, 0.35, 0.75 s: not sixteen lines at a fixed 0.05 s) up to the longest, and when it ends."""
    monkeypatch.setattr(_progress, "HEARTBEAT_SECONDS", 0.05)
    with _progress.status("compiling"):
        time.sleep(0.85)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "compiling ..." and lines[-1].startswith("compiling: done in")
    assert 3 <= sum("compiling: running for" in line for line in lines) <= 5, lines
    monkeypatch.setattr(_progress, "HEARTBEAT_LONGEST_SECONDS", 0.1)
    with _progress.status("capped"):
        time.sleep(0.85)
    assert sum("capped: running for" in line for line in capsys.readouterr().err.splitlines()) >= 6
    with _progress.status("quiet", enabled=False):
        pass
    assert capsys.readouterr().err == ""


def test_builtin_example_predicts_held_out_schedules(tmp_path, capsys):
    result = run_example(tmp_path, seeds=8)
    # Piped (not a terminal), each phase says when it starts and ends.
    log = capsys.readouterr().err
    for phase in ("training 2 schedules x 8 seeds", "fitting SGDModel", "predicting 3 held-out",
                  "training the 3 held-out"):
        assert f"{phase}" in log and log.count("done in") >= 4, log
    assert all(m.mean_rel_error < 0.01 for m in result.metrics), result.table()
    assert not result.fit.problems(), result.fit.problems()  # the README's first command runs clean
    # WSD and 8-1-1 end within seed noise of each other; inverse-sqrt is clearly worse.
    predicted = [p.name for p in sorted(result.predictions, key=lambda p: p.final_loss)]
    true = [t.name for t in sorted(result.truth, key=lambda t: t.final_loss)]
    assert predicted[-1] == true[-1] == "inverse_sqrt_4000"
    gap_pred = result.predictions[2].final_loss - result.predictions[0].final_loss
    gap_true = result.truth[2].final_loss - result.truth[0].final_loss
    assert 0.5 < gap_pred / gap_true < 2.0
    for name in ("fitted.json", "example.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert np.isfinite(result.fit.objective)
