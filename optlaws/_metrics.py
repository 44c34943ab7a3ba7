"""Accuracy of predicted loss curves against observed ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ._curves import LossCurve
from ._model import AbstractLossModel
from ._precision import float64, in_float64
from ._tables import text_table

__all__ = ["CurveMetrics", "evaluate", "curve_metrics", "metrics_table", "relative_errors"]


@dataclasses.dataclass(frozen=True)
class CurveMetrics:
    """How well a prediction matches one observed curve.

    Attributes:
        curve: the curve's name.
        r2: coefficient of determination of the loss values.
        mean_rel_error: mean of ``|pred - true| / true`` over the observed steps.
        max_rel_error: the largest of those.
        final_rel_error: the relative error at the last observed step.
    """

    curve: str
    r2: float
    mean_rel_error: float
    max_rel_error: float
    final_rel_error: float

    def as_dict(self) -> dict[str, float | str]:
        return dataclasses.asdict(self)


def relative_errors(predicted: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``|predicted - observed| / observed`` per point; a non-finite prediction counts as inf."""
    predicted = np.asarray(predicted, dtype=float)
    observed = np.asarray(observed, dtype=float)
    rel = np.abs(predicted - observed) / observed
    return np.where(np.isfinite(rel), rel, np.inf)


def curve_metrics(name: str, predicted: np.ndarray, observed: np.ndarray) -> CurveMetrics:
    """Metrics of ``predicted`` against ``observed`` (same steps); non-finite predictions count as inf."""
    predicted = np.asarray(predicted, dtype=float)
    observed = np.asarray(observed, dtype=float)
    rel = relative_errors(predicted, observed)
    spread = np.sum((observed - observed.mean()) ** 2)
    r2 = 1.0 - np.sum((predicted - observed) ** 2) / spread if spread > 0 else float("nan")
    return CurveMetrics(
        curve=name,
        r2=float(r2) if np.isfinite(r2) or spread == 0 else float("-inf"),
        mean_rel_error=float(np.mean(rel)),
        max_rel_error=float(np.max(rel)),
        final_rel_error=float(rel[-1]),
    )


def evaluate(model: AbstractLossModel, curves: Sequence[LossCurve] | LossCurve) -> list[CurveMetrics]:
    """Predict every curve's schedule with ``model`` and compare with the observed loss.

    Example:
        >>> metrics = optlaws.evaluate(fitted.model, held_out)  # doctest: +SKIP
        >>> [round(m.mean_rel_error, 4) for m in metrics]  # doctest: +SKIP
    """
    if isinstance(curves, LossCurve):
        curves = [curves]
    results = []
    with float64():
        model = in_float64(model)
        for curve in curves:
            predicted = np.asarray(model.loss(in_float64(curve.run), curve.steps))
            results.append(curve_metrics(curve.name, predicted, curve.loss))
    return results


def metrics_table(metrics: Sequence[CurveMetrics]) -> str:
    """An aligned text table of per-curve metrics: R2, mean, max and final relative error."""
    return text_table(["curve", "R2", "mean rel", "max rel", "final rel"],
                      [[m.curve, f"{m.r2:.5f}", f"{m.mean_rel_error:.3%}", f"{m.max_rel_error:.3%}",
                        f"{m.final_rel_error:.3%}"] for m in metrics])
