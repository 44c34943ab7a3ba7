"""The FITTED.json format: a fitted model that loads back to the same predictions, with what
prediction bands need.

Layout (version 3)::

    {
      "format": "optlaws.fitted",
      "version": 3,
      "optlaws_version": "0.2.0",
      "sha256": "9f2c...",
      "model": {"type": "AdamModel", "fields": {
          "spectrum": {"type": "PowerLawSpectrum", "fields": {"signal_amplitude": 0.74, ...,
                                                              "curvatures": [...]}},
          "loss_inf": 2.60, "reference_batch_size": 1.0, "block": 16, "dynamics": "discrete", ...}},
      "runs": {"batch_size": 200.0, "weight_decay": 0.1, "momentum": 0.9},
      "uncertainty": {"free": [...], "positive": [...], "theta": [...], "covariance": [[...]],
                      "discrepancy": 0.0019},
      "fit": {"free": [...], "values": {...}, "stderr": {...}, "objective": ...,
              "curves": [{"curve": ..., "r2": ..., "mean_rel_error": ..., ...}], "seconds": ...}
    }

Every field of a model is stored (arrays as lists of float64 values, written with 17
significant digits), so loading rebuilds the model exactly. The file is strict JSON: an infinite
field (a spectrum without a noise cutoff) is written as the string ``"inf"``, and a NaN field
refuses to be saved. ``runs`` holds the settings that all
fitted runs shared: the command line uses them for a run that records none. ``uncertainty`` is
the fit's Gaussian over its free parameters (log coordinates for positive ones) and the model
discrepancy (RMS log-loss error on a new run; absent in version-2 files written before it was
added, read as 0: their bands were of the parameters alone); ``fit`` is informational.

``sha256`` is the hash of what predictions depend on (``model``, ``runs`` and ``uncertainty``, as
compact JSON with sorted keys): a hand edit is detected and refused unless loaded with
``trust=True`` (``--trust``). Versions 1 and 2 carry no hash and load without the check.

Version 1 kept the run settings (``batch_size``, ``weight_decay``, ``b1`` / ``momentum``) in the
model: they load into ``runs``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import IO, Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._fit import FitResult
from ._io import text_output
from ._model import AbstractLossModel, ParameterMap
from ._precision import float64
from ._registry import serializable_classes
from ._run import SETTINGS
from ._uncertainty import ParameterUncertainty

__all__ = ["FORMAT", "VERSION", "Fitted", "load_fitted", "load_model", "save_model", "strict_json"]

FORMAT = "optlaws.fitted"
VERSION = 3
# What predictions depend on: the sections the file's hash covers.
HASHED = ("model", "runs", "uncertainty")
# Version 1 stored these run settings as model fields; the names in a Run.
V1_RUN_FIELDS = {"batch_size": "batch_size", "weight_decay": "weight_decay", "b1": "momentum",
                 "momentum": "momentum"}


@dataclasses.dataclass(frozen=True)
class Fitted:
    """A FITTED.json file: the model, and what came with it.

    Attributes:
        model: the fitted loss model.
        run_settings: settings all fitted runs shared (defaults for a run that records none).
        uncertainty: the fit's parameter uncertainty (``None`` when the file has none).
        fit: the fit's report, as stored (informational).
    """

    model: AbstractLossModel
    run_settings: dict[str, float]
    uncertainty: ParameterUncertainty | None
    fit: dict | None

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        """The fitted runs' smallest and largest value of each setting (:attr:`FitResult.ranges`;
        files written before them have the peak LR's or none)."""
        fit = self.fit or {}
        stored = fit.get("ranges") or ({"peak_lr": fit["peak_lr_range"]} if "peak_lr_range" in fit else {})
        try:
            return {str(name): (float(low), float(high)) for name, (low, high) in stored.items()}
        except (TypeError, ValueError, AttributeError):
            return {}  # informational: a damaged entry only loses the extrapolation warning


