"""The FITTED.json format: a fitted model that loads back to the same predictions.

Layout (version 1)::

    {
      "format": "optlaws.fitted",
      "version": 1,
      "optlaws_version": "0.1.0",
      "model": {"type": "AdamModel", "fields": {
          "spectrum": {"type": "PowerLawSpectrum", "fields": {"signal_amplitude": 0.74, ...,
                                                              "curvatures": [...]}},
          "loss_inf": 2.60, "b1": 0.9, "block": 16, "dynamics": "discrete", ...}},
      "fit": {"free": [...], "values": {...}, "stderr": {...}, "objective": ...,
              "curves": [{"curve": ..., "r2": ..., "mean_rel_error": ..., ...}], "seconds": ...}
    }

Every field of a model is stored (arrays as lists of float64 values, written with 17
significant digits), so loading rebuilds the model exactly; ``fit`` is informational.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._fit import FitResult
from ._model import AbstractLossModel
from ._registry import serializable_classes

__all__ = ["FORMAT", "VERSION", "load_model", "save_model"]

FORMAT = "optlaws.fitted"
VERSION = 1


def _encode(value: Any) -> Any:
    if isinstance(value, eqx.Module):
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": type(value).__name__, "fields": fields}
    if isinstance(value, (jnp.ndarray, np.ndarray, np.generic)):
        array = np.asarray(value, dtype=np.float64)
        return float(array) if array.ndim == 0 else array.tolist()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    raise TypeError(f"cannot store a model field of type {type(value).__name__}.")


def _decode(node: Any) -> Any:
    if isinstance(node, dict) and "type" in node and "fields" in node:
        classes = serializable_classes()
        cls = classes.get(node["type"])
        if cls is None:
            raise ValueError(
                f"unknown model type {node['type']!r} in fitted file; known: {', '.join(sorted(classes))}."
            )
        fields = {name: _decode(v) for name, v in node["fields"].items()}
        return cls(**fields)
    if isinstance(node, list):
        return np.asarray(node, dtype=np.float64)
    return node


def save_model(path: str | Path, model: AbstractLossModel, fit_result: FitResult | None = None) -> None:
    """Write ``model`` (and what is known about its fit) to a FITTED.json file."""
    from . import __version__

    document = {
        "format": FORMAT,
        "version": VERSION,
        "optlaws_version": __version__,
        "model": _encode(model),
    }
    if fit_result is not None:
        document["fit"] = {
            "free": list(fit_result.free),
            "values": fit_result.values,
            "stderr": fit_result.stderr,
            "objective": fit_result.objective,
            "curves": [m.as_dict() for m in fit_result.curves],
            "seconds": fit_result.seconds,
        }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, allow_nan=True) + "\n")


def load_model(path: str | Path) -> AbstractLossModel:
    """Read a model written by :func:`save_model`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such fitted-model file: {path}")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a fitted-model file (invalid JSON: {e}).") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path}: not an optlaws fitted-model file (no \"format\": \"{FORMAT}\").")
    version = document.get("version")
    if version != VERSION:
        raise ValueError(
            f"{path}: fitted-model format version {version!r}; this optlaws reads version {VERSION}."
        )
    with jax.enable_x64(True):  # float64 leaves: the exact stored values
        model = _decode(document["model"])
    if not isinstance(model, AbstractLossModel):
        raise ValueError(f"{path}: the stored object is not a loss model.")
    return model
