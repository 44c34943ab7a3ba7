"""One landscape for every peak LR: the 124M sweep of Schaipp et al. (peak LR 1e-4 to 2e-3).

For each model configuration (``CONFIGS``):

- **joint fit**: one ``AdamModel`` fitted to all 60 runs (validation loss from step 1000); mean
  relative error per peak LR;
- **leave one LR out**: fitted to the runs of three peak LRs, the fourth LR's runs predicted;
- **15k -> 25k**: fitted to the 15k-step runs (all peak LRs that have them: 5e-4, 1e-3, 2e-3),
  every 25k-step run's last observed loss predicted: mean error, Spearman rank correlation, and
  the regret of the predicted best run (its real final loss minus the best real one);
- **LR***: the optimal peak LR of WSD with a 20% linear cooldown to 0 (warmup 300) at 15k and 25k,
  predicted by each fit (``model_optima``) and measured (vertex of a quadratic in log LR through
  the real runs, ``sweep_optima``).

Divergence is benchmarked in ``benchmarks/divergence.py``. Writes the RESULTS.md section
``transfer``.

    python benchmarks/transfer.py [--configs ...] [--no-write]     (about 15 minutes per config)
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import optlaws
from _common import data_root, machine, report, schaipp_runs, spearman

LRS = ("0.0001", "0.0005", "0.001", "0.002")
FAMILY = "wsd:warmup=300,decay_frac=0.2,shape=linear,final=0"
SETTINGS = dict(batch_size=100.0, weight_decay=0.1, momentum=0.9)
STRUCTURAL = ("noise_exponent", "norm_init", "mobility_exponent")
# name -> free parameters of AdamModel (a mechanism that is off starts where initial_guess puts it)
CONFIGS = {
    "default free": optlaws.AdamModel.default_free,
    "+ structural": optlaws.AdamModel.default_free + STRUCTURAL,
    "+ structural + area ceiling": optlaws.AdamModel.default_free + STRUCTURAL + ("area_ceiling",),
    "+ structural + area ceiling and its exponent": optlaws.AdamModel.default_free + STRUCTURAL + (
        "area_ceiling", "ceiling_exponent"),
    "+ structural + area ceiling + peak-LR floor": optlaws.AdamModel.default_free + STRUCTURAL + (
        "area_ceiling", "peak_floor"),
    "+ structural + area ceiling + peak-LR floor + norm exponent": optlaws.AdamModel.default_free + STRUCTURAL + (
        "area_ceiling", "peak_floor", "norm_exponent"),
    "transfer_free: + norm exponent + sharpening + signal's mobility": optlaws.AdamModel.transfer_free,
}


def fit(curves, free):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optlaws.FitWarning)
        return optlaws.fit(optlaws.AdamModel(), curves, free=free, progress=False)


def mean_error(model, curves):
    return float(np.mean([np.mean(np.abs(optlaws.predict(model, c.run, steps=c.steps).loss / c.loss - 1))
                          for c in curves]))


def measured_optima(root):
    rows = []
    for horizon in (15000, 25000):
        for lr in LRS:
            for curve in schaipp_runs(root, lr, horizon=horizon, since=0):
                if "ann124-0.2_" in curve.name and "decay_linear" in curve.name:
                    rows.append((horizon, float(lr), float(curve.loss[-1])))
    horizons, lrs, losses = np.array(rows).T
    return {o.horizon: o for o in optlaws.sweep_optima(horizons, lrs, losses)}


def evaluate(root, name, free):
    by_lr = {lr: schaipp_runs(root, lr) for lr in LRS}
    started = time.perf_counter()
    joint = fit([c for lr in LRS for c in by_lr[lr]], free)
    row = {"joint": {lr: mean_error(joint.model, by_lr[lr]) for lr in LRS}, "joint s": time.perf_counter() - started}
    row["leave out"] = {}
    for out in LRS:
        rest = fit([c for lr in LRS if lr != out for c in by_lr[lr]], free)
        row["leave out"][out] = mean_error(rest.model, by_lr[out])
        print(f"{name}: leave out {out}: {row['leave out'][out]:.3%}", flush=True)
    short = fit(schaipp_runs(root, horizon=15000), free)
    long = schaipp_runs(root, horizon=25000)
    predicted = np.array([optlaws.predict(short.model, c.run, steps=[int(c.steps[-1])]).loss[0] for c in long])
    real = np.array([c.loss[-1] for c in long])
    row["25k final error"] = float(np.mean(np.abs(predicted / real - 1)))
    row["25k rank corr"] = spearman(predicted, real)
    row["25k regret"] = float(real[np.argmin(predicted)] - real.min())
    row["LR*"] = {}
    for label, result in (("joint", joint), ("15k", short)):
        optima = optlaws.model_optima(result.model, FAMILY, [15000, 25000], **SETTINGS)
        row["LR*"][label] = {o.horizon: o.lr_opt for o in optima}
    print(name, row, flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    root = data_root()
    measured = measured_optima(root)
    rows = {name: evaluate(root, name, CONFIGS[name]) for name in args.configs}
    lines = [
        f"Machine: {machine()}. 124M runs of Schaipp et al., validation loss from step 1000. Errors are mean "
        "relative errors per run, averaged per peak LR. LR*: WSD, 20% linear cooldown to 0, warmup 300; "
        f"measured {measured[15000].lr_opt:.3g} ({measured[15000].lr_low:.3g}-{measured[15000].lr_high:.3g}) at 15k "
        f"and {measured[25000].lr_opt:.3g} ({measured[25000].lr_low:.3g}-{measured[25000].lr_high:.3g}) at 25k "
        "(90% intervals, vertex of a quadratic in log LR through the real runs).\n",
        "| free parameters | joint fit: 1e-4 / 5e-4 / 1e-3 / 2e-3 | leave that LR out | 15k -> 25k: final err | "
        "rank corr | regret | LR* 15k / 25k (joint fit) | LR* 15k / 25k (15k fit) | joint fit s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        joint = " / ".join(f"{row['joint'][lr]:.2%}" for lr in LRS)
        out = " / ".join(f"{row['leave out'][lr]:.2%}" for lr in LRS)
        stars = [" / ".join(f"{row['LR*'][k][h]:.3g}" for h in (15000, 25000)) for k in ("joint", "15k")]
        lines.append(f"| {name} | {joint} | {out} | {row['25k final error']:.2%} | {row['25k rank corr']:.2f} | "
                     f"{row['25k regret']:.4f} | {stars[0]} | {stars[1]} | {row['joint s']:.0f} |")
    text = "\n".join(lines)
    report("transfer", text, write=not args.no_write)


if __name__ == "__main__":
    main()
