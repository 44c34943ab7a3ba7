"""Models by name, for the command line and the FITTED.json format."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ._laws.convex import ConvexBound
from ._laws.lra import AnnealingLaw
from ._laws.mpl import MultiPowerLaw
from ._laws.power import PowerLaw
from ._model import AbstractLossModel
from ._sde.models import AdamModel, SGDModel
from ._sde.spectrum import DiscreteSpectrum, PowerLawSpectrum

__all__ = ["MODELS", "make_model", "serializable_classes"]

MODELS: dict[str, Callable[..., AbstractLossModel]] = {
    "sde-adam": AdamModel,
    "sde-sgd": SGDModel,
    "power": PowerLaw,
    "lra": AnnealingLaw,
    "mpl": MultiPowerLaw,
    "convex": ConvexBound,
}


def make_model(name: str, **options) -> AbstractLossModel:
    """A model by its command-line name, e.g. ``make_model("sde-adam", weight_decay=0.1)``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}.")
    accepted = inspect.signature(MODELS[name]).parameters
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise ValueError(f"model {name!r} has no option {', '.join(map(repr, unknown))}; "
                         f"its options: {', '.join(accepted)}.")
    return MODELS[name](**options)


def serializable_classes() -> dict[str, type]:
    classes = [*MODELS.values(), PowerLawSpectrum, DiscreteSpectrum]
    return {cls.__name__: cls for cls in classes}
