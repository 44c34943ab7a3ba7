import os
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import settings

import optlaws

# CI runs the property tests on a fixed sequence of examples (no flaky builds); elsewhere each run
# draws new ones (and hypothesis keeps what failed to replay it first).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

PROJECT = Path(__file__).resolve().parents[1]

# Most of the suite's time is XLA compilation, and test modules compile many of the same programs
# (each module's are released from memory after it, below). A persistent compilation cache lets
# later modules, and later runs, load them instead: measured on test_cli, test_fitted_files and
# test_runs, 5:29 -> 4:35 with an empty cache, 2:59 with a warm one. JAX_COMPILATION_CACHE_DIR, if
# set, chooses another folder.
if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    jax.config.update("jax_compilation_cache_dir", str(PROJECT / ".pytest_cache" / "jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def shared_data() -> Path | None:
    """The real curves: OPTLAWS_DATA if set, else ../shared/data beside the project."""
    root = Path(os.environ.get("OPTLAWS_DATA", PROJECT.parent / "shared" / "data"))
    return root if (root / "mpl").is_dir() else None


def constant_and_cosine_curves(truth, total: int, steps):
    """The curves of ``truth`` (computed in float64) under a constant and a cosine schedule of
    ``total`` steps at peak LR 1e-3 with a 100-step warmup, observed at ``steps``."""
    curves = []
    for schedule in (optlaws.constant(1e-3, total, warmup=100), optlaws.cosine(1e-3, total, warmup=100)):
        with optlaws.float64():
            loss = np.asarray(truth.loss(schedule, steps))
        curves.append(optlaws.LossCurve.from_arrays(steps, loss, schedule, name=schedule.name))
    return curves


@pytest.fixture
def data_root():
    root = shared_data()
    if root is None:
        pytest.skip("real loss curves not found: set OPTLAWS_DATA or provide ../shared/data")
    return root


@pytest.fixture(autouse=True, scope="module")
def release_compiled_code():
    """Release each test module's compiled XLA executables after it. A whole suite's worth of
    them holds tens of thousands of memory maps on the CPU backend, and past the kernel's limit
    (vm.max_map_count, 65530 by default) XLA crashes with a segmentation fault."""
    yield
    jax.clear_caches()
