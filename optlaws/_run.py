"""A training run: the per-step learning rates and the optimizer settings the user chooses."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._precision import array_module, to_device
from ._schedules import Schedule, from_array

__all__ = ["Run", "as_run", "stack_runs"]

SETTINGS = ("batch_size", "weight_decay", "momentum")


def _setting(name: str, value: ArrayLike | None, low: float, high: float, *, low_open: bool = False) -> Array | None:
    """A run setting as a float array in ``[low, high)`` (``(low, high)`` with ``low_open``),
    checked when concrete; ``None`` (not recorded) stays ``None``."""
    if value is None:
        return None
    if isinstance(value, jax.core.Tracer):
        return value.astype(float)
    # Concrete settings stay NumPy float64, exact whatever JAX's precision (0.9 stays 0.9).
    values = np.asarray(value, dtype=np.float64)
    inside = np.isfinite(values) & ((values > low) if low_open else (values >= low)) & (values < high)
    if not np.all(inside):
        bad = float(values[~inside].ravel()[0])
        raise ValueError(f"Run: `{name}` must lie in {'(' if low_open else '['}{low:g}, {high:g}), got {bad!r}.")
    return values


class Run(eqx.Module):
    """What one training run is made of: the schedule and the optimizer settings chosen for it.

    A loss model is the landscape; a run is what the user chooses. Every model answers
    ``model.loss(run, steps)``. Settings a run does not record (``None``) take the model's
    values for an unrecorded setting: the model's reference batch size, and the optimizer's usual
    weight decay and momentum (AdamW: 0.1 and ``b1 = 0.9``; SGD: 0 and 0). Closed-form laws read
    only ``lr``.

    Attributes:
        lr: per-step learning rates, shape ``(T,)``; ``lr[t]`` is the learning rate of update ``t``.
        batch_size: samples (or sequences) per update.
        weight_decay: decoupled weight decay ``lambda`` (AdamW's ``weight_decay``).
        momentum: Adam's ``b1``, or SGD's heavy-ball momentum.

    A batch of runs is one ``jax.vmap``: build it inside the vmap, or stack runs of one length
    with :func:`stack_runs`.

    Example:
        >>> import jax, jax.numpy as jnp, optlaws
        >>> run = optlaws.Run(optlaws.cosine(3e-4, 1000, warmup=50), batch_size=256, weight_decay=0.1)
        >>> run.total_steps
        1000
        >>> model = optlaws.AdamModel(reference_batch_size=256)
        >>> peaks = jnp.array([1e-4, 3e-4, 1e-3])
        >>> runs = jax.vmap(lambda p: optlaws.Run(optlaws.constant(p, 1000).lr, batch_size=256.0))(peaks)
        >>> jax.vmap(model.loss, in_axes=(0, None))(runs, [1000]).shape
        (3, 1)
    """

    lr: Float[Array, " T"]
    batch_size: Float[Array, ""] | None
    weight_decay: Float[Array, ""] | None
    momentum: Float[Array, ""] | None

    def __init__(
        self,
        lr: Schedule | ArrayLike,
        *,
        batch_size: ArrayLike | None = None,
        weight_decay: ArrayLike | None = None,
        momentum: ArrayLike | None = None,
    ):
        if isinstance(lr, Schedule):
            lr = lr.lr
        elif not isinstance(lr, jax.core.Tracer):
            lr = from_array(lr, name="run").lr  # the schedule's checks: 1-D, finite, non-negative
        self.lr = jnp.asarray(lr, dtype=float)
        self.batch_size = _setting("batch_size", batch_size, 0.0, np.inf, low_open=True)
        self.weight_decay = _setting("weight_decay", weight_decay, 0.0, np.inf)
        self.momentum = _setting("momentum", momentum, 0.0, 1.0)

    @property
    def total_steps(self) -> int:
        """Number of updates ``T``."""
        return self.lr.shape[-1]

    def settings(self) -> dict[str, float | None]:
        """The recorded optimizer settings as Python floats (``None`` where not recorded)."""
        return {name: None if getattr(self, name) is None else float(getattr(self, name)) for name in SETTINGS}

    def replace(self, **settings: ArrayLike | None) -> Run:
        """A copy with new settings (or a new ``lr``)."""
        unknown = set(settings) - {"lr", *SETTINGS}
        if unknown:
            raise ValueError(f"Run has no setting {sorted(unknown)}; settings: lr, {', '.join(SETTINGS)}.")
        values = {"lr": self.lr, **{name: getattr(self, name) for name in SETTINGS}, **settings}
        return Run(values.pop("lr"), **values)

    def fill(self, **defaults: ArrayLike) -> Run:
        """A copy whose unrecorded settings take the values in ``defaults`` (recorded ones stay).

        Always a new Run, built in the current precision: a run made in float32 and filled
        inside ``float64()`` gets float64 learning rates, as the moment scan needs one dtype."""
        return self.replace(**{name: value for name, value in defaults.items() if getattr(self, name) is None})


def name_of(run: Run | Schedule | ArrayLike, name: str | None = None) -> str:
    """``name``, else the schedule's name, else ``"run"`` (a Run carries no name)."""
    return name or (run.name if isinstance(run, Schedule) else "run")


def as_run(run: Run | Schedule | ArrayLike) -> Run:
    """``run`` as a :class:`Run`: a schedule or an array of per-step LRs gets no recorded settings."""
    return run if isinstance(run, Run) else Run(run)


def stack_runs(runs: Sequence[Run], *, total: int | None = None) -> Run:
    """Stack runs into one batched :class:`Run` (leading axis: the run), for ``jax.vmap``.

    Runs shorter than ``total`` (default: the longest) are extended by holding their last
    learning rate; that changes nothing at or before their own last step. Every run must record
    the same settings (all or none of each).
    """
    runs = [as_run(r) for r in runs]
    if not runs:
        raise ValueError("stack_runs needs at least one run.")
    recorded = {name: {getattr(r, name) is None for r in runs} for name in SETTINGS}
    mixed = [name for name, kinds in recorded.items() if len(kinds) > 1]
    if mixed:
        raise ValueError(
            f"stack_runs: some runs record {mixed} and others do not; fill them first "
            "(model.resolve(run) gives every setting the model's value)."
        )
    longest = max(r.total_steps for r in runs)
    total = longest if total is None else int(total)
    if total < longest:
        raise ValueError(f"stack_runs: `total` ({total}) is shorter than the longest run ({longest} steps).")
    xp = array_module(*jax.tree.leaves(runs))
    padded = [r.replace(lr=xp.pad(r.lr, (0, total - r.total_steps), mode="edge")) for r in runs]
    return jax.tree.map(lambda *leaves: to_device(xp.stack(leaves)), *padded)
