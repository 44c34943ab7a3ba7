import numpy as np

from optlaws._example import run_example


def test_builtin_example_predicts_held_out_schedules(tmp_path):
    result = run_example(tmp_path, seeds=8, progress=False)
    assert all(m.mean_rel_error < 0.01 for m in result.metrics), result.table()
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
