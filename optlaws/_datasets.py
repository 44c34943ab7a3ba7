"""Public loss-curve datasets: download once, cache, or read a local copy.

Where the files come from, in order:

1. the ``root`` argument, or the ``OPTLAWS_DATA`` environment variable: a folder laid out as
   ``mpl/{25M,100M,400M}/NAME.csv`` (the layout of the project's shared data folder);
2. the cache folder (``OPTLAWS_CACHE``, default ``~/.cache/optlaws``), filled on first use by
   downloading from the authors' public repository.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from ._curves import LossCurve
from ._io import read_csv
from ._schedules import Schedule, concatenate, constant, cosine, wsd

__all__ = ["MPL_CURVES", "data_path", "load_mpl", "mpl_schedule"]

MPL_URL = "https://raw.githubusercontent.com/thu-yao-01-luo/MultiPowerLaw/main/loss_curve_repo/csv_{size}/{name}.csv"
MPL_SIZES = ("25M", "100M", "400M")
MPL_CURVES = (
    "constant_24000",
    "cosine_24000",
    "constant_72000",
    "cosine_72000",
    "wsd_20000_24000",
    "wsdld_20000_24000",
    "wsdcon_3",
    "wsdcon_9",
    "wsdcon_18",
)
MPL_PEAK, MPL_FINAL, MPL_WARMUP = 3e-4, 3e-5, 2160


def mpl_schedule(name: str) -> Schedule:
    """The exact schedule behind a Multi-Power Law curve (Luo et al., 2025, Table 4).

    All runs: AdamW, linear warmup over 2160 steps to 3e-4. ``constant_T``; ``cosine_T`` to 3e-5;
    ``wsd_20000_24000`` geometric and ``wsdld_20000_24000`` linear decay to 3e-5 over the last 4000
    of 24000 steps; ``wsdcon_X``: 3e-4 until 8000, then ``X``e-5 until 16000.
    """
    kind, _, rest = name.partition("_")
    if name not in MPL_CURVES:
        raise ValueError(f"unknown Multi-Power Law curve {name!r}; known: {', '.join(MPL_CURVES)}.")
    if kind == "constant":
        return constant(MPL_PEAK, int(rest), warmup=MPL_WARMUP, name=name)
    if kind == "cosine":
        return cosine(MPL_PEAK, int(rest), final=MPL_FINAL, warmup=MPL_WARMUP, name=name)
    if kind in ("wsd", "wsdld"):
        shape = "exponential" if kind == "wsd" else "linear"
        return wsd(MPL_PEAK, 24000, decay_frac=4000 / 24000, shape=shape, final=MPL_FINAL,
                   warmup=MPL_WARMUP, name=name)
    second = int(rest) * 1e-5
    return concatenate(constant(MPL_PEAK, 8000, warmup=MPL_WARMUP), constant(second, 8000), name=name)


def _cache_root() -> Path:
    return Path(os.environ.get("OPTLAWS_CACHE", Path.home() / ".cache" / "optlaws"))


def data_path(relative: str, url: str, *, root: str | Path | None = None) -> Path:
    """Local path of a dataset file: from ``root``/``OPTLAWS_DATA`` if set, else cached download."""
    root = root if root is not None else os.environ.get("OPTLAWS_DATA")
    if root is not None:
        path = Path(root) / relative
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found in the local data folder {root} (set by the `root` argument or "
                "OPTLAWS_DATA); unset it to download into the cache instead."
            )
        return path
    path = _cache_root() / relative
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            partial.write_bytes(response.read())
    except (urllib.error.URLError, OSError) as e:
        raise ConnectionError(
            f"could not download {url} ({e}); download it yourself to {path}, or point "
            "OPTLAWS_DATA at a folder that holds it."
        ) from None
    partial.replace(path)
    return path


def load_mpl(size: str, name: str, *, root: str | Path | None = None) -> LossCurve:
    """A loss curve of the Multi-Power Law paper (Luo et al., 2025; MIT licence).

    GPT-style models of 25M, 100M or 400M parameters trained with AdamW; the loss is logged
    every 128 steps after warmup. The curve carries the exact schedule of :func:`mpl_schedule`.

    Example:
        >>> curve = optlaws.load_mpl("100M", "cosine_24000")  # doctest: +SKIP
    """
    if size not in MPL_SIZES:
        raise ValueError(f"`size` must be one of {MPL_SIZES}, got {size!r}.")
    schedule = mpl_schedule(name)
    number = size.removesuffix("M")
    path = data_path(f"mpl/{size}/{name}.csv", MPL_URL.format(size=number, name=name), root=root)
    curve = read_csv(path, schedule=schedule, name=name)
    return LossCurve(curve.steps, curve.loss, schedule, name, {**curve.metadata, "model_size": size,
                                                              "optimizer": "adamw"})
