"""Ranking the 124M runs of Schaipp et al. at 25k steps from fits to their 15k-step runs.

For each peak LR that has 15k-step runs (5e-4, 1e-3, 2e-3): fit ``AdamModel`` (the default free
parameters; with the structural ones free as well; with the area ceiling free as well; with the
area ceiling and the weight norm's initial value, chosen by a screen on these runs), and the
Multi-Power Law as the closed-form baseline, to that LR's 15k runs plus the constant-LR trunk cut
at step 15000, then rank the LR's 25k runs (WSD with 10-90% linear or 1-sqrt cooldowns, cosine to
10% and to 0) with ``optlaws.rank`` by their loss at the last logged step (24800). Reported:
Spearman rank correlation of predicted vs real loss, regret of the predicted best (its real loss
minus the best real one), top-1 and top-2 hits (the real best is the predicted best / among the
predicted two best), the mean absolute relative error of the predicted losses, and the real
best's ``p_best``. The one-landscape rows do the same
over every peak LR at once (one landscape: the structural parameters free as well, then the area
ceiling with its exponent too, then the area ceiling and the peak-LR floor, then with the weight
norm's equilibrium exponent too, then with the sharpening and the signal's mobility as well,
``transfer_free``; see "transfer"), ranking all 25k runs of all four LRs, and then each LR's 25k
runs among themselves (rows "LR of ..."; their time is the ranking's alone).

    python benchmarks/ranking.py [--no-write]        (about 15 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import optlaws
from _common import data_root, machine, report, schaipp_runs, spearman

LRS = ("0.0005", "0.001", "0.002")
TRUNK_CUT = 15000
STRUCTURAL = ("noise_exponent", "norm_init", "mobility_exponent")
ADAM = optlaws.AdamModel()
CONFIGS = {  # row name -> (model, free parameters; None: the model's own default)
    "default free": (ADAM, optlaws.AdamModel.default_free),
    "+ structural": (ADAM, optlaws.AdamModel.default_free + STRUCTURAL),
    "+ area ceiling": (ADAM, optlaws.AdamModel.default_free + ("area_ceiling",)),
    # chosen after a screen of free sets on these same runs (RESULTS.md, "Ranking"): an upper
    # estimate of what a free set can do here, not an unbiased one
    "+ area ceiling + norm init": (ADAM, optlaws.AdamModel.default_free + ("area_ceiling", "norm_init")),
    # the closed-form baseline the SDE model is measured against
    "Multi-Power Law": (optlaws.MultiPowerLaw(), None),
}
# One landscape for every peak LR (docs/model.md "Across peak learning rates"): row name -> free.
ONE_LANDSCAPE = {
    "all four, one landscape (+ structural)": optlaws.AdamModel.default_free + STRUCTURAL,
    "all four, one landscape (+ structural + area ceiling and its exponent)":
        optlaws.AdamModel.default_free + STRUCTURAL + ("area_ceiling", "ceiling_exponent"),
    "all four, one landscape (+ structural + area ceiling + peak-LR floor)":
        optlaws.AdamModel.default_free + STRUCTURAL + ("area_ceiling", "peak_floor"),
    "all four, one landscape (+ structural + area ceiling + peak-LR floor + norm exponent)":
        optlaws.AdamModel.default_free + STRUCTURAL + ("area_ceiling", "peak_floor", "norm_exponent"),
    "all four, one landscape (transfer_free: + norm exponent + sharpening + signal's mobility)":
        optlaws.AdamModel.transfer_free,
}


def short_name(curve) -> str:
    """``wsd linear 0.2``, ``cos-10``, ... from a run's file name."""
    name = curve.name
    if name.startswith("ann124-"):
        fraction = name.split("_")[0].removeprefix("ann124-")
        shape = "1-sqrt" if "decay_sqrt" in name else "linear"
        return f"wsd {shape} {fraction}"
    return name.split("-124m")[0]


