"""Floating-point precision at the library's boundary: fitting, prediction and loading run in float64.

This is the one place where precision is switched. Models and schedules follow the dtype of their
inputs, so user code keeps JAX's default (float32) and batched float32 evaluation stays within
1e-4 relative of float64 (``tests/test_runs.py``); ``fit``, ``predict``, ``evaluate`` and
``load_model`` enter :func:`float64` and cast the model with :func:`in_float64`.
"""

from __future__ import annotations

import contextlib

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["float64", "in_float64"]


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
    enable = getattr(jax, "enable_x64", None)
    if enable is None:  # JAX < 0.8
        from jax.experimental import enable_x64 as enable
    return enable(True)


def in_float64(tree):
    """``tree`` with every floating-point array leaf cast to float64 (call inside :func:`float64`)."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.float64) if eqx.is_inexact_array(x) else x, tree)
