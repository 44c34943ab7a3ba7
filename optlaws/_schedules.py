"""Learning-rate schedules as per-step arrays.

A schedule is the array ``lr`` of length ``T``: ``lr[t]`` is the learning rate of update ``t``
(``t = 0 .. T-1``). The continuous arguments of every builder (``peak``, ``final``,
``decay_frac``, ``warmup``, ...) may be traced: a family of schedules is one ``jax.vmap`` over a
builder. ``total`` fixes the array length and must be a Python ``int``.

Builders compute with NumPy when their arguments are concrete and with ``jax.numpy`` when one is
traced (:func:`~optlaws._precision.array_module`): the same formulas, but eager ``jax.numpy``
compiles each operation again for every new length, about 0.7 s per schedule of a length not built
before.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._precision import array_module, to_device

__all__ = [
    "Schedule",
    "concatenate",
    "constant",
    "cosine",
    "cyclic",
    "from_array",
    "from_optax",
    "inverse_sqrt",
    "linear",
    "parse_schedule",
    "schedule_spec",
    "step_decay",
    "wsd",
]

# Memory of one schedule step through evaluation (its LR, segment index and float64 copies), and
# the longest schedule accepted: 40 GB.
BYTES_PER_STEP = 40
MAX_STEPS = 10**9

DECAY_SHAPES = ("linear", "cosine", "sqrt", "exponential")
# The names the literature uses for the same shapes ("1-sqrt": Hägele et al. 2024).
SHAPE_ALIASES = {"1-sqrt": "sqrt", "cos": "cosine", "geometric": "exponential", "exp": "exponential"}


class Schedule(eqx.Module):
    """A learning-rate schedule: one learning rate per update.

    Attributes:
        lr: array of shape ``(T,)``; ``lr[t]`` is the learning rate of update ``t``.
        name: a label used in tables, plots and file names.

    Example:
        >>> import optlaws
        >>> s = optlaws.wsd(3e-4, 24000, warmup=2160, decay_frac=0.2, final=3e-5)
        >>> s.total_steps, round(float(s.lr[10000]), 8)
        (24000, 0.0003)
    """

    lr: Float[Array, " T"]
    name: str = eqx.field(static=True, default="")

    def __check_init__(self):
        if self.lr.ndim != 1:
            raise ValueError(f"Schedule.lr must be one-dimensional, got shape {self.lr.shape}.")
        if self.lr.shape[0] == 0:
            raise ValueError("Schedule.lr is empty: a schedule needs at least one step.")
        if not isinstance(self.lr, jax.core.Tracer):
            values = np.asarray(self.lr)
            bad = ~np.isfinite(values)
            if bad.any():
                raise ValueError(
                    f"Schedule {self.name!r}: learning rate is not finite at step {int(np.argmax(bad))}."
                )
            if (values < 0).any():
                step = int(np.argmax(values < 0))
                raise ValueError(
                    f"Schedule {self.name!r}: learning rate is negative ({values[step]:g}) at step {step}."
                )

    @property
    def total_steps(self) -> int:
        """Number of updates ``T``."""
        return self.lr.shape[0]

    @property
    def peak(self) -> float:
        """Largest learning rate of the schedule."""
        return float(np.max(np.asarray(self.lr)))

    def __add__(self, other: Schedule) -> Schedule:
        """Continue training: ``a + b`` runs ``a`` then ``b``."""
        return concatenate(self, other)


def _as_schedule(lr: Array, name: str) -> Schedule:
    return Schedule(lr=jnp.asarray(to_device(lr), dtype=float), name=name)


def check_step_count(what: str, value: int) -> None:
    """Refuse a schedule of more than :data:`MAX_STEPS` steps (``what`` names the count), with the
    memory it would take."""
    if value > MAX_STEPS:
        raise ValueError(f"{what} = {value:,} steps is past the maximum of {MAX_STEPS:,}: evaluating it "
                         f"would take about {value * BYTES_PER_STEP / 1e9:,.0f} GB.")


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer number of steps, got {value!r}.")
    check_step_count(f"`{name}`", int(value))
    return int(value)


def _check_concrete(name: str, value: Any, *, low: float = 0.0, high: float = math.inf):
    """Range-check a scalar argument when it is concrete (tracers pass through unchecked)."""
    if isinstance(value, jax.core.Tracer):
        return
    array = np.asarray(value, dtype=float)
    if array.shape != ():
        raise ValueError(f"`{name}` must be a scalar, got shape {array.shape}.")
    if not np.isfinite(array) or not (low <= array <= high):
        raise ValueError(f"`{name}` must lie in [{low:g}, {high:g}], got {float(array)!r}.")


def _steps(total: int, xp) -> Float[Array, " T"]:
    return xp.arange(total, dtype=float)


def _with_warmup(lr: Array, peak: ArrayLike, warmup: ArrayLike, total: int, xp) -> Array:
    """Linear warmup ``lr[t] = peak * t / warmup`` for ``t < warmup`` (optax's convention)."""
    _check_concrete("warmup", warmup, high=total - 1)
    t = _steps(total, xp)
    ramp = peak * t / xp.maximum(warmup, 1)
    return xp.where(t < warmup, ramp, lr)


def _progress(start: ArrayLike, total: int, xp) -> Array:
    """Fraction of the phase ``[start, total)`` completed at each step, clipped to [0, 1]."""
    t = _steps(total, xp)
    return xp.clip((t - start) / xp.maximum(total - start, 1), 0.0, 1.0)


def _check_shape(shape: str) -> str:
    """The decay shape's canonical name (aliases accepted)."""
    canonical = SHAPE_ALIASES.get(shape, shape)
    if canonical not in DECAY_SHAPES:
        raise ValueError(f"`shape` must be one of {DECAY_SHAPES} (or {', '.join(SHAPE_ALIASES)}), got {shape!r}.")
    return canonical


def _decay(x: Array, peak: ArrayLike, final: ArrayLike, shape: str, xp) -> Array:
    """LR at decay progress ``x`` in [0, 1] going from ``peak`` to ``final``."""
    if shape == "linear":
        return peak + (final - peak) * x
    if shape == "cosine":
        return final + 0.5 * (peak - final) * (1 + xp.cos(xp.pi * x))
    if shape == "sqrt":
        return peak - (peak - final) * xp.sqrt(x)
    if shape == "exponential":
        if not isinstance(final, jax.core.Tracer) and float(final) <= 0:
            raise ValueError("`final` must be positive for shape='exponential' (geometric decay).")
        return peak * (final / peak) ** x
    raise AssertionError(f"unchecked decay shape {shape!r}")  # callers pass _check_shape's result


def constant(peak: ArrayLike, total: int, *, warmup: ArrayLike = 0, name: str | None = None) -> Schedule:
    """Constant learning rate ``peak`` after a linear warmup of ``warmup`` steps."""
    total = _check_positive_int("total", total)
    _check_concrete("peak", peak)
    xp = array_module(peak, warmup)
    lr = xp.full((total,), peak, dtype=float)
    return _as_schedule(_with_warmup(lr, peak, warmup, total, xp), name or f"constant_{total}")


def cosine(
    peak: ArrayLike,
    total: int,
    *,
    final: ArrayLike = 0.0,
    warmup: ArrayLike = 0,
    name: str | None = None,
) -> Schedule:
    """Cosine decay from ``peak`` (end of warmup) to ``final`` (at step ``total``).

    ``lr[t] = final + (peak - final) (1 + cos(pi x)) / 2`` with ``x = (t - warmup) / (total - warmup)``.
    """
    total = _check_positive_int("total", total)
    _check_concrete("peak", peak)
    _check_concrete("final", final)
    xp = array_module(peak, final, warmup)
    lr = _decay(_progress(warmup, total, xp), peak, final, "cosine", xp)
    return _as_schedule(_with_warmup(lr, peak, warmup, total, xp), name or f"cosine_{total}")


def linear(
    peak: ArrayLike,
    total: int,
    *,
    final: ArrayLike = 0.0,
    warmup: ArrayLike = 0,
    name: str | None = None,
) -> Schedule:
    """Linear decay from ``peak`` (end of warmup) to ``final`` (at step ``total``)."""
    total = _check_positive_int("total", total)
    _check_concrete("peak", peak)
    _check_concrete("final", final)
    xp = array_module(peak, final, warmup)
    lr = _decay(_progress(warmup, total, xp), peak, final, "linear", xp)
    return _as_schedule(_with_warmup(lr, peak, warmup, total, xp), name or f"linear_{total}")


def wsd(
    peak: ArrayLike,
    total: int,
    *,
    decay_frac: ArrayLike = 0.2,
    shape: str = "linear",
    final: ArrayLike = 0.0,
    warmup: ArrayLike = 0,
    name: str | None = None,
) -> Schedule:
    """Warmup-stable-decay: ``peak`` until the last ``decay_frac * total`` steps, then a cooldown.

    The cooldown goes from ``peak`` to ``final`` with progress ``x = (t - d) / (total - d)``,
    ``d = total - round(decay_frac * total)``, in one of the shapes

    - ``"linear"``: ``peak + (final - peak) x``
    - ``"cosine"``: ``final + (peak - final) (1 + cos(pi x)) / 2``
    - ``"sqrt"`` (``"1-sqrt"``): ``peak - (peak - final) sqrt(x)``
    - ``"exponential"`` (geometric): ``peak (final / peak)^x``, needs ``final > 0``.
    """
    total = _check_positive_int("total", total)
    _check_concrete("peak", peak)
    _check_concrete("final", final)
    _check_concrete("decay_frac", decay_frac, high=1.0)
    shape = _check_shape(shape)
    xp = array_module(peak, final, decay_frac, warmup)
    start = total - xp.round(decay_frac * total)
    lr = _decay(_progress(start, total, xp), peak, final, shape, xp)
    lr = xp.where(_steps(total, xp) < start, peak, lr)
    return _as_schedule(_with_warmup(lr, peak, warmup, total, xp), name or f"wsd_{shape}_{total}")


def step_decay(
    peak: ArrayLike,
    total: int,
    *,
    milestones: Sequence[float] = (0.8, 0.9),
    factor: ArrayLike = 10**-0.5,
    warmup: ArrayLike = 0,
    name: str | None = None,
) -> Schedule:
    """Multi-step decay: multiply by ``factor`` at each milestone (a fraction of ``total``).

    The default is the "8-1-1" schedule of DeepSeek LLM: ``x 1/sqrt(10)`` at 80% and at 90%.
    """
    total = _check_positive_int("total", total)
    _check_concrete("peak", peak)
    _check_concrete("factor", factor, high=1.0)
    for m in milestones:
        _check_concrete("milestones", m, high=1.0)
    xp = array_module(peak, factor, warmup, *milestones)
    t = _steps(total, xp)
    passed = sum((t >= xp.round(m * total)).astype(float) for m in milestones)
    lr = peak * factor**passed
    return _as_schedule(_with_warmup(lr, peak, warmup, total, xp), name or f"step_{total}")


def inverse_sqrt(
    peak: ArrayLike,
    total: int,
    *,
    warmup: ArrayLike = 0,
    timescale: ArrayLike | None = None,
    name: str | None = None,
) -> Schedule:
    """Inverse square root: ``peak * sqrt(timescale / t)`` for ``t >= timescale``.

    ``timescale`` defaults to ``warmup`` (or 1 without warmup), the usual Transformer schedule.
    """
    total = _check_positive_int("total", total)
    _check_concrete("peak", peak)
    xp = array_module(peak, warmup, timescale)
    timescale = xp.maximum(warmup, 1) if timescale is None else timescale
    _check_concrete("timescale", timescale, low=1.0)
    t = _steps(total, xp)
    lr = peak * xp.sqrt(timescale / xp.maximum(t, timescale))
    return _as_schedule(_with_warmup(lr, peak, warmup, total, xp), name or f"inverse_sqrt_{total}")


def cyclic(
    peak: ArrayLike,
    total: int,
    *,
    period: int,
    final: ArrayLike = 0.0,
    shape: str = "cosine",
    warmup: ArrayLike = 0,
    name: str | None = None,
) -> Schedule:
    """Decay to ``final`` and re-warm to ``peak`` every ``period`` steps (SGDR-style restarts)."""
    total = _check_positive_int("total", total)
    period = _check_positive_int("period", period)
    _check_concrete("peak", peak)
    _check_concrete("final", final)
    xp = array_module(peak, final, warmup)
    t = _steps(total, xp)
    x = xp.mod(xp.maximum(t - warmup, 0), period) / period
    lr = _decay(x, peak, final, _check_shape(shape), xp)
    return _as_schedule(_with_warmup(lr, peak, warmup, total, xp), name or f"cyclic_{total}")


def from_array(lr: ArrayLike, *, name: str = "array") -> Schedule:
    """A schedule from any array of per-step learning rates."""
    return _as_schedule(lr, name)


def from_optax(fn: Callable[[Array], Array], total: int, *, name: str = "optax") -> Schedule:
    """Evaluate an optax schedule (a callable ``step -> lr``) at steps ``0 .. total-1``."""
    total = _check_positive_int("total", total)
    if not callable(fn):
        raise TypeError(f"`fn` must be a callable step -> learning rate, got {type(fn).__name__}.")
    return _as_schedule(jax.vmap(fn)(jnp.arange(total)), name)


def concatenate(*schedules: Schedule, name: str | None = None) -> Schedule:
    """Run schedules one after another (continued training, re-warming, multi-phase runs)."""
    if not schedules:
        raise ValueError("concatenate needs at least one schedule.")
    for s in schedules:
        if not isinstance(s, Schedule):
            raise TypeError(f"concatenate takes Schedule objects, got {type(s).__name__}.")
    xp = array_module(*(s.lr for s in schedules))
    lr = to_device(xp.concatenate([s.lr for s in schedules]))
    return Schedule(lr=lr, name=name or "+".join(s.name for s in schedules))


_BUILDERS: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "cosine": cosine,
    "linear": linear,
    "wsd": wsd,
    "step": step_decay,
    "inverse_sqrt": inverse_sqrt,
    "cyclic": cyclic,
}
_INT_KEYS = {"total", "period"}
_STR_KEYS = {"shape", "name"}
_SEQUENCE_KEYS = {"milestones"}


