"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
#: A fenced Python block, and the HTML comment right before it, if any.
BLOCK = re.compile(r"(<!--[^\n]*-->\n)?```python\n(.*?)```", re.DOTALL)


def _examples() -> list:
    text = README.read_text(encoding="utf-8")
    cases = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start(2))
        skip = match.group(1) and "not run" in match.group(1)
        marks = [pytest.mark.skip(reason=match.group(1).strip())] if skip else []
        cases.append(pytest.param(match.group(2), id=f"line{line}", marks=marks))
    return cases


@pytest.mark.parametrize("code", _examples())
def test_readme_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
