"""Calibration of prediction bands: how often does the 90% band hold the held-out final loss?

Two protocols, each fitted once; both covariance estimates come from the same fit
(``FitResult.with_covariance``), so they differ only in the band:

- MPL 2-curve (25M and 100M): fit ``AdamModel`` on constant_24000 + cosine_24000, band the final
  loss of each of the seven other curves; the 3-curve protocol adds wsdcon_9 to the fit;
- 124M runs of Schaipp et al., per peak LR (5e-4, 1e-3, 2e-3; 1e-4 has no 15k runs): fit on the
  15k-step runs (validation loss from step 1000), band the last observed loss of every 25k run.

Reports the share of held-out final losses inside the band, and the median band half-width
relative to the prediction, for bands of the parameters alone (covariance ``"laplace"``,
``"newey-west"``, ``"curves"``) and for the default band, which adds the model discrepancy
(leave-one-curve-out on the 124M runs and the 3-curve MPL fits; on the 2-curve MPL fits, where
leaving a curve out leaves the model undetermined, each curve's later half left out). Writes the
RESULTS.md section ``uncertainty``.

    python benchmarks/uncertainty.py [--no-write]      (about 2 minutes)
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

import optlaws
from _common import data_root, machine, report, schaipp_runs

LEVEL = 0.9
# Bands of the parameters alone, by covariance estimate, then the default band.
METHODS = ("laplace", "newey-west", "curves", "default")
# The MPL paper's protocols: fit on two curves (the discrepancy is then the prior) or three (it is
# estimated by leaving each out).
TRAIN_MPL = {"2": ("constant_24000", "cosine_24000"), "3": ("constant_24000", "cosine_24000", "wsdcon_9")}


def coverage(result, held):
    """Per held-out curve and method: (inside the band, half-width / prediction)."""
    rows = {method: [] for method in METHODS}
    for method in METHODS:
        fitted = result if method == "default" else dataclasses.replace(result.with_covariance(method), discrepancy=0.0)
        for curve in held:
            step = int(curve.steps[-1])
            pred = optlaws.predict(fitted, curve.run, steps=[step], band=LEVEL)
            inside = pred.loss_low[0] <= curve.loss[-1] <= pred.loss_high[0]
            rows[method].append((bool(inside), (pred.loss_high[0] - pred.loss_low[0]) / 2 / pred.loss[0]))
    return rows


def discrepancy(result):
    return f"{result.discrepancy:.3%} ({result.discrepancy_source})"


def mpl(root, size, protocol):
    curves = {n: optlaws.load_mpl(size, n, root=root) for n in optlaws.MPL_CURVES}
    train = TRAIN_MPL[protocol]
    result = optlaws.fit(optlaws.AdamModel(), [curves[n] for n in train], progress=False)
    return coverage(result, [c for n, c in curves.items() if n not in train]), discrepancy(result)


def schaipp(root, lr):
    result = optlaws.fit(optlaws.AdamModel(), schaipp_runs(root, lr, horizon=15000), progress=False)
    return coverage(result, schaipp_runs(root, lr, horizon=25000)), discrepancy(result)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    root = data_root()
    cells = {}
    for protocol in TRAIN_MPL:
        for size in ("25M", "100M"):
            started = time.perf_counter()
            cells[f"MPL {protocol}-curve, {size}"] = mpl(root, size, protocol)
            print(f"MPL {protocol}-curve {size}: {time.perf_counter() - started:.0f} s", flush=True)
    for lr in ("0.0005", "0.001", "0.002"):
        started = time.perf_counter()
        cells[f"124M, peak LR {lr}, 15k -> 25k"] = schaipp(root, lr)
        print(f"124M {lr}: {time.perf_counter() - started:.0f} s", flush=True)
    lines = [
        f"Machine: {machine()}. Share of held-out final losses inside the {LEVEL:.0%} band "
        f"(target {LEVEL:.0%}; the bar is 80-97%), and the median band half-width relative to the "
        "prediction. Columns laplace, newey-west, curves: bands of the parameters alone by "
        "covariance estimate; default: curves plus the model discrepancy (its value and source in "
        "the last column).\n",
        "| protocol | held-out | " + " | ".join(f"{m}: inside | {m}: half-width" for m in METHODS)
        + " | discrepancy |",
        "|---|---|" + "---|---|" * len(METHODS) + "---|",
    ]
    for name, (rows, estimate) in cells.items():
        cols = [f"{sum(r[0] for r in rows[m])}/{len(rows[m])} | {np.median([r[1] for r in rows[m]]):.3%}"
                for m in METHODS]
        lines.append(f"| {name} | {len(rows[METHODS[0]])} | " + " | ".join(cols) + f" | {estimate} |")
    # the bar is per benchmark: MPL's protocols together, the 124M runs together, then all
    for total, prefix in (("all MPL", "MPL"), ("all 124M", "124M"), ("all", "")):
        pooled = {m: [r for name, (rows, _) in cells.items() if name.startswith(prefix) for r in rows[m]]
                  for m in METHODS}
        cols = [f"**{np.mean([r[0] for r in pooled[m]]):.0%}** ({sum(r[0] for r in pooled[m])}/{len(pooled[m])}) | "
                f"{np.median([r[1] for r in pooled[m]]):.3%}" for m in METHODS]
        lines.append(f"| {total} | {len(pooled[METHODS[0]])} | " + " | ".join(cols) + " | |")
    text = "\n".join(lines)
    report("uncertainty", text, write=not args.no_write)


if __name__ == "__main__":
    main()
