"""Plan the rest of a run in progress: when to cool down, for how long, in which shape."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from ._curves import LossCurve
from ._precision import float64, in_float64
from ._predict import model_and_uncertainty
from ._rank import Ranking, rank
from ._run import Run
from ._schedules import _check_shape, wsd
from ._serialize import strict_json

__all__ = ["Plan", "plan"]

DEFAULT_SHAPES = ("linear", "1-sqrt", "cosine")
# Cooldown lengths tried, as fractions of the whole run (those that still fit after the checkpoint).
DEFAULT_COOLDOWN_FRACTIONS = tuple(np.round(np.linspace(0.02, 0.6, 30), 3))


@dataclasses.dataclass(frozen=True)
class Plan:
    """Continuations of a run in progress, best first (:func:`plan`).

    Attributes:
        ranking: the continuations ranked by predicted final loss, anchored to the observed loss.
        cooldowns: per ranked row (same order): ``start`` (the step the cooldown begins), ``length``
            (its steps), ``shape`` and ``final_lr``.
        checkpoint: the last observed step; no cooldown starts before it.
        current_lr: the LR at the checkpoint, where every cooldown starts from.
        anchor: observed over predicted loss at the checkpoint; every predicted loss is multiplied by it.
    """

    ranking: Ranking
    cooldowns: tuple[dict, ...]
    checkpoint: int
    current_lr: float
    anchor: float

    def rows(self, top: int | None = None) -> list[dict]:
        """The first ``top`` rows: the ranking's keys and the cooldown's."""
        return strict_json([{**row, **cooldown} for row, cooldown in zip(self.ranking.rows(top), self.cooldowns)])

    def to_json(self, top: int | None = None) -> str:
        return json.dumps({"checkpoint": self.checkpoint, "current_lr": self.current_lr, "anchor": self.anchor,
                           "continuations": self.rows(top)}, indent=1, allow_nan=False)

    def summary(self) -> str:
        """One sentence: the best continuation."""
        best = self.rows(1)[0]
        band = ("" if best["loss_low"] is None
                else f" (band {best['loss_low']:.4f}-{best['loss_high']:.4f})")
        return (f"cool down at step {best['start']} for {best['length']} steps with a {best['shape']} decay to "
                f"{best['final_lr']:g}: predicted final loss {best['final_loss']:.4f}{band}")


def plan(
    model,
    observed: LossCurve,
    total_steps: int,
    *,
    shapes=DEFAULT_SHAPES,
    cooldown_fractions=DEFAULT_COOLDOWN_FRACTIONS,
    final_lr: float = 0.0,
    band: float | None = 0.9,
    num_samples: int = 64,
    seed: int = 0,
    progress_bar: bool = True,
) -> Plan:
    """Rank the continuations of a run in progress to ``total_steps``: hold the current LR, then
    cool down to ``final_lr`` over the last ``length`` steps, for every length in
    ``cooldown_fractions`` of the run that starts at or after the checkpoint (plus one that
    starts at the checkpoint) and every shape.

    Every continuation is the observed run's own learning rates up to the checkpoint (the last
    observed step) followed by the cooldown, so the model's state at the checkpoint (the
    moments of every mode, the weight norm, the LR's running maximum) is the one the real run
    reached; they are ranked together, with the fit's bands and ``p_best`` (:func:`rank`). The
    model's loss at the checkpoint is matched to the observed one: every prediction is
    multiplied by ``anchor`` = observed / predicted there (1 for a curve the model was fitted
    to), which changes no order.

    Args:
        model: a loss model or a fit.
        observed: the run so far (its ``run`` holds the learning rates and settings).
        total_steps: the run's planned length (after the checkpoint).
        shapes: cooldown shapes (``linear``, ``1-sqrt``, ``cosine``, ``exponential``).
        cooldown_fractions: cooldown lengths as fractions of ``total_steps``.
        final_lr: the LR the cooldown ends at.
        band, num_samples, seed: see :func:`rank`.
        progress_bar: report progress on stderr.
    """
    checkpoint = int(observed.steps[-1])
    if total_steps <= checkpoint:
        raise ValueError(f"`total_steps` ({total_steps}) must lie after the last observed step ({checkpoint}).")
    if observed.run.total_steps < checkpoint:
        raise ValueError(f"{observed.name}: the run's schedule has {observed.run.total_steps} steps, fewer than "
                         f"the last observed step {checkpoint}.")
    shapes = [_check_shape(shape) for shape in shapes]
    prefix = np.asarray(observed.run.lr)[:checkpoint]
    current = float(np.asarray(observed.run.lr)[checkpoint - 1])
    if not 0 <= final_lr <= current:
        raise ValueError(f"`final_lr` ({final_lr!r}) must lie in [0, the current LR {current:g}].")
    remaining = total_steps - checkpoint
    lengths = sorted({int(round(f * total_steps)) for f in cooldown_fractions if 0 < f * total_steps <= remaining}
                     | {remaining})
    settings = observed.run.settings()
    runs, cooldowns = [], []
    for shape in shapes:
        for length in lengths:
            tail = wsd(current, remaining, decay_frac=length / remaining, shape=shape, final=final_lr).lr
            runs.append(Run(np.concatenate([prefix, np.asarray(tail)]), **settings))
            cooldowns.append({"start": total_steps - length, "length": length, "shape": shape,
                              "final_lr": float(final_lr)})
    names = [f"cooldown {c['shape']} from {c['start']} ({c['length']} steps)" for c in cooldowns]
    ranking = rank(model, runs, names=names, band=band, num_samples=num_samples, seed=seed,
                   progress_bar=progress_bar)
    landscape, _ = model_and_uncertainty(model, None)
    with float64():
        at_checkpoint = float(in_float64(landscape).loss(runs[0], [checkpoint])[0])
    anchor = float(observed.loss[-1]) / at_checkpoint
    scaled = {key: None if getattr(ranking, key) is None else getattr(ranking, key) * anchor
              for key in ("final_loss", "loss_low", "loss_high")}
    ranking = dataclasses.replace(ranking, **scaled)
    return Plan(ranking, tuple(cooldowns[i] for i in ranking.index), checkpoint, current, anchor)
