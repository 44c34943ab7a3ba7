"""Shared helpers of the benchmark scripts: where the data is, and RESULTS.md sections."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import jax

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"


def data_root() -> Path:
    """OPTLAWS_DATA, else the project's shared data folder beside the repository."""
    root = Path(os.environ.get("OPTLAWS_DATA", HERE.parent.parent / "shared" / "data"))
    if not (root / "mpl").is_dir():
        raise SystemExit(f"real loss curves not found at {root}: set OPTLAWS_DATA")
    return root


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} ({jax.default_backend()})"


def write_section(name: str, text: str) -> None:
    """Replace the section ``name`` of RESULTS.md (between HTML comment markers) with ``text``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    updated = pattern.sub(lambda _: block, current) if pattern.search(current) else current.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(updated)
