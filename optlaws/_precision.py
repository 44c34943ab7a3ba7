"""Floating-point precision at the library's boundary: fitting, prediction and loading run in float64.

This is the one place where precision is switched. Models and schedules follow the dtype of their
inputs, so user code keeps JAX's default (float32) and batched float32 evaluation stays within
1e-4 relative of float64 (``tests/test_runs.py``); ``fit``, ``predict``, ``evaluate`` and
``load_model`` enter :func:`float64` and cast the model with :func:`in_float64`.

Host data crosses into JAX here too: :func:`array_module` picks NumPy for work on concrete host
arrays (eager ``jax.numpy`` would compile each operation for every new shape) and
:func:`to_device` hands the result to JAX in its default precision.
"""

from __future__ import annotations

import contextlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["PRECISIONS", "array_module", "canonical", "computing_in", "float64", "in_float64", "to_device"]

# What a caller may ask a batch evaluation (optlaws.rank) to compute in.
PRECISIONS = ("float64", "float32")


def float64() -> contextlib.AbstractContextManager:
    """A context in which JAX computes in float64 (``jax.enable_x64``, or its experimental
    predecessor on JAX < 0.8), for user code that evaluates a model directly in double precision.

    Example:
        >>> import optlaws
        >>> with optlaws.float64():
        ...     loss = optlaws.AdamModel().loss(optlaws.constant(1e-3, 100), [100])
        >>> str(loss.dtype)
        'float64'
    """
    return _x64(True)


def _x64(enabled: bool) -> contextlib.AbstractContextManager:
    """``jax.enable_x64(enabled)``, or its experimental predecessor on JAX < 0.8."""
    enable = getattr(jax, "enable_x64", None)
    if enable is None:  # JAX < 0.8
        from jax.experimental import enable_x64 as enable
    return enable(enabled)


def computing_in(precision: str):
    """``(context, cast)``: the context in which JAX computes in ``precision`` (one of
    :data:`PRECISIONS`), and how a model must be cast inside it (:func:`in_float64`, or
    :func:`canonical` for float32, with float64 switched off)."""
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}, got {precision!r}.")
    if precision == "float64":
        return float64(), in_float64
    return _x64(False), canonical


def array_module(*arguments):
    """``jax.numpy`` if any argument is traced, else NumPy: for work on concrete data, which eager
    ``jax.numpy`` would compile again, operation by operation, for every new array shape (on the
    CPU a schedule of a new length took 0.7 s to build, a divergence check of a new length 1 s; on
    an H200, 0.08-0.25 s per operation and shape). Concrete arrays an accelerator holds make a round
    trip through the host instead, which costs far less (``test_concrete_arguments_compile_nothing``
    runs on either)."""
    return jnp if any(isinstance(a, jax.core.Tracer) for a in arguments) else np


def to_device(values):
    """``values`` as a JAX array, cast on the host to JAX's current default precision and
    transferred: ``jnp.asarray`` of a NumPy array compiles a copy (and a conversion) for every new
    shape. JAX arrays and tracers pass through unchanged. A value too large for float32 becomes
    ``inf``, as in ``jnp.asarray``, for the caller's finiteness check to name."""
    if isinstance(values, (jax.Array, jax.core.Tracer)):
        return values
    values = np.asarray(values)
    with np.errstate(over="ignore"):
        return jax.device_put(values.astype(jax.dtypes.canonicalize_dtype(values.dtype), copy=False))


def in_float64(tree):
    """``tree`` with every floating-point array leaf cast to float64 (call inside :func:`float64`)."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.float64) if eqx.is_inexact_array(x) else x, tree)


def canonical(tree):
    """``tree`` with every floating-point array leaf in JAX's current default precision: a model
    fitted in float64 and evaluated outside :func:`float64` computes in float32 throughout (JAX
    0.4.31 fails to lower a loop that mixes the two)."""

    def cast(x):
        dtype = jax.dtypes.canonicalize_dtype(x.dtype)
        # Through NumPy: JAX treats float64 -> float32 as a no-op while float64 is off.
        return x if x.dtype == dtype else jnp.asarray(np.asarray(x), dtype=dtype)

    return jax.tree.map(lambda x: cast(x) if eqx.is_inexact_array(x) else x, tree)
