"""The README's worked examples of a user's own parts run as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "### Your own model, data, loss and metric"


def _blocks() -> list[str]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n### ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end], re.S)


def test_the_section_has_the_three_examples():
    blocks = _blocks()
    assert len(blocks) == 3
    assert "model=my_cnn" in blocks[0]
    assert "load_diabetes" in blocks[1] and 'metric="mse"' in blocks[1]
    assert "streaming=True" in blocks[2]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["own-cnn", "diabetes-mse", "streaming"])
def test_a_readme_example_runs_as_shown(index, capsys):
    exec(compile(_blocks()[index], f"README example {index + 1}", "exec"), {})
    out = capsys.readouterr().out
    assert out.strip(), "the example prints its result"
    if index == 0:
        assert out.startswith("finished best val")
    if index == 2:
        assert out.startswith("StreamingSplits finished")
