"""The product claim on real curves: fit two cheap runs, predict seven others."""

import numpy as np
import pytest

import optlaws

pytestmark = pytest.mark.slow

TRAIN = ("constant_24000", "cosine_24000")
# Published Multi-Power Law held-out mean relative error (fitted on one more curve).
BAR = {"25M": 0.0011, "100M": 0.0014}


@pytest.mark.parametrize("size", ["25M", "100M"])
def test_adam_sde_beats_multi_power_law_on_held_out_curves(size, data_root):
    curves = {n: optlaws.load_mpl(size, n, root=data_root) for n in optlaws.MPL_CURVES}
    result = optlaws.fit(optlaws.AdamModel(), [curves[n] for n in TRAIN], progress=False)
    held_out = [c for n, c in curves.items() if n not in TRAIN]
    metrics = optlaws.evaluate(result.model, held_out)
    mean = np.mean([m.mean_rel_error for m in metrics])
    worst = np.mean([m.max_rel_error for m in metrics])
    assert mean <= BAR[size], f"held-out mean relative error {mean:.4%}"
    assert worst <= 0.006, f"mean worst-point error {worst:.4%}"
    assert min(m.r2 for m in metrics) > 0.99
