"""The interface every loss model answers: expected loss at given steps under a schedule."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

__all__ = ["AbstractLossModel", "Parameter", "in_float64"]


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

    def to_unconstrained(self, value: ArrayLike) -> Array:
        value = jnp.asarray(value, dtype=float)
        return jnp.log(value) if self.positive else value

    def from_unconstrained(self, theta: ArrayLike) -> Array:
        return jnp.exp(theta) if self.positive else jnp.asarray(theta)


def in_float64(model):
    """The model with every floating-point leaf cast to float64 (call inside ``jax.enable_x64``)."""
    return jax.tree.map(
        lambda x: jnp.asarray(x, dtype=jnp.float64) if eqx.is_inexact_array(x) else x, model
    )


class AbstractLossModel(eqx.Module):
    """A model of the expected training loss as a function of the learning-rate schedule.

    Subclasses are immutable equinox Modules whose fittable quantities are scalar array fields,
    so ``jax.grad``, ``jax.vmap`` and ``jax.jit`` reach them. They implement:

    - ``loss(lr, steps)``: expected loss after ``steps`` updates of the per-step schedule ``lr``
      (``steps`` is static: a NumPy array or list). Differentiable in the model and in ``lr``.
    - ``parameters()``: the fittable scalars by name.
    - ``default_free``: the names ``optlaws.fit`` fits unless told otherwise.
    """

    default_free: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def loss(self, lr: Float[ArrayLike, " T"], steps) -> Float[Array, " n"]:
        """Expected loss after each of ``steps`` updates of the schedule ``lr``."""

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
