import os
from pathlib import Path

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
