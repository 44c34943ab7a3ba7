"""Shared helpers of the benchmark scripts: where the data is, and RESULTS.md sections."""

from __future__ import annotations

import os
import platform
import re
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import optlaws

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"


def data_root() -> Path:
    """OPTLAWS_DATA, else the project's shared data folder beside the repository."""
    root = Path(os.environ.get("OPTLAWS_DATA", HERE.parent.parent / "shared" / "data"))
    if not (root / "mpl").is_dir():
        raise SystemExit(f"real loss curves not found at {root}: set OPTLAWS_DATA")
    return root


def schaipp_runs(root: Path, lr: str = "*", horizon: int | None = None, since: int = 1000) -> list:
    """The 124M runs of Schaipp et al. at peak LR ``lr`` (a file-name fragment such as
    ``"0.001"``; every LR by default) and horizon ``horizon`` (all by default), validation loss
    from step ``since``; runs with fewer than 10 points there are left out."""
    curves = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fragments are reported by read_json; expected here
        for path in sorted((root / "schaipp124m").glob(f"*_lr{lr}_*.json")):
            if horizon is not None and f"_iter{horizon}_" not in path.name:
                continue
            curve = optlaws.read_json(path)
            if np.sum(curve.steps >= since) >= 10:
                curves.append(curve.since(since))
    return curves


def spearman(a, b) -> float:
    """Spearman rank correlation of two sequences (no ties expected)."""
    ranks = [np.argsort(np.argsort(np.asarray(x))) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} ({jax.default_backend()})"


def report(name: str, text: str, *, write: bool = True) -> None:
    """Print a benchmark's ``text`` and, with ``write``, make it the section ``name`` of
    RESULTS.md (between HTML comment markers)."""
    print(text)
    if not write:
        return
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    updated = pattern.sub(lambda _: block, current) if pattern.search(current) else current.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(updated)


def mlp_init(key, sizes, scale: float = 1.0) -> list:
    """Weights ``scale * N(0, 1 / fan_in)`` and zero biases of an MLP with layer widths ``sizes``
    (the real sweeps' networks: ``divergence.py``, ``weight_decay.py``)."""
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, sub = jax.random.split(key)
        layers.append((scale * jax.random.normal(sub, (fan_in, fan_out)) / jnp.sqrt(fan_in), jnp.zeros(fan_out)))
    return layers


def mlp(layers, x, activation=jax.nn.relu):
    """The MLP ``layers`` applied to ``x``: ``activation`` after every layer but the last."""
    for w, b in layers[:-1]:
        x = activation(x @ w + b)
    w, b = layers[-1]
    return x @ w + b