def _parse_value(key: str, text: str) -> Any:
    if key in _STR_KEYS:
        return text
    try:
        values = tuple(float(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"schedule spec: value of `{key}` is not a number: {text!r}.") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"schedule spec: value of `{key}` is not finite: {text!r}.")
    if key in _INT_KEYS | {"warmup"}:
        if len(values) > 1 or not values[0].is_integer():
            raise ValueError(f"schedule spec: `{key}` must be a whole number of steps, got {text!r}.")
        return int(values[0])
    return values if len(values) > 1 or key in _SEQUENCE_KEYS else values[0]


def _parse_one(spec: str) -> Schedule:
    kind, _, args = spec.strip().partition(":")
    kind = kind.strip()
    if kind not in _BUILDERS:
        raise ValueError(
            f"schedule spec: unknown schedule {kind!r}; known: {', '.join(sorted(_BUILDERS))}."
        )
    kwargs: dict[str, Any] = {}
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"schedule spec: expected key=value, got {item!r} in {spec!r}.")
        if key.strip() in kwargs:
            raise ValueError(f"schedule spec: `{key.strip()}` is given twice in {spec!r}.")
        kwargs[key.strip()] = _parse_value(key.strip(), value.strip())
    for required in ("peak", "total"):
        if required not in kwargs:
            raise ValueError(f"schedule spec {spec!r}: missing `{required}`.")
    peak = kwargs.pop("peak")
    total = kwargs.pop("total")
    accepted = [name for name in inspect.signature(_BUILDERS[kind]).parameters if name not in ("peak", "total")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"schedule spec {spec!r}: {kind} has no key {', '.join(map(repr, unknown))}; its keys: "
                         f"peak, total, {', '.join(accepted)}.")
    return _BUILDERS[kind](peak, total, **kwargs)


