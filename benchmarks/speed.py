"""Speed: time to fit, and schedule-steps per second of batched expected-loss evaluation.

    python benchmarks/speed.py [--no-write]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

import optlaws
from _common import data_root, machine, report, schaipp_runs


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def fit_times(curves, free=None):
    """Seconds of a first fit (with compilation) and of a second fit of the same shape (cached)."""
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        optlaws.fit(optlaws.AdamModel(), curves, free=free, progress=False)
        seconds.append(time.perf_counter() - started)
    return seconds


def throughput(model, batch, total=24000, every=128):
    """Schedule-steps per second for ``batch`` WSD schedules (a decay-fraction grid), jitted and vmapped."""
    fracs = jnp.linspace(0.05, 0.5, batch)
    steps = np.arange(every, total + 1, every)
    with optlaws.float64():
        lrs = jax.vmap(lambda f: optlaws.wsd(3e-4, total, decay_frac=f, warmup=2160).lr)(fracs)
        run = jax.jit(jax.vmap(lambda lr: model.loss(lr, steps)))
        run(lrs).block_until_ready()
        seconds = best_of(lambda: run(lrs).block_until_ready())
    return batch * total / seconds, seconds


def loss_drop_timing(total=24000):
    """Seconds for MPL's loss-drop term of one schedule: the O(T) recurrences vs the direct O(T^2) sum."""
    schedule = optlaws.cosine(3e-4, total, warmup=2160, final=3e-5)
    rows = []
    with optlaws.float64():
        lr = jnp.asarray(schedule.lr)
        for num_rates in (96, 256):
            law = optlaws.MultiPowerLaw(num_rates=num_rates)
            fast = jax.jit(lambda lr, law=law: law.loss_drop_sum(lr))
            fast(lr).block_until_ready()
            rows.append((f"recurrences, {num_rates} rates", "all", best_of(lambda: fast(lr).block_until_ready())))
        for every in (100, 1):
            steps = np.arange(every, total + 1, every)
            direct = jax.jit(lambda lr: law.loss_drop_direct(lr, steps))
            direct(lr).block_until_ready()
            rows.append(("direct double sum", len(steps), best_of(lambda: direct(lr).block_until_ready(), repeats=1)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    root = data_root()
    two = [optlaws.load_mpl("100M", n, root=root) for n in ("constant_24000", "cosine_24000")]
    mpl = fit_times(two)
    joint = schaipp_runs(root)
    schaipp = fit_times(joint, free=optlaws.AdamModel.default_free)
    sweep = fit_times(joint)  # fit's own choice for runs at several peak LRs: AdamModel.sweep_free
    transfer = fit_times(joint, free=optlaws.AdamModel.transfer_free)
    lines = [
        f"Machine: {machine()}.\n",
        "Fit of `AdamModel` (8 starts, float64), first call with compilation / a second call of the same shape:\n",
        "| curves | points | first fit s | second fit s |",
        "|---|---|---|---|",
        f"| MPL 100M constant_24000 + cosine_24000 | {sum(map(len, two))} | {mpl[0]:.1f} | {mpl[1]:.1f} |",
        f"| all 124M runs, every peak LR (one landscape), `default_free` ({len(optlaws.AdamModel.default_free)}) | "
        f"{sum(map(len, joint))} ({len(joint)} curves) | {schaipp[0]:.1f} | {schaipp[1]:.1f} |",
        f"| the same, `sweep_free` ({len(optlaws.AdamModel.sweep_free)}: fit's default for runs at several peak "
        f"LRs) | {sum(map(len, joint))} ({len(joint)} curves) | {sweep[0]:.1f} | {sweep[1]:.1f} |",
        f"| the same, `transfer_free` ({len(optlaws.AdamModel.transfer_free)}: opt-in, `--free transfer`) | "
        f"{sum(map(len, joint))} ({len(joint)} curves) | {transfer[0]:.1f} | {transfer[1]:.1f} |",
        "",
        "| model | block | schedules in batch | seconds per batch | schedule-steps / s |",
        "|---|---|---|---|---|",
    ]
    model = optlaws.AdamModel(reference_lr=3e-4, loss_inf=2.6).replace(
        signal_amplitude=0.74, signal_exponent=0.46, noise_amplitude=945.0)
    for block in (16, 1):
        m = dataclasses.replace(model, block=block)
        for batch in ((1, 64, 512) if block == 16 else (1, 64)):
            rate, sec = throughput(m, batch)
            lines.append(f"| AdamModel (64 modes) | {block} | {batch} | {sec:.3f} | {rate:,.0f} |")
            print(lines[-1], flush=True)
    lines += [
        "",
        "Closed-form laws, the same batched evaluation (float64):",
        "",
        "| law | schedules in batch | seconds per batch | schedule-steps / s |",
        "|---|---|---|---|",
    ]
    for name in ("power", "lra", "mpl", "convex"):
        for batch in (1, 64):
            rate, sec = throughput(optlaws.make_model(name), batch)
            lines.append(f"| {name} | {batch} | {sec:.3f} | {rate:,.0f} |")
            print(lines[-1], flush=True)
    lines += [
        "",
        "MPL loss-drop term LD of one 24000-step cosine schedule:",
        "",
        "| method | steps evaluated | seconds |",
        "|---|---|---|",
    ]
    for method, evaluated, sec in loss_drop_timing():
        lines.append(f"| {method} | {evaluated} | {sec:.3f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    report("speed", text, write=not args.no_write)


if __name__ == "__main__":
    main()
