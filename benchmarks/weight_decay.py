"""Does one landscape predict a weight decay it was not fitted on? A real AdamW sweep, trained with optax.

The sweep: an MLP (two hidden layers of width 256, each matmul followed by a LayerNorm without
gain or bias, so those weights are scale-invariant, then ReLU) regresses a random tanh teacher's
8 outputs plus label noise (std 0.5) on Gaussian inputs, fresh batches of 32, by AdamW (b1 0.9,
b2 0.999, decoupled weight decay ``lr * lambda``) for 4,000 steps at peak LR 3e-3, under three
schedules (constant, cosine to 0, WSD with a 30% linear cooldown; warmup 100) and four weight
decays (0, 0.1, 0.3, 1): 12 runs, one vmapped program, fixed seeds. The loss is measured on
4,096 held-aside samples every 40 steps.

For each weight decay, ``AdamModel`` is fitted to the other three's curves (9 runs, free:
``default_free`` and ``norm_init``) and predicts the held-out one's three runs. Also reported:
the hidden weights' RMS at the end of the constant runs against the equilibrium the model
assumes, ``sqrt(lr / lambda)`` up to a constant (AdamW's). Writes the RESULTS.md section
``weight-decay``.

    python benchmarks/weight_decay.py [--no-write]      (about 5 minutes)
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optlaws
from _common import machine, mlp, mlp_init, report

INPUTS, WIDTH, OUTPUTS, BATCH, STEPS, EVERY, LABEL_NOISE, PEAK, WARMUP = 32, 256, 8, 32, 4000, 40, 0.5, 3e-3, 100
WEIGHT_DECAYS = (0.0, 0.1, 0.3, 1.0)
SCHEDULES = {
    "constant": optlaws.constant(PEAK, STEPS, warmup=WARMUP),
    "cosine": optlaws.cosine(PEAK, STEPS, warmup=WARMUP, final=0.0),
    "wsd": optlaws.wsd(PEAK, STEPS, warmup=WARMUP, decay_frac=0.3, final=0.0),
}


def _student(layers, x):
    for w, _ in layers[:-1]:
        x = jax.nn.relu(jax.nn.standardize(x @ w, epsilon=1e-6))  # LayerNorm without gain or bias: scale-invariant in w
    w, b = layers[-1]
    return x @ w + b


TEACHER = mlp_init(jax.random.PRNGKey(1), [INPUTS, 128, 128, OUTPUTS], scale=1.5)
STUDENT = mlp_init(jax.random.PRNGKey(2), [INPUTS, WIDTH, WIDTH, OUTPUTS])


def _teacher(x):
    return mlp(TEACHER, x, jnp.tanh)


X_EVAL = jax.random.normal(jax.random.PRNGKey(9), (4096, INPUTS))
Y_EVAL = _teacher(X_EVAL)


def _loss(layers, x, y):
    return 0.5 * jnp.mean(jnp.sum((_student(layers, x) - y) ** 2, -1))


def _batch(t):
    key = jax.random.fold_in(jax.random.PRNGKey(3), t)
    x = jax.random.normal(key, (BATCH, INPUTS))
    return x, _teacher(x) + LABEL_NOISE * jax.random.normal(jax.random.fold_in(key, 1), (BATCH, OUTPUTS))


def _train(lr, weight_decay):
    """Population loss every ``EVERY`` steps, and the last hidden layer's weight RMS at the end."""
    optimizer = optax.adamw(lambda t: lr[t], b1=0.9, b2=0.999, weight_decay=weight_decay)

    def step(carry, t):
        params, state = carry
        updates, state = optimizer.update(jax.grad(_loss)(params, *_batch(t)), state, params)
        return (optax.apply_updates(params, updates), state), None

    def block(carry, t):
        carry, _ = jax.lax.scan(step, carry, t * EVERY + jnp.arange(EVERY))
        return carry, _loss(carry[0], X_EVAL, Y_EVAL) + 0.5 * OUTPUTS * LABEL_NOISE**2

    (params, _), losses = jax.lax.scan(block, (STUDENT, optimizer.init(STUDENT)), jnp.arange(STEPS // EVERY))
    return losses, jnp.sqrt(jnp.mean(params[1][0] ** 2))


def sweep():
    """The 12 runs as loss curves, by weight decay, and the final weight RMS of each constant run."""
    grid = [(name, decay) for name in SCHEDULES for decay in WEIGHT_DECAYS]
    lrs = jnp.stack([jnp.asarray(SCHEDULES[name].lr) for name, _ in grid])
    losses, norms = jax.jit(jax.vmap(_train))(lrs, jnp.asarray([decay for _, decay in grid]))
    steps = np.arange(EVERY, STEPS + 1, EVERY)
    curves = {decay: [] for decay in WEIGHT_DECAYS}
    constant_norms = {}
    for (name, decay), loss, norm in zip(grid, np.asarray(losses), np.asarray(norms)):
        run = optlaws.Run(SCHEDULES[name], batch_size=float(BATCH), weight_decay=decay, momentum=0.9)
        curves[decay].append(optlaws.LossCurve(steps, loss, run, name=f"{name}_wd{decay}"))
        if name == "constant":
            constant_norms[decay] = float(norm)
    return curves, constant_norms


def _error(model, curves):
    return float(np.mean([metrics.mean_rel_error for metrics in optlaws.evaluate(model, curves)]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md as it is")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    start = time.perf_counter()
    curves, norms = sweep()
    train_s = time.perf_counter() - start
    free = optlaws.AdamModel.default_free + ("norm_init",)
    rows, held_errors, fit_errors = [], [], []
    for held in WEIGHT_DECAYS:
        train = [c for decay in WEIGHT_DECAYS if decay != held for c in curves[decay]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optlaws.FitWarning)
            result = optlaws.fit(optlaws.AdamModel(), train, free=free, progress=False)
        fitted, predicted = _error(result.model, train), _error(result.model, curves[held])
        fit_errors.append(fitted)
        held_errors.append(predicted)
        rows.append(f"| {held:g} | {fitted:.2%} | **{predicted:.2%}** | {result.values['norm_init']:.3g} |")
    measured = [norms[d] / norms[0.1] for d in WEIGHT_DECAYS[1:]]
    text = "\n".join([
        f"Machine: {machine()}. Real sweep: {3 * len(WEIGHT_DECAYS)} AdamW runs of an MLP with scale-invariant "
        f"hidden weights ({train_s:.0f} s to train), {STEPS} steps, peak LR {PEAK:g}, weight decays "
        f"{', '.join(f'{d:g}' for d in WEIGHT_DECAYS)}; `AdamModel` fitted to three weight decays' runs "
        "predicts the fourth's. Errors: mean relative error per run, averaged.",
        "",
        "| held-out weight decay | error on the fitted runs | error on the held-out runs | fitted norm_init |",
        "|---|---|---|---|",
        *rows,
        f"| **mean** | {np.mean(fit_errors):.2%} | **{np.mean(held_errors):.2%}** | |",
        "",
        "Hidden weight RMS at the end of the constant runs, relative to weight decay 0.1: "
        + ", ".join(f"{d:g}: {m:.2f} (AdamW's equilibrium sqrt(0.1 / lambda): {np.sqrt(0.1 / d):.2f})"
                    for d, m in zip(WEIGHT_DECAYS[1:], measured))
        + f"; without weight decay {norms[0.0] / norms[0.1]:.2f} (still growing).",
    ])
    report("weight-decay", text, write=not args.no_write)


if __name__ == "__main__":
    main()
