"""The docs cannot rot: every Python block of the README and the docs site, and every docstring
example, runs."""

import doctest
import importlib
import pkgutil
import re

import pytest
from conftest import PROJECT, shared_data

import optlaws

PAGES = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("page", [p for p in PAGES if PYTHON_BLOCK.search(p.read_text())], ids=lambda p: p.name)
def test_the_python_blocks_of_each_page_run(page, monkeypatch, tmp_path):
    code = "\n".join(PYTHON_BLOCK.findall(page.read_text()))  # one page's blocks build on each other
    if "load_mpl" in code:
        root = shared_data()
        if root is None:
            pytest.skip("the page loads the Multi-Power Law curves: set OPTLAWS_DATA or provide ../shared/data")
        monkeypatch.setenv("OPTLAWS_DATA", str(root))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(page), "exec"), {"__name__": f"docs:{page.name}"})


@pytest.mark.parametrize("module", [m.name for m in pkgutil.walk_packages(optlaws.__path__, "optlaws.")])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), extraglobs={"optlaws": optlaws},
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