def training_runs(root, lr: str) -> list:
    trunk = schaipp_runs(root, lr, horizon=50000)[0].until(TRUNK_CUT)
    return schaipp_runs(root, lr, horizon=15000) + [trunk]


def cooldown_of(curve) -> tuple[int, str] | None:
    """``(length, shape)`` of a 25k WSD run's cooldown, from its file name (None for cosine)."""
    if not curve.name.startswith("ann124-"):
        return None
    fraction = float(curve.name.split("_")[0].removeprefix("ann124-"))
    return int(round(fraction * curve.run.total_steps)), "sqrt" if "decay_sqrt" in curve.name else "linear"


def plan_check(result, trunk, held) -> dict:
    """``optlaws.plan`` from the constant trunk observed to step 15000, to 25000 steps: the real
    25k WSD runs whose cooldown starts at or after 15000 are continuations it ranks."""
    planned = optlaws.plan(result, trunk.until(TRUNK_CUT), 25000, band=None, progress_bar=False)
    rows = planned.rows()
    position = {(r["length"], r["shape"]): k for k, r in enumerate(rows)}
    reachable = [c for c in held if cooldown_of(c) in position]
    real = np.array([c.loss[-1] for c in reachable])
    planned_rank = np.array([position[cooldown_of(c)] for c in reachable])
    at_last = np.array([optlaws.predict(result, c.run, steps=[int(c.steps[-1])]).loss[0] for c in reachable])
    return {
        "reachable": len(reachable),
        "real best first": bool(np.argmin(planned_rank) == np.argmin(real)),
        "error": float(np.mean(np.abs(at_last * planned.anchor / real - 1))),
        "error unanchored": float(np.mean(np.abs(at_last / real - 1))),
        "anchor": planned.anchor,
        "advice": f"{rows[0]['shape']} from {rows[0]['start']} ({rows[0]['length']} steps), "
                  f"{rows[0]['final_loss']:.4f}",
        "real best": f"{short_name(reachable[int(np.argmin(real))])}, {real.min():.4f}",
    }


def trunk_lrs(curves) -> set:
    return {float(np.max(np.asarray(c.run.lr))) for c in curves if c.run.total_steps == 50000}


def fitted(train, model, free) -> optlaws.FitResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optlaws.FitWarning)
        return optlaws.fit(model, train, free=free, progress=False)


def evaluate(train, held, model, free) -> dict:
    started = time.perf_counter()
    return ranked(fitted(train, model, free), train, held, started)


