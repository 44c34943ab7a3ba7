"""The interface every loss model answers: expected loss at given steps under a schedule."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._precision import canonical
from ._run import Run, as_run
from ._schedules import Schedule

__all__ = ["AbstractLossModel", "Parameter", "ParameterMap"]


@dataclasses.dataclass(frozen=True)
class Parameter:
    """A fittable scalar of a model.

    Attributes:
        path: attribute path from the model, e.g. ``"spectrum.signal_amplitude"``.
        positive: fitted in log space when true.
        doc: one line for reports.
    """

    path: str
    positive: bool
    doc: str

    def get(self, model) -> Array:
        value = model
        for attr in self.path.split("."):
            value = getattr(value, attr)
        return value


class AbstractLossModel(eqx.Module):
    """A model of the expected training loss as a function of the learning-rate schedule.

    A model is the landscape (what the fit learns); a :class:`~optlaws.Run` is what the user
    chooses (schedule, batch size, weight decay, momentum). Subclasses are immutable equinox
    Modules whose fittable quantities are scalar array fields, so ``jax.grad``, ``jax.vmap`` and
    ``jax.jit`` reach them. They implement:

    - ``_loss(run, steps)``: expected loss after ``steps`` updates of ``run`` (``steps`` is
      static: a NumPy array or list). Differentiable in the model and in the run.
    - ``parameters()``: the fittable scalars by name.
    - ``default_free``: the names ``optlaws.fit`` fits unless told otherwise (a model may
      choose by the curves: :meth:`free_for`).
    """

    default_free: ClassVar[tuple[str, ...]] = ()
    # Whether an evaluation holds arrays over every step of the run (a law: memory O(T) per run),
    # not a state advanced segment by segment; batched evaluations of many models bound by it how
    # many they hold at once.
    holds_every_step: ClassVar[bool] = True

    def free_for(self, curves: Sequence) -> tuple[str, ...]:
        """The parameters :func:`optlaws.fit` fits to ``curves`` unless told otherwise:
        ``default_free``."""
        return self.default_free

    def loss(self, run: Run | Schedule | Float[ArrayLike, " T"], steps) -> Float[Array, " n"]:
        """Expected loss after each of ``steps`` updates of ``run``.

        ``run`` is a :class:`~optlaws.Run`, or a schedule / per-step LR array (a run that
        records no settings). One compiled program per model structure, run length and
        ``steps``: called eagerly, each operation around the model's loop compiled on its own for
        every new length (about 40 programs, 1-2 s).
        """
        return _compiled_loss(canonical(self), canonical(as_run(run)), np.asarray(steps).tolist())

    @abc.abstractmethod
    def _loss(self, run: Run, steps) -> Float[Array, " n"]:
        """Expected loss after each of ``steps`` updates of ``run``."""

    def resolve(self, run: Run) -> Run:
        """``run`` with every setting this model reads made explicit (a law reads none: only
        the learning rates are kept)."""
        return Run(as_run(run).lr)

    @abc.abstractmethod
    def parameters(self) -> dict[str, Parameter]:
        """The fittable scalars of this model, by name."""

    def initial_guess(self, curves: Sequence) -> AbstractLossModel:
        """A starting point for fitting ``curves`` (default: the model as it is)."""
        return self

    def get(self, name: str) -> Array:
        """Value of the parameter called ``name``."""
        return self._parameter(name).get(self)

    def replace(self, **values: ArrayLike) -> AbstractLossModel:
        """A copy with the named parameters set to new values."""
        model = self
        for name, value in values.items():
            parameter = self._parameter(name)
            model = eqx.tree_at(parameter.get, model, jnp.asarray(value, dtype=float))
        return model

    def values(self) -> dict[str, float]:
        """All parameter values as Python floats."""
        return {name: float(np.asarray(p.get(self))) for name, p in self.parameters().items()}

    def _parameter(self, name: str) -> Parameter:
        parameters = self.parameters()
        if name not in parameters:
            raise ValueError(
                f"{type(self).__name__} has no parameter {name!r}; it has: {', '.join(parameters)}."
            )
        return parameters[name]


class ParameterMap(eqx.Module):
    """The map between a model and the vector ``theta`` of its free parameters in the fit's
    coordinates (log for positive parameters), shared by fitting, uncertainty and sampling.

    Attributes:
        names: the free parameters, in the order of ``theta``.
        positive: for each, whether it lives in log space.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    positive: tuple[bool, ...] = eqx.field(static=True)

    @classmethod
    def of(cls, model: AbstractLossModel, names: Sequence[str]) -> ParameterMap:
        specs = [model._parameter(name) for name in names]
        return cls(tuple(names), tuple(spec.positive for spec in specs))

    def to_theta(self, model: AbstractLossModel) -> Float[Array, " p"]:
        """``theta`` of ``model``."""
        values = [model.get(name) for name in self.names]
        return jnp.stack([jnp.log(v) if pos else v for v, pos in zip(values, self.positive)])

    def to_model(self, base: AbstractLossModel, theta: Float[ArrayLike, " p"]) -> AbstractLossModel:
        """``base`` with its free parameters set from ``theta``."""
        theta = jnp.asarray(theta)
        return base.replace(**{
            name: jnp.exp(theta[i]) if pos else theta[i]
            for i, (name, pos) in enumerate(zip(self.names, self.positive))
        })


@eqx.filter_jit
def _compiled_loss(model: AbstractLossModel, run: Run, steps) -> Float[Array, " n"]:
    # ``steps`` as Python numbers: static, as the segment plan they fix must be.
    return model._loss(run, steps)