def _spec_value(key: str, value: Any) -> str:
    if isinstance(value, str):
        if key not in _STR_KEYS or not value or any(c in value for c in ",=+:"):
            raise ValueError(f"schedule_spec: `{key}` = {value!r} cannot be written in a spec.")
        return value
    values = [float(v) for v in np.atleast_1d(value).tolist()]
    if key in _INT_KEYS | {"warmup"} and len(values) == 1 and values[0].is_integer():
        return str(int(values[0]))
    return "/".join(map(repr, values))  # the shortest text that reads back as the same float


def schedule_spec(kind: str, **keys: Any) -> str:
    """The text spec of ``kind``'s schedule with ``keys``, the inverse of :func:`parse_schedule`:
    ``parse_schedule(schedule_spec(kind, **keys))`` equals ``BUILDER(**keys)`` exactly (numbers are
    written as the shortest text that reads back as the same value; ``tests/test_properties.py``).

    Example:
        >>> schedule_spec("wsd", peak=3e-4, total=24000, warmup=2160, decay_frac=0.2, shape="1-sqrt")
        'wsd:peak=0.0003,total=24000,warmup=2160,decay_frac=0.2,shape=1-sqrt'
    """
    if kind not in _BUILDERS:
        raise ValueError(f"schedule_spec: unknown schedule {kind!r}; known: {', '.join(sorted(_BUILDERS))}.")
    return f"{kind}:" + ",".join(f"{key}={_spec_value(key, value)}" for key, value in keys.items())


def parse_schedule(spec: str) -> Schedule:
    """Build a schedule from a compact text spec, as used on the command line.

    Grammar: ``NAME:key=value,key=value`` with ``NAME`` one of ``constant``, ``cosine``,
    ``linear``, ``wsd``, ``step``, ``inverse_sqrt``, ``cyclic`` and keys the builder's
    arguments (lists separated by ``/``). Phases joined by ``+`` run one after another.

    Example:
        >>> s = parse_schedule("wsd:peak=3e-4,warmup=2160,total=24000,decay_frac=0.2,shape=linear,final=3e-5")
        >>> s.total_steps
        24000
        >>> two_phase = parse_schedule("constant:peak=3e-4,total=8000,warmup=2160+constant:peak=3e-5,total=8000")
        >>> two_phase.total_steps
        16000
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("schedule spec is empty.")
    phases = [_parse_one(p) for p in spec.split("+")]
    return phases[0] if len(phases) == 1 else concatenate(*phases)
