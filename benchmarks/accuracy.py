"""Accuracy on real curves: the Multi-Power Law protocol on the 25M and 100M runs.

For each model size and model: fit on constant_24000 + cosine_24000 (the 2-curve protocol) or
on those plus wsdcon_9 (the 3-curve protocol of the MPL paper), predict every other curve.
Reports per curve R^2, mean / worst relative error, final-loss error and the ratio of predicted
to true final-loss gap between each held-out schedule and cosine_24000 (both at the held-out
curve's last step), then the means. Writes RESULTS.md sections and a figure.

    python benchmarks/accuracy.py [--models sde-adam sde-sgd] [--sizes 25M 100M] [--protocols 2 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import optlaws
from _common import HERE, data_root, machine, report

# The MPL paper's held-out figures on the 3-curve protocol (mean R2, mean rel err, mean worst err)
# and the fitted parameters published with its code (github.com/thu-yao-01-luo/MultiPowerLaw).
PUBLISHED_MPL_ERRORS = {"25M": (0.9988, 0.00110, 0.0041), "100M": (0.9983, 0.00142, 0.0058)}
PUBLISHED_MPL_PARAMETERS = {
    "25M": dict(loss_inf=3.04045406, amplitude=0.52468604, exponent=0.50786857, drop_amplitude=363.78751622,
                drop_scale=2.06560812, drop_exponent=0.58279013, lr_exponent=0.64142257),
    "100M": dict(loss_inf=2.6514477, amplitude=0.60115152, exponent=0.45295811, drop_amplitude=437.9464276,
                 drop_scale=2.13245612, drop_exponent=0.59785199, lr_exponent=0.65523644),
}
PROTOCOLS = {
    "2": ("constant_24000", "cosine_24000"),
    "3": ("constant_24000", "cosine_24000", "wsdcon_9"),
}


def gap_ratio(model, curve, cosine):
    """Predicted / true (cosine - curve) loss gap at the held-out curve's last step within cosine's run."""
    step = int(min(curve.steps[-1], cosine.steps[-1]))
    true_curve = np.interp(step, curve.steps, curve.loss)
    true_cos = np.interp(step, cosine.steps, cosine.loss)
    pred = optlaws.predict(model, curve.run, steps=[step]).final_loss
    pred_cos = optlaws.predict(model, cosine.run, steps=[step]).final_loss
    true_gap = true_cos - true_curve
    return (pred_cos - pred) / true_gap if abs(true_gap) > 1e-3 else float("nan")


def score(model, curves, held_names):
    """Per-curve metrics of ``model`` on the held-out curves, and the prediction time per curve."""
    held = [curves[n] for n in held_names]
    started = time.perf_counter()
    metrics = optlaws.evaluate(model, held)
    predict_seconds = (time.perf_counter() - started) / len(held)
    rows = [dict(curve=c.name, r2=m.r2, mean=m.mean_rel_error, worst=m.max_rel_error, final=m.final_rel_error,
                 gap=gap_ratio(model, c, curves["cosine_24000"]))
            for c, m in zip(held, metrics)]
    return rows, predict_seconds


def run(model_name, size, protocol, root):
    curves = {n: optlaws.load_mpl(size, n, root=root) for n in optlaws.MPL_CURVES}
    started = time.perf_counter()
    result = optlaws.fit(optlaws.make_model(model_name), [curves[n] for n in PROTOCOLS[protocol]], progress=False)
    fit_seconds = time.perf_counter() - started
    rows, predict_seconds = score(result.model, curves, [n for n in curves if n not in PROTOCOLS[protocol]])
    return result, rows, fit_seconds, predict_seconds


def published_mpl(size, root):
    """The MPL paper's own fitted parameters, evaluated here on its 3-curve protocol's held-out curves."""
    curves = {n: optlaws.load_mpl(size, n, root=root) for n in optlaws.MPL_CURVES}
    with optlaws.float64():  # keep the published digits
        model = optlaws.MultiPowerLaw(num_rates=256, **PUBLISHED_MPL_PARAMETERS[size])
    rows, _ = score(model, curves, [n for n in curves if n not in PROTOCOLS["3"]])
    return rows


def summarize(rows):
    gaps = np.array([r["gap"] for r in rows], dtype=float)
    gaps = gaps[np.isfinite(gaps)]
    return dict(
        r2=np.mean([r["r2"] for r in rows]),
        mean=np.mean([r["mean"] for r in rows]),
        worst=np.mean([r["worst"] for r in rows]),
        max=np.max([r["worst"] for r in rows]),
        final=np.mean([r["final"] for r in rows]),
        gap=np.median(gaps) if gaps.size else np.nan,
        gap_err=np.mean(np.abs(gaps - 1)) if gaps.size else np.nan,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(optlaws.MODELS))
    parser.add_argument("--sizes", nargs="+", default=["25M", "100M"])
    parser.add_argument("--protocols", nargs="+", default=["2", "3"])
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md and the figures alone")
    args = parser.parse_args()
    root = data_root()

    summary_lines = [
        "| protocol | size | model | mean R2 | mean rel err | mean worst err | max err | mean final err | gap ratio (median) | mean abs(gap ratio - 1) | fit s | predict s/curve |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    detail_lines = []
    figures = {}
    for protocol in args.protocols:
        for size in args.sizes:
            for model_name in args.models:
                result, rows, fit_s, pred_s = run(model_name, size, protocol, root)
                s = summarize(rows)
                summary_lines.append(
                    f"| {protocol}-curve | {size} | {model_name} | {s['r2']:.4f} | {s['mean']:.3%} | {s['worst']:.3%} | "
                    f"{s['max']:.3%} | {s['final']:.3%} | {s['gap']:.2f} | {s['gap_err']:.2f} | {fit_s:.1f} | {pred_s:.3f} |"
                )
                print(summary_lines[-1], flush=True)
                detail_lines += [
                    f"\n**{model_name}, {size}, {protocol}-curve protocol**\n",
                    "| held-out curve | R2 | mean rel err | worst rel err | final rel err | gap ratio vs cosine_24000 |",
                    "|---|---|---|---|---|---|",
                ]
                for r in rows:
                    detail_lines.append(
                        f"| {r['curve']} | {r['r2']:.4f} | {r['mean']:.3%} | {r['worst']:.3%} | {r['final']:.3%} | {r['gap']:.2f} |"
                    )
                if protocol == "2" and not args.no_write:
                    figures.setdefault(size, []).append((model_name, result.model))
        if protocol == "3":
            for size in args.sizes:
                s = summarize(published_mpl(size, root))
                summary_lines.append(
                    f"| 3-curve | {size} | mpl, the paper's parameters | {s['r2']:.4f} | {s['mean']:.3%} | {s['worst']:.3%} | "
                    f"{s['max']:.3%} | {s['final']:.3%} | {s['gap']:.2f} | {s['gap_err']:.2f} | | |"
                )
                r2, mean, worst = PUBLISHED_MPL_ERRORS[size]
                summary_lines.append(
                    f"| 3-curve | {size} | MPL paper (published figures) | {r2:.4f} | {mean:.3%} | {worst:.3%} | | | | | | |"
                )
    for size, fitted in figures.items():
        curves = [optlaws.load_mpl(size, n, root=root) for n in optlaws.MPL_CURVES]
        for model_name, model in fitted:
            preds = [optlaws.predict(model, c.run, name=c.name) for c in curves]
            optlaws.plot_curves(preds, curves, path=HERE / f"accuracy_{size}_{model_name}.png",
                                title=f"{model_name} fitted on constant_24000 + cosine_24000 ({size})")
    header = (
        f"Machine: {machine()}. Fitted curves are excluded from every metric. 'mean worst err' is the mean "
        "over held-out curves of each curve's worst point (the MPL paper's WorstE); 'max err' the single worst "
        "point. Gap ratio: predicted / true final-loss gap between a held-out schedule and cosine_24000 "
        "(1 is perfect). Fit and predict times include compilation. Figures: `benchmarks/accuracy_{size}_{model}.png`.\n"
    )
    text = header + "\n" + "\n".join(summary_lines) + "\n\n<details><summary>Per-curve results</summary>\n" + \
        "\n".join(detail_lines) + "\n\n</details>"
    report("accuracy", text, write=not args.no_write)


if __name__ == "__main__":
    main()
