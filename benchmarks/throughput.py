"""Throughput: expected-loss schedule-steps per second of a batch of schedules, for every model.

    python benchmarks/throughput.py [--batches 1000] [--total 24000] [--no-write]

Every model evaluates the same batch of WSD schedules (a grid of decay fractions, ``--total``
steps each), jitted and vmapped, observed every 128 steps (the grid on which ``rank`` checks
divergence), in float32 and in float64. The reference is the naive MPL loss-drop sum, O(T) per
step, at every step of one schedule (O(T^2), as the MPL paper computes it) and at the same
128-step grid. A schedule-step is one step of one schedule. The section is written to RESULTS.md
as ``throughput-<backend>`` (``throughput-cpu``, ``throughput-gpu``).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import optlaws
from _common import machine, report

EVERY = 128
PEAK = 3e-4
MODELS = {
    "sde-adam (64 modes)": lambda: optlaws.AdamModel(reference_lr=PEAK, loss_inf=2.6).replace(
        signal_amplitude=0.74, signal_exponent=0.46, noise_amplitude=945.0),
    "sde-sgd (64 modes)": lambda: optlaws.SGDModel(reference_lr=PEAK),
    "power": lambda: optlaws.make_model("power"),
    "lra": lambda: optlaws.make_model("lra"),
    "mpl (96 rates)": lambda: optlaws.make_model("mpl"),
    "convex": lambda: optlaws.make_model("convex"),
}
# Laws whose evaluation holds a (steps x rates) array per schedule, tens of GB for 1,000 schedules of
# 24,000 steps: measured at 1,000 schedules at most on a GPU (139 GB), at 64 on a CPU.
HOLDS_STEPS_X_RATES = ("mpl (96 rates)", "convex")


def timed(fn, budget: float = 20.0) -> float:
    """Best of up to three calls after a warm-up call (one call when that took over ``budget`` s)."""
    started = time.perf_counter()
    jax.block_until_ready(fn())
    times = [time.perf_counter() - started] if time.perf_counter() - started > budget else []
    while len(times) < (1 if times else 3):
        started = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - started)
    return min(times)


def grid(total: int) -> np.ndarray:
    return np.unique(np.r_[np.arange(EVERY, total, EVERY), total])


def schedules(batch: int, total: int):
    fracs = jnp.linspace(0.05, 0.5, batch)
    return jax.vmap(lambda f: optlaws.wsd(PEAK, total, decay_frac=f, warmup=total // 10).lr)(fracs)


def model_rate(make, batch: int, total: int, x64: bool) -> tuple[float, str]:
    """Schedule-steps per second of ``batch`` schedules, and the dtype the losses came out in."""
    with jax.enable_x64(x64):
        model, lrs, steps = make(), schedules(batch, total), grid(total)
        evaluate = jax.jit(jax.vmap(lambda lr: model.loss(optlaws.Run(lr), steps)))
        dtype = str(evaluate(lrs).dtype)
        return batch * total / timed(lambda: evaluate(lrs)), dtype


def naive_rate(total: int, x64: bool, steps) -> float:
    """Schedule-steps per second of the direct MPL loss-drop sum of one schedule at ``steps``."""
    with jax.enable_x64(x64):
        law, lr = optlaws.MultiPowerLaw(), schedules(1, total)[0]
        evaluate = jax.jit(lambda lr: law.loss_drop_direct(lr, steps))
        return total / timed(lambda: evaluate(lr), budget=5.0)


def rank_seconds(count: int, total: int) -> tuple[float, float]:
    """Seconds of ``optlaws.rank`` on ``count`` WSD candidates of ``total`` steps with a 90% band
    and p_best from 64 joint draws of a made-up uncertainty (first call, with compilation, and a
    second one)."""
    model = MODELS["sde-adam (64 modes)"]()
    free = ("noise_amplitude", "signal_exponent")
    with jax.enable_x64(True):
        parameters = optlaws.ParameterMap.of(model, free)
        uncertainty = optlaws.ParameterUncertainty(parameters, parameters.to_theta(model),
                                                   np.diag([0.04, 0.0004]), 0.002)
    fracs = np.linspace(0.05, 0.5, count)
    candidates = [optlaws.wsd(PEAK, total, decay_frac=float(f), warmup=total // 10) for f in fracs]
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        optlaws.rank(model, candidates, uncertainty=uncertainty, chunk_size=1024, progress_bar=False)
        seconds.append(time.perf_counter() - started)
    return seconds[0], seconds[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", default="1000", help="comma-separated batch sizes (default 1000)")
    parser.add_argument("--total", type=int, default=24000, help="steps per schedule (default 24000)")
    parser.add_argument("--rank", default="1000x24000",
                        help="COUNTxSTEPS: also time optlaws.rank on COUNT candidates of STEPS steps (default "
                             "1000x24000; '' to skip)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    device = jax.devices()[0]
    lines = [
        f"Machine: {machine()}; device: {device.device_kind}.\n",
        f"WSD schedules of {args.total} steps, loss at every {EVERY}th step, jitted and vmapped; "
        "best of three calls after compilation.\n",
        "| model | schedules | float32 schedule-steps / s | float64 schedule-steps / s |",
        "|---|---|---|---|",
    ]
    rates = {}
    largest = 1000 if jax.default_backend() == "gpu" else 64
    for name, make in MODELS.items():
        sizes = sorted({min(b, largest) for b in batches}) if name in HOLDS_STEPS_X_RATES else batches
        for batch in sizes:
            row = {}
            for x64 in (False, True):
                rate, dtype = model_rate(make, batch, args.total, x64)
                assert dtype == ("float64" if x64 else "float32"), f"{name} computed in {dtype}"
                row[x64] = rate
            rates[name, batch] = row
            lines.append(f"| {name} | {batch} | {row[False]:,.0f} | {row[True]:,.0f} |")
            print(lines[-1], flush=True)
    naive = {}
    for label, steps in (("every step (O(T^2))", np.arange(1, args.total + 1)), (f"every {EVERY}th step", grid(args.total))):
        naive[label] = {x64: naive_rate(args.total, x64, steps) for x64 in (False, True)}
        lines.append(f"| naive MPL sum, {label} | 1 | {naive[label][False]:,.0f} | {naive[label][True]:,.0f} |")
        print(lines[-1], flush=True)
    sde = rates["sde-adam (64 modes)", batches[0]]
    full = naive["every step (O(T^2))"]
    lines += [
        "",
        f"sde-adam at {batches[0]} schedules over the naive MPL sum at every step: "
        f"{sde[False] / full[False]:,.0f}x (float32), {sde[True] / full[True]:,.0f}x (float64); "
        f"over the naive sum on the same {EVERY}-step grid: "
        f"{sde[False] / naive[f'every {EVERY}th step'][False]:,.0f}x (float32).",
    ]
    if args.rank:
        count, total = (int(v) for v in args.rank.split("x"))
        first, second = rank_seconds(count, total)
        lines += ["", f"`optlaws.rank` of {count:,} WSD candidates x {total:,} steps (float64, chunks of 1024, "
                  f"90% band and p_best from 64 joint draws): {first:.1f} s with compilation, {second:.1f} s "
                  f"after ({count * total * 65 / second:,.0f} schedule-steps/s counting the draws)."]
    text = "\n".join(lines)
    report(f"throughput-{jax.default_backend()}", text, write=not args.no_write)


if __name__ == "__main__":
    main()
