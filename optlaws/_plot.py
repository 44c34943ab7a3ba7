"""Figures: predicted beside observed loss curves, their relative error, and the schedules."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._curves import LossCurve
from ._io import atomic_write
from ._predict import Prediction

__all__ = ["plot_curves"]


def plot_curves(
    predictions: Sequence[Prediction],
    observed: Sequence[LossCurve] = (),
    *,
    path: str | Path | None = None,
    title: str | None = None,
):
    """Plot predictions (lines) over observed curves (dots) of the same name.

    Panels: loss (with the predictions' uncertainty bands shaded, where they have one), relative
    error of each prediction against the observed curve of the same name
    (when there is one), learning-rate schedule. Returns the matplotlib figure; saves it when
    ``path`` is given.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    by_name = {c.name: c for c in observed}
    has_errors = any(p.name in by_name for p in predictions)
    rows = 3 if has_errors else 2
    fig, axes = plt.subplots(rows, 1, figsize=(9, 3.2 * rows), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.5, 1][:rows] if has_errors else [3, 1]})
    loss_ax, lr_ax = axes[0], axes[-1]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    finite_losses = []
    for i, pred in enumerate(predictions):
        color = colors[i % len(colors)]
        loss_ax.plot(pred.steps, pred.loss, color=color, lw=1.5, label=_label(pred.name, "model"))
        if pred.loss_low is not None:
            loss_ax.fill_between(pred.steps, pred.loss_low, np.where(np.isfinite(pred.loss_high), pred.loss_high,
                                                                     np.nan), color=color, alpha=0.2, lw=0)
        lr_ax.plot(pred.steps, pred.lr, color=color, lw=1)
        curve = by_name.get(pred.name)
        shown = pred.steps >= _range_start(pred, curve)
        finite_losses.append(pred.loss[shown & np.isfinite(pred.loss)])
        if curve is not None:
            loss_ax.plot(curve.steps, curve.loss, ".", ms=2.5, color=color, alpha=0.6,
                         label=_label(pred.name, "observed"))
            finite_losses.append(curve.loss)
            predicted_at = np.interp(curve.steps, pred.steps, pred.loss)
            axes[1].plot(curve.steps, 100 * (predicted_at - curve.loss) / curve.loss, color=color, lw=1)
    for c in observed:
        if all(p.name != c.name for p in predictions):
            loss_ax.plot(c.steps, c.loss, ".", ms=2.5, color="0.5", label=_label(c.name, "observed"))
    values = np.concatenate(finite_losses) if finite_losses else np.array([1.0])
    if values.size:
        low, high = np.percentile(values, [0, 97])
        loss_ax.set_ylim(low - 0.02 * (high - low), high + 0.05 * (high - low))
    loss_ax.set_ylabel("loss")
    # Beside the panel, so that long run names neither cover the curves nor run off the figure.
    loss_ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    loss_ax.grid(alpha=0.3)
    if has_errors:
        axes[1].axhline(0, color="k", lw=0.8)
        axes[1].set_ylabel("rel. error %")
        axes[1].grid(alpha=0.3)
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("step")
    lr_ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        with atomic_write(path, "wb") as f:
            fig.savefig(f, dpi=110, format=Path(path).suffix.lstrip(".").lower() or "png", bbox_inches="tight")
        plt.close(fig)
    return fig


def _label(name: str, kind: str) -> str:
    """A legend entry: the name wrapped at 40 characters (schedule specs run long)."""
    return textwrap.fill(f"{name} ({kind})", 40, break_on_hyphens=False)


def _range_start(prediction, curve) -> float:
    """First step that sets the loss axis's range: past warmup (where a model extrapolates far
    above any logged loss) and past the first 5% of the run, or the first observed step."""
    lr = np.asarray(prediction.lr)
    steps = np.asarray(prediction.steps)
    warmed_up = steps[np.argmax(lr >= 0.99 * lr.max())] if lr.size else 0
    start = max(warmed_up, 0.05 * steps[-1]) if steps.size else 0
    return min(start, curve.steps[0]) if curve is not None else start