# Fields added after their class was first stored, whose constructor defaults reproduce the older
# files' predictions (the stability mode, the area ceiling, the peak-LR floor and the sharpening off,
# the weight norm's equilibrium proportional to the LR): a file may lack them.
# Any other missing field is an error.
LATER_FIELDS = {"sharpness_init", "sharpness_floor", "flattening_rate", "area_ceiling", "ceiling_exponent",
                "peak_floor", "norm_exponent", "reference_weight_decay", "sharpening_start", "sharpening_time",
                "sharpening_clock_exponent"}
# Fields added later that equalled another field before: a file without one predicts as before.
LATER_FIELDS_COPIED = {"signal_mobility_exponent": "mobility_exponent"}
# Fields of unreleased experiments that files may carry, switched off, and why they are gone.
RETIRED_FIELDS = {
    "curvature_ceiling": "a cap on the curvatures at c / (peak LR), replaced by `area_ceiling` because its "
                         "optimal LR grew with the horizon (docs/model.md); refit with `area_ceiling`",
}
# Largest integration block a file may ask for: beyond it, a schedule's shape is averaged away.
MAX_BLOCK = 4096

# Strict JSON has no infinities: a field that is infinite by design (a spectrum without a noise
# cutoff) is stored as one of these strings.
INFINITIES = {"inf": math.inf, "-inf": -math.inf}


