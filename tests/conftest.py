import os
from pathlib import Path

import jax
import pytest

PROJECT = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    """The real curves: OPTLAWS_DATA if set, else ../shared/data beside the project."""
    root = Path(os.environ.get("OPTLAWS_DATA", PROJECT.parent / "shared" / "data"))
    return root if (root / "mpl").is_dir() else None


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