def ranked(result, train, held, started) -> dict:
    """The ranking row of ``held`` by ``result`` (fitted to ``train``), timed from ``started``."""
    last = [int(c.steps[-1]) for c in held]
    runs = [optlaws.Run(c.run.lr[:s], **c.run.settings()) for c, s in zip(held, last)]
    ranking = optlaws.rank(result, runs, names=[c.name for c in held], progress_bar=False)
    predicted = np.empty(len(held))
    predicted[ranking.index] = ranking.final_loss
    p_best = np.empty(len(held))
    p_best[ranking.index] = ranking.p_best
    real = np.array([c.loss[-1] for c in held])
    best = int(np.argmin(real))
    trunk = next((c for c in train if c.run.total_steps == 50000), None)
    return {
        "plan": plan_check(result, trunk, held) if len(trunk_lrs(train)) == 1 else None,
        "runs": len(held),
        "rank corr": spearman(predicted, real),
        "regret": float(real[ranking.index[0]] - real[best]),
        "top-1": bool(ranking.index[0] == best),
        "top-2": bool(best in ranking.index[:2]),
        "error": float(np.mean(np.abs(predicted / real - 1))),
        "p_best": float(p_best[best]),
        "best": short_name(held[best]),
        "picked": short_name(held[ranking.index[0]]),
        "seconds": time.perf_counter() - started,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    root = data_root()
    rows = {}
    for config, (model, free) in CONFIGS.items():
        for lr in LRS:
            rows[f"{float(lr):g}, {config}"] = evaluate(training_runs(root, lr), schaipp_runs(root, lr, horizon=25000),
                                                        model, free)
            print(lr, config, rows[f"{float(lr):g}, {config}"], flush=True)
    every = [c for lr in LRS for c in training_runs(root, lr)]
    every.append(schaipp_runs(root, "0.0001", horizon=50000)[0].until(TRUNK_CUT))
    for name, free in ONE_LANDSCAPE.items():
        started = time.perf_counter()
        result = fitted(every, ADAM, free)
        rows[name] = ranked(result, every, schaipp_runs(root, horizon=25000), started)
        print(name, rows[name], flush=True)
        # the same landscape, each peak LR's 25k runs ranked among themselves (the per-LR protocol)
        for lr in ("0.0001",) + LRS:
            rows[f"{float(lr):g} of {name}"] = ranked(result, every, schaipp_runs(root, lr, horizon=25000),
                                                     time.perf_counter())
    lines = [
        f"Machine: {machine()}. Fitted on each peak LR's 15k-step runs plus its constant trunk cut at "
        f"{TRUNK_CUT}; ranked: that LR's 25k runs by the loss at step 24800 (`optlaws.rank`, 90% band, 64 "
        "joint draws). 1e-4 has no 15k runs: it enters only the one-landscape rows (its trunk in the fit, its 25k runs "
        "ranked).\n",
        "| peak LR, free parameters | 25k runs | rank corr | regret (nats) | top-1 | top-2 | mean abs error | p_best of the real "
        "best | real best / picked | fit + rank s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['runs']} | {row['rank corr']:.3f} | {row['regret']:.4f} | "
                     f"{'yes' if row['top-1'] else 'no'} | {'yes' if row['top-2'] else 'no'} | {row['error']:.3%} | "
                     f"{row['p_best']:.2f} | {row['best']} / {row['picked']} | {row['seconds']:.0f} |")
    lines.append("")
    per_config = {config: [rows[f"{float(lr):g}, {config}"] for lr in LRS] for config in CONFIGS}
    per_config.update({name: [rows[f"{float(lr):g} of {name}"] for lr in LRS] for name in ONE_LANDSCAPE})
    for config, per_lr in per_config.items():
        lines.append(f"Per peak LR, {config}: mean rank correlation {np.mean([r['rank corr'] for r in per_lr]):.3f}, "
                     f"mean regret {np.mean([r['regret'] for r in per_lr]):.4f}, top-1 "
                     f"{sum(r['top-1'] for r in per_lr)}/{len(per_lr)}, top-2 {sum(r['top-2'] for r in per_lr)}/"
                     f"{len(per_lr)}, mean abs error {np.mean([r['error'] for r in per_lr]):.3%}.")
    lines += [
        "",
        f"`optlaws plan` from each LR's constant trunk observed to step {TRUNK_CUT}, to 25000 steps (same fits). "
        "Real continuations: the 25k WSD runs whose cooldown starts at or after 15000 (10%, 20%, 20% 1-sqrt, 40%). "
        "Errors: their loss at step 24800 predicted from the checkpoint, times the anchor (observed over "
        "predicted loss at 15000) and without it.",
        "",
        "| peak LR, free parameters | real continuations | plan ranks the real best first | mean abs error (anchored / not) | "
        "anchor | plan's advice: cooldown, predicted final loss | real best |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, row in rows.items():
        check = row["plan"]
        if check is None:
            continue
        lines.append(f"| {key} | {check['reachable']} | {'yes' if check['real best first'] else 'no'} | "
                     f"{check['error']:.3%} / {check['error unanchored']:.3%} | {check['anchor']:.4f} | "
                     f"{check['advice']} | {check['real best']} |")
    text = "\n".join(lines)
    report("ranking", text, write=not args.no_write)


if __name__ == "__main__":
    main()