def _encode_number(value: float, where: str) -> float | str:
    if math.isnan(value):
        raise ValueError(f"cannot store the model: `{where}` is NaN.")
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _encode(value: Any, where: str = "model") -> Any:
    if isinstance(value, eqx.Module):
        fields = {f.name: _encode(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
        return {"type": type(value).__name__, "fields": fields}
    if isinstance(value, (jnp.ndarray, np.ndarray, np.generic, float)) and not isinstance(value, bool):
        array = np.asarray(value, dtype=np.float64)
        if array.ndim == 0:
            return _encode_number(float(array), where)
        return [_encode(row, where) for row in array]  # nested lists keep the array's shape
    if isinstance(value, (int, str, bool)) or value is None:
        return value
    raise TypeError(f"cannot store `{where}` of type {type(value).__name__}.")


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``: standard JSON, which strict
    parsers (JavaScript, jq) read, has neither NaN nor Infinity."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _decode(node: Any, run_settings: dict | None = None, where: str = "model") -> Any:
    """Rebuild a stored object; with ``run_settings``, version-1 run fields move there. Every
    field the class stores must be present (except :data:`LATER_FIELDS`, and those of
    :data:`LATER_FIELDS_COPIED`, which take their former value): a missing one would
    silently take the constructor's default and change every prediction."""
    if isinstance(node, dict) and "type" in node:
        classes = serializable_classes()
        cls = classes.get(node["type"])
        if cls is None:
            raise ValueError(f"`{where}`: unknown type {node['type']!r}; known: {', '.join(sorted(classes))}.")
        if not isinstance(node.get("fields"), dict):
            raise ValueError(f"`{where}.fields` must be an object of the {node['type']}'s fields.")
        fields = {name: _decode(v, run_settings, f"{where}.{name}") for name, v in node["fields"].items()}
        if run_settings is not None:
            for old, new in V1_RUN_FIELDS.items():
                if old in fields:
                    run_settings[new] = float(fields.pop(old))
        for name, why in RETIRED_FIELDS.items():
            if name in fields and fields.pop(name) != 0:
                raise ValueError(f"`{where}.{name}` is no longer supported: {why}.")
        stored = {f.name for f in dataclasses.fields(cls)}
        for name, source in LATER_FIELDS_COPIED.items():
            if name in stored and name not in fields and source in fields:
                fields[name] = fields[source]
        missing = sorted(stored - set(fields) - LATER_FIELDS)
        if missing:
            raise ValueError(f"`{where}` ({node['type']}) lacks {', '.join(f'`{m}`' for m in missing)}.")
        unknown = sorted(set(fields) - stored)
        if unknown:
            raise ValueError(f"`{where}` ({node['type']}) has unknown field(s) {', '.join(unknown)}.")
        try:
            return cls(**fields)
        except (ValueError, TypeError, ArithmeticError) as e:  # a field its constructor refuses
            raise ValueError(f"`{where}` ({node['type']}): its fields do not build one: {e}") from None
    if isinstance(node, list):
        try:
            return np.asarray(_numbers(node), dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"`{where}` must be an array of numbers.") from None
    if isinstance(node, str) and node in INFINITIES:
        return INFINITIES[node]
    return node


def _check_model(model: AbstractLossModel) -> None:
    """Every stored number of ``model`` is a number (no NaN), every array non-empty, no positive
    parameter negative, and the integration block a sane size."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(model):
        name = "model" + jax.tree_util.keystr(path)
        if eqx.is_array(leaf):
            values = np.asarray(leaf)
            if values.size == 0:
                raise ValueError(f"`{name}` is empty.")
            if np.isnan(values).any():
                raise ValueError(f"`{name}` is NaN.")
    for name, parameter in model.parameters().items():
        value = np.asarray(parameter.get(model))
        if not np.isfinite(value).all() and name != "noise_cutoff":
            raise ValueError(f"parameter `{name}` is {float(value)!r}; it must be finite.")
        if parameter.positive and (value < 0).any():
            raise ValueError(f"parameter `{name}` is {float(value)!r}; it cannot be negative.")
    block = getattr(model, "block", 1)
    if not 1 <= block <= MAX_BLOCK:
        raise ValueError(f"`model.block` is {block}; it must be between 1 and {MAX_BLOCK} steps.")


def _check_uncertainty(uncertainty: ParameterUncertainty, model: AbstractLossModel) -> None:
    """Free parameters of the model, a finite mean and covariance (their shapes are checked by
    :class:`ParameterUncertainty`), a finite non-negative discrepancy."""
    unknown = sorted(set(uncertainty.parameters.names) - set(model.parameters()))
    if unknown:
        raise ValueError(f"`uncertainty.free` names {', '.join(unknown)}, not parameters of the model.")
    for key in ("mean", "covariance", "discrepancy"):
        if not np.isfinite(np.asarray(getattr(uncertainty, key))).all():
            raise ValueError(f"`uncertainty` has a non-finite {key}.")
    if float(uncertainty.discrepancy) < 0:
        raise ValueError("`uncertainty.discrepancy` is negative.")


def _numbers(node: Any) -> Any:
    """A stored (nested) list with its ``"inf"`` strings back as infinities."""
    if isinstance(node, list):
        return [_numbers(v) for v in node]
    return INFINITIES.get(node, node) if isinstance(node, str) else node


def _shared_settings(fit_result: FitResult) -> dict[str, float]:
    """The run settings that every fitted run had."""
    runs = fit_result.problem.runs
    shared = {}
    for name in SETTINGS:
        values = getattr(runs, name)
        if values is not None and np.unique(np.asarray(values)).size == 1:
            shared[name] = float(np.asarray(values)[0])
    return shared


def save_model(path: str | Path | IO, model: AbstractLossModel, fit_result: FitResult | None = None) -> None:
    """Write ``model`` (and what is known about its fit, with its parameter uncertainty) to a
    FITTED.json file (atomically), or to an open text stream."""
    from . import __version__

    document = {
        "format": FORMAT,
        "version": VERSION,
        "optlaws_version": __version__,
        "model": _encode(model),
    }
    if fit_result is not None:
        document["runs"] = _shared_settings(fit_result)
        parameters = fit_result.problem.parameters
        document["uncertainty"] = strict_json({
            "free": list(parameters.names),
            "positive": list(parameters.positive),
            "theta": np.asarray(fit_result.theta, dtype=np.float64).tolist(),
            "covariance": np.asarray(fit_result.covariance, dtype=np.float64).tolist(),
            "discrepancy": fit_result.discrepancy,
        })
        document["fit"] = strict_json({
            "free": list(fit_result.free),
            "values": fit_result.values,
            "stderr": fit_result.stderr,
            "objective": fit_result.objective,
            "curves": [m.as_dict() for m in fit_result.curves],
            "seconds": fit_result.seconds,
            "ranges": {name: list(bounds) for name, bounds in fit_result.ranges.items()},
        })
    document["sha256"] = _content_hash(document)
    text = json.dumps(document, indent=1, allow_nan=False) + "\n"
    with text_output(path) as f:
        f.write(text)


def _content_hash(document: dict) -> str:
    """SHA-256 of the sections predictions depend on, as compact JSON with sorted keys (the same
    text for a document and its JSON round trip)."""
    content = {name: document.get(name) for name in HASHED}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def load_fitted(path: str | Path, *, trust: bool = False) -> Fitted:
    """Read a FITTED.json file written by :func:`save_model` (format version 1, 2 or 3).

    Every field is checked (present, of its type, finite, in its domain) and, in version 3, the
    file's hash: a file edited by hand is refused unless ``trust=True``.
    """
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
    if version not in (1, 2, VERSION):
        raise ValueError(
            f"{path}: fitted-model format version {version!r}; this optlaws reads versions 1 to {VERSION}."
        )
    try:
        with float64():  # float64 leaves: the exact stored values
            model, run_settings, uncertainty = _load_document(document, version)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        what = f"missing {e}" if isinstance(e, KeyError) else str(e)
        raise ValueError(f"{path}: not a valid fitted model: {what}") from None
    if version >= 3 and not trust and document.get("sha256") != _content_hash(document):
        what = "has no `sha256`" if "sha256" not in document else "does not match its `sha256`"
        raise ValueError(f"{path}: the file {what}: it was edited after optlaws wrote it. Refit, or load "
                         "a deliberate edit with trust=True (command line: --trust).")
    return Fitted(model=model, run_settings=run_settings, uncertainty=uncertainty, fit=document.get("fit"))


def _norm_unit_of_older_files(model: AbstractLossModel, node: dict, run_settings: dict) -> AbstractLossModel:
    """A file written before ``reference_weight_decay``: its weight norm settled alike for every
    weight decay, so it predicts as before at the weight decay its runs shared, which becomes the
    norm's unit (where they did not share one, the class default stands)."""
    if "reference_weight_decay" in node["fields"] or not hasattr(model, "reference_weight_decay"):
        return model
    if run_settings.get("weight_decay", 0.0) > 0:
        return eqx.tree_at(lambda m: m.reference_weight_decay, model,
                           jnp.asarray(run_settings["weight_decay"], dtype=float))
    return model


def _load_document(document: dict, version: int):
    """The model, run settings and uncertainty of a parsed FITTED.json, each checked."""
    if not isinstance(document.get("model"), dict):
        raise ValueError("no `model` object.")
    run_settings = {} if version == 1 else document.get("runs", {})
    if not isinstance(run_settings, dict) or set(run_settings) - set(SETTINGS):
        raise ValueError(f"`runs` must be an object with keys among {', '.join(SETTINGS)}.")
    run_settings = {name: float(value) for name, value in run_settings.items()}
    model = _decode(document["model"], run_settings if version == 1 else None)
    if not isinstance(model, AbstractLossModel):
        raise ValueError("the stored object is not a loss model.")
    _check_model(model)
    model = _norm_unit_of_older_files(model, document["model"], run_settings)
    stored = document.get("uncertainty")
    uncertainty = None
    if stored is not None:
        if not isinstance(stored, dict):
            raise ValueError("`uncertainty` must be an object.")
        parameters = ParameterMap(tuple(stored["free"]), tuple(bool(p) for p in stored["positive"]))
        uncertainty = ParameterUncertainty(parameters, jnp.asarray(_numbers(stored["theta"]), dtype=float),
                                           jnp.asarray(_numbers(stored["covariance"]), dtype=float),
                                           jnp.asarray(stored.get("discrepancy", 0.0), dtype=float))
        _check_uncertainty(uncertainty, model)
    return model, run_settings, uncertainty


def load_model(path: str | Path, *, trust: bool = False) -> AbstractLossModel:
    """Read the model of a FITTED.json file (see :func:`load_fitted` for the rest)."""
    return load_fitted(path, trust=trust).model
