"""Rank many candidate runs by predicted final loss, with bands and the probability of being best."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._precision import computing_in
from ._predict import divergence_checks, extrapolations, first_blow_up, model_and_uncertainty
from ._progress import progress
from ._run import Run, as_run, stack_runs
from ._schedules import Schedule
from ._serialize import strict_json
from ._tables import text_table
from ._uncertainty import ParameterUncertainty, as_key, discrepancy_factors, quantile_band

__all__ = ["Ranking", "rank"]

# Points per run at which a candidate is checked for divergence (plus its last step).
DIVERGENCE_CHECKS = 128
# Run-steps one batched evaluation of a law holds at once: MultiPowerLaw keeps about 200 bytes
# per step, so about 3.4 GB (64 draws of 256 runs of 25k steps once asked for 80 GB).
RUN_STEPS_AT_ONCE = 2**24


@dataclasses.dataclass(frozen=True)
class Ranking:
    """Candidates sorted best first: by predicted final loss (or loss at step ``at``), diverging
    ones last (those that diverge later before those that diverge sooner).

    Attributes:
        names: the candidates' names, best first.
        final_loss: predicted loss at each candidate's last step, or after ``at`` updates where
            asked (``inf`` when it diverges).
        loss_low, loss_high: the central band of the final loss (``None`` without uncertainty).
        p_best: the share of joint parameter draws in which the candidate has the lowest final
            loss (``None`` without uncertainty).
        diverged_at: the first checked step at which the predicted loss blows up, or ``-1``.
        index: each row's position in the candidates as given.
        at: the step the candidates are ranked at (``None``: each one's last).
    """

    names: tuple[str, ...]
    final_loss: np.ndarray
    loss_low: np.ndarray | None
    loss_high: np.ndarray | None
    p_best: np.ndarray | None
    diverged_at: np.ndarray
    index: np.ndarray
    at: int | None = None

    def __len__(self) -> int:
        return len(self.names)

    def rows(self, top: int | None = None) -> list[dict]:
        """The first ``top`` rows as dictionaries (``diverged_at`` ``None`` when stable; with
        ``at``, each row has ``at_step`` too)."""
        rows = []
        for i in range(len(self) if top is None else min(top, len(self))):
            rows.append({
                "schedule": self.names[i],
                "final_loss": float(self.final_loss[i]),
                "loss_low": None if self.loss_low is None else float(self.loss_low[i]),
                "loss_high": None if self.loss_high is None else float(self.loss_high[i]),
                "p_best": None if self.p_best is None else float(self.p_best[i]),
                "diverged_at": None if self.diverged_at[i] < 0 else int(self.diverged_at[i]),
                **({} if self.at is None else {"at_step": self.at}),
            })
        return strict_json(rows)

    def to_json(self, top: int | None = None) -> str:
        """Strict JSON (no NaN or Infinity): a list of objects, best first."""
        return json.dumps(self.rows(top), indent=1, allow_nan=False)

    def table(self, top: int | None = None) -> str:
        """An aligned text table of the first ``top`` rows."""
        cells = []
        for k, r in enumerate(self.rows(top), 1):
            loss = "inf" if r["final_loss"] is None else f"{r['final_loss']:.5f}"
            band = ("" if r["loss_low"] is None or r["loss_high"] is None
                    else f"{r['loss_low']:.5f}-{r['loss_high']:.5f}")
            p_best = "" if r["p_best"] is None else f"{r['p_best']:.3f}"
            diverges = "" if r["diverged_at"] is None else f"at step {r['diverged_at']}"
            cells.append([str(k), r["schedule"], loss, band, p_best, diverges])
        loss_header = "final loss" if self.at is None else f"loss at step {self.at}"
        return text_table(["rank", "schedule", loss_header, "band", "p_best", "diverges"], cells,
                          numeric=[True, False, True, True, True, False])


@eqx.filter_jit
def _central(model, runs: Run, steps, last):
    """Final loss (at each run's ``last`` index into ``steps``) and first blow-up index, per run."""
    def one(run, last_index):
        losses = model.loss(run, steps)
        return losses[last_index], first_blow_up(losses, last_index)

    return jax.vmap(one)(runs, last)


def final_losses(models, runs: Run, steps, last):
    """Loss at ``steps[last[i]]`` of every run ``i`` (axis 1) under every model of a batch (axis 0).
    A law holds arrays over every step (``holds_every_step``), so its models go in groups of at
    most ``RUN_STEPS_AT_ONCE`` run-steps."""
    at_once = None
    if models.holds_every_step:
        count = jax.tree_util.tree_leaves(models)[0].shape[0]
        at_once = max(1, RUN_STEPS_AT_ONCE // runs.lr.size)
        at_once = None if at_once >= count else at_once
    return _final_losses(models, runs, steps, last, at_once)


@eqx.filter_jit
def _final_losses(models, runs: Run, steps, last, at_once: int | None):
    """Every model in one vmap (``at_once=None``), or ``at_once`` of them at a time."""
    def of(model):
        return jax.vmap(lambda run, i: model.loss(run, steps)[i])(runs, last)

    return jax.vmap(of)(models) if at_once is None else jax.lax.map(of, models, batch_size=at_once)


def rank(
    model,
    candidates: Sequence[Run | Schedule],
    *,
    names: Sequence[str] | None = None,
    at: int | None = None,
    band: float | None = 0.9,
    uncertainty: ParameterUncertainty | None = None,
    num_samples: int = 64,
    seed: int = 0,
    chunk_size: int = 256,
    precision: str = "float64",
    progress_bar: bool = True,
) -> Ranking:
    """Rank ``candidates`` by predicted final loss: one vmapped batch per chunk of
    ``chunk_size`` runs, so memory stays bounded however many there are. Each chunk is sharded
    across all JAX devices (``jax.sharding``; several hosts under ``jax.distributed``), so the
    same call uses every accelerator unchanged.

    With a fit (or ``uncertainty``), each candidate gets the central ``band`` of its final loss
    and ``p_best``, the share of ``num_samples`` joint parameter draws in which it is the best:
    every draw evaluates all candidates, so their errors are correlated as the parameters make
    them. The model discrepancy (a common factor on every candidate of a draw) widens the bands
    and leaves ``p_best`` unchanged. A candidate whose predicted loss blows up (past 1.5 times
    its running minimum, checked at about 128 points of its run) goes last, marked with
    ``diverged_at``; in a draw it counts as worst. The divergence checks cut the integration's
    16-step segments at other places than a single final step does, so a final loss agrees with
    :func:`predict` at that step to about ``1e-5`` relative (``tests/test_rank.py``).

    Args:
        model: a loss model, or a fit (:class:`FitResult`, a FITTED.json read by
            :func:`load_fitted`), which brings its uncertainty.
        candidates: runs or schedules (a schedule is a run whose settings take the model's values).
        names: the candidates' names (default: a schedule's own name, ``candidate_i`` for a run).
        at: rank by the predicted loss after ``at`` updates (the last logged step of real runs,
            a checkpoint) instead of at each candidate's last step; every candidate must run
            that long. A run's loss after ``at`` updates depends only on its first ``at``
            learning rates, so each candidate is cut there.
        band: probability of the band; ``None`` for none (and no ``p_best``).
        uncertainty: the parameter uncertainty (default: the fit's).
        num_samples, seed: parameter draws for the band and ``p_best``.
        chunk_size: candidates per vmapped batch (rounded up to a multiple of the device count;
            for a law, which holds every step in memory, at most ``2^24`` run-steps).
        precision: ``"float64"`` (the default) or ``"float32"``: about twice the throughput
            on a CPU (512 WSD candidates of 24,000 steps: 0.56 s against 1.15 s), with final
            losses within about ``1e-4`` relative of float64
            (``tests/test_rank.py``), so candidates closer than that may swap places.
        progress_bar: report progress on stderr when there is more than one chunk.
    """
    fit, candidates = model, list(candidates)
    model, uncertainty = model_and_uncertainty(model, uncertainty)
    if not candidates:
        raise ValueError("`candidates` is empty: rank needs at least one run.")
    if names is not None and len(names) != len(candidates):
        raise ValueError(f"`names` has {len(names)} entries for {len(candidates)} candidates.")
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be positive, got {chunk_size}.")
    # Each chunk is split across every JAX device (accelerators, or hosts under
    # jax.distributed): a whole number of candidates per device.
    devices = jax.devices()
    chunk_size = -(-chunk_size // len(devices)) * len(devices)
    sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), ("candidates",)),
                                          jax.sharding.PartitionSpec("candidates"))
    if band is not None and not 0 < band < 1:
        raise ValueError(f"`band` must be a probability in (0, 1) or None, got {band!r}.")
    if names is None:  # a Run carries no name
        names = [c.name if isinstance(c, Schedule) else f"candidate_{i}" for i, c in enumerate(candidates)]
    names = tuple(names)
    runs = [model.resolve(as_run(c)) for c in candidates]
    if at is not None:
        if isinstance(at, bool) or not isinstance(at, (int, np.integer)) or at < 1:
            raise ValueError(f"`at` must be a positive number of steps, got {at!r}.")
        short = [(name, r.total_steps) for name, r in zip(names, runs) if r.total_steps < at]
        if short:
            raise ValueError(f"`at` = {at} is past the end of {len(short)} candidate(s), e.g. "
                             f"{short[0][0]!r} ({short[0][1]} steps).")
        runs = [r.replace(lr=r.lr[:at]) for r in runs]
    longest = max(r.total_steps for r in runs)
    if model.holds_every_step:  # a law holds every step of every run of a chunk at once
        fitting = RUN_STEPS_AT_ONCE // longest // len(devices) * len(devices)
        chunk_size = max(len(devices), min(chunk_size, fitting))
    steps, last = divergence_checks([r.total_steps for r in runs], DIVERGENCE_CHECKS)
    sampled = band is not None and uncertainty is not None
    finals, blown, draws, peaks = [], [], [], []
    context, cast = computing_in(precision)
    with context:
        model = cast(model)
        if sampled:
            uncertainty = cast(uncertainty)
            models = uncertainty.sample_models(model, num_samples, seed)
            factors = np.asarray(discrepancy_factors(uncertainty.discrepancy, as_key(seed + 1), num_samples,
                                                     jnp.result_type(float)))
        chunks = range(0, len(runs), chunk_size)
        enabled = progress_bar and len(chunks) > 1
        with progress(len(chunks), f"ranking {len(runs)} candidates", enabled=enabled) as advance:
            for start in chunks:
                part = runs[start:start + chunk_size]
                # Pad to the chunk size (one compilation) or, for a single chunk, to the devices.
                size = chunk_size if len(runs) > chunk_size else -(-len(part) // len(devices)) * len(devices)
                pad = size - len(part)
                stacked = jax.device_put(stack_runs(part + [part[-1]] * pad, total=longest), sharding)
                index = np.concatenate([last[start:start + len(part)], np.repeat(last[start + len(part) - 1], pad)])
                index = jax.device_put(jnp.asarray(index.astype(np.int32)), sharding)
                final, first_blown = map(np.asarray, _central(model, stacked, steps, index))
                finals.append(final[:len(part)])
                blown.append(first_blown[:len(part)])
                # Reduced where the chunk already is: no candidate's LRs are copied to the host.
                peaks.append(np.asarray(jnp.max(stacked.lr, axis=-1))[:len(part)])
                if sampled:
                    draws.append(np.asarray(final_losses(models, stacked, steps, index))[:, :len(part)])
                advance()
    extrapolations(fit, peak_lr=np.concatenate(peaks), horizon=[r.total_steps for r in runs],
                   batch_size=[float(r.batch_size) for r in runs if r.batch_size is not None])
    final = np.concatenate(finals)
    first_blown = np.concatenate(blown)
    diverged_at = np.where(first_blown >= 0, np.asarray(steps)[np.maximum(first_blown, 0)], -1)
    final = np.where(diverged_at >= 0, np.inf, final)
    low = high = p_best = None
    if sampled:
        drawn = np.concatenate(draws, axis=1)
        drawn = np.where(np.isfinite(drawn) & (drawn > 0), drawn, np.inf)
        drawn[:, diverged_at >= 0] = np.inf
        some_finite = np.isfinite(drawn).any(axis=1)  # a draw in which every candidate diverges has no best
        p_best = np.bincount(np.argmin(drawn[some_finite], axis=1), minlength=len(runs)) / num_samples
        low, high = quantile_band(drawn * factors, band)
    order = np.lexsort((final, -diverged_at, diverged_at >= 0))  # diverging last, the latest first
    pick = (lambda a: None if a is None else a[order])
    return Ranking(tuple(names[i] for i in order), final[order], pick(low), pick(high), pick(p_best),
                   diverged_at[order], order, None if at is None else int(at))
