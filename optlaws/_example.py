"""The built-in example: fit on two cheap runs, predict three schedules never run, then run them.

A linear-regression model with a power-law spectrum (:class:`LeastSquaresProblem`) is trained
for real with optax SGD (momentum 0.9) under a constant and a cosine schedule. The SGD SDE model
is fitted to those two loss curves, predicts a WSD, an 8-1-1 step and an inverse-sqrt schedule,
and the three are then trained to show prediction beside truth. Needs no download; takes about half a minute.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optax

from ._curves import LossCurve
from ._fit import FitResult, fit
from ._metrics import CurveMetrics, evaluate
from ._plot import plot_curves
from ._predict import Prediction, predict
from ._problems import LeastSquaresProblem
from ._progress import status
from ._run import Run
from ._schedules import constant, cosine, inverse_sqrt, step_decay, wsd
from ._sde.models import SGDModel
from ._serialize import save_model
from ._tables import text_table

__all__ = ["ExampleResult", "run_example"]

PEAK, TOTAL, WARMUP, MOMENTUM = 0.05, 4000, 200, 0.9
# The curves are fitted and compared from here on: the model describes training after its fast
# initial drop, which lasts about WARMUP steps past warmup here (fitted from step 200, right after
# warmup, the model missed steps 275-325 by 1.1-1.8%).
FROM_STEP = 2 * WARMUP


@dataclasses.dataclass(frozen=True)
class ExampleResult:
    fit: FitResult
    predictions: list[Prediction]
    truth: list[LossCurve]
    metrics: list[CurveMetrics]

    def table(self) -> str:
        lines = [text_table(["schedule", "predicted final", "true final", "mean rel err", "max rel err"],
                            [[pred.name, f"{pred.final_loss:.5f}", f"{true.final_loss:.5f}", f"{m.mean_rel_error:.3%}",
                              f"{m.max_rel_error:.3%}"]
                             for pred, true, m in zip(self.predictions, self.truth, self.metrics)])]
        ranked_pred = [p.name for p in sorted(self.predictions, key=lambda p: p.final_loss)]
        ranked_true = [t.name for t in sorted(self.truth, key=lambda t: t.final_loss)]
        lines.append(f"ranking by predicted final loss: {' < '.join(ranked_pred)}")
        lines.append(f"ranking by true final loss:      {' < '.join(ranked_true)}")
        return "\n".join(lines)


def run_example(out: str | Path | None = None, *, seeds: int = 16, progress: bool = True) -> ExampleResult:
    """Run the example; with ``out``, write ``fitted.json``, ``predictions.csv`` files and ``example.png``."""
    problem = LeastSquaresProblem.power_law()

    def optimizer(lr):
        return optax.sgd(lr, momentum=MOMENTUM)

    train_schedules = [constant(PEAK, TOTAL, warmup=WARMUP), cosine(PEAK, TOTAL, warmup=WARMUP)]
    held_out = [
        wsd(PEAK, TOTAL, warmup=WARMUP, decay_frac=0.2, shape="linear"),
        step_decay(PEAK, TOTAL, warmup=WARMUP),
        inverse_sqrt(PEAK, TOTAL, warmup=WARMUP),
    ]
    def run(schedule):
        return Run(schedule, momentum=MOMENTUM)

    with status(f"training {len(train_schedules)} schedules x {seeds} seeds with optax", enabled=progress):
        train = [problem.train(optimizer, run(s), seeds=seeds, key=i, name=s.name).since(FROM_STEP)
                 for i, s in enumerate(train_schedules)]
    result = fit(SGDModel(), train, progress=progress)
    with status(f"predicting {len(held_out)} held-out schedules", enabled=progress):
        predictions = [predict(result.model, run(s), name=s.name) for s in held_out]
    with status(f"training the {len(held_out)} held-out schedules to compare", enabled=progress):
        truth = [problem.train(optimizer, run(s), seeds=seeds, key=10 + i, name=s.name).since(FROM_STEP)
                 for i, s in enumerate(held_out)]
        metrics = evaluate(result.model, truth)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_model(out / "fitted.json", result.model, result)
        for p in predictions:
            p.to_csv(out / f"predicted_{p.name}.csv")
        fitted = [predict(result.model, c.run, name=c.name) for c in train]
        plot_curves(fitted + predictions, train + truth, path=out / "example.png",
                    title="SGD on a power-law least-squares problem: fit on 2 schedules, predict 3")
    return ExampleResult(result, predictions, truth, metrics)
