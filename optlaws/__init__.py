"""optlaws: predict training-loss curves under any learning-rate schedule.

Fit a stochastic-differential-equation model of SGD/Adam (or a closed-form law) to a few loss
curves, then predict, rank and transfer learning-rate schedules. See README.md.
"""

from ._curves import DivergedRunError, InvalidCurveError, LossCurve
from ._datasets import MPL_CURVES, load_mpl, mpl_schedule
from ._fit import FitProblem, FitResult, FitWarning, fit, huber
from ._io import (
    read_csv,
    read_curve,
    read_dataframe,
    read_json,
    read_jsonl,
    read_schedule_csv,
    read_tensorboard,
    read_wandb,
    schedule_from_config,
    schedule_from_samples,
    settings_from_config,
    write_csv,
)
from ._laws.convex import ConvexBound
from ._laws.lra import AnnealingLaw
from ._laws.mpl import MultiPowerLaw
from ._laws.power import PowerLaw
from ._metrics import CurveMetrics, evaluate
from ._model import AbstractLossModel, Parameter, ParameterMap
from ._optimise import OptimisedSchedule, family_specs, optimise, shares_schedule
from ._plan import Plan, plan
from ._plot import plot_curves
from ._precision import float64
from ._predict import Prediction, predict
from ._problems import LeastSquaresProblem
from ._rank import Ranking, rank
from ._registry import MODELS, make_model
from ._run import Run, stack_runs
from ._schedules import (
    Schedule,
    concatenate,
    constant,
    cosine,
    cyclic,
    from_array,
    from_optax,
    inverse_sqrt,
    linear,
    parse_schedule,
    schedule_spec,
    step_decay,
    wsd,
)
from ._sde.models import AbstractSDEModel, AdamModel, SGDModel
from ._sde.paths import sample_paths
from ._sde.spectrum import AbstractSpectrum, DiscreteSpectrum, PowerLawSpectrum
from ._stability import StabilityFit, divergence_scores, fit_stability
from ._serialize import Fitted, load_fitted, load_model, save_model
from ._transfer import LRTransfer, Optimum, family_run, fit_lr_transfer, model_optima, read_sweep, sweep_optima
from ._uncertainty import ParameterUncertainty

__version__ = "0.2.0"
