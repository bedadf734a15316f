"""The README is executable documentation: every Python block runs as shown, on its own.

Each block is run alone, in a fresh namespace and a temporary folder (so a block that forgets an
import fails, as it would for a user who copies it), with the work shrunk by a fixture: tasks
train at most 2 epochs on 300 examples, comparisons run one seed, studies two trials. The blocks
are also checked statically: every name they use is defined or imported in the block, and every
import is used, so removing any import makes the check fail (tested too).
"""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
OWN_PARTS = "### Your own model, data, loss and metric"


def _blocks() -> list[tuple[str, str]]:
    """Every ```python block of the README with the heading it is under."""
    text = README.read_text()
    out = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        headings = re.findall(r"^#{2,4} (.+)$", text[: match.start()], re.M)
        out.append((headings[-1] if headings else "top", match.group(1)))
    return out


BLOCKS = _blocks()
IDS = [
    f"{i}-{re.sub(r'[^a-z0-9]+', '-', h.lower()).strip('-')[:30]}"
    for i, (h, _) in enumerate(BLOCKS)
]


def _names(source: str) -> tuple[set[str], dict[str, int]]:
    """(names used but never defined, imported names -> the line of their import) of a block."""
    tree = ast.parse(source)
    bound, used = set(dir(builtins)), set()
    imported: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                imported[(alias.asname or alias.name).split(".")[0]] = node.lineno
        elif isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return used - bound - set(imported), imported


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 10
    assert sum(heading == OWN_PARTS.removeprefix("### ") for heading, _ in BLOCKS) == 3


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=IDS)
def test_a_block_defines_or_imports_every_name_and_uses_every_import(index):
    undefined, imported = _names(BLOCKS[index][1])
    assert not undefined, f"used but not imported or defined: {sorted(undefined)}"
    used = _names_used(BLOCKS[index][1])
    unused = sorted(set(imported) - used)
    assert not unused, f"imported but not used: {unused}"


def _names_used(source: str) -> set[str]:
    return {
        n.id
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=IDS)
def test_removing_any_import_of_a_block_is_caught(index):
    source = BLOCKS[index][1]
    tree = ast.parse(source)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imports, "a block that runs alone imports what it uses"
    lines = source.splitlines()
    for node in imports:
        cut = lines[: node.lineno - 1] + lines[node.end_lineno :]
        undefined, _ = _names("\n".join(cut))
        assert undefined, f"removing line {node.lineno} ({lines[node.lineno - 1]!r}) goes unseen"


# =============================================================================================
# Running the blocks
# =============================================================================================


@pytest.fixture
def shrunk(monkeypatch, tmp_path):
    """Every block's work made small, in a folder of its own, logging to a MLflow store there."""
    import optuna

    import hpo

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MPLBACKEND", "Agg")

    post_init = hpo.Task.__post_init__

    def small(self: hpo.Task) -> None:
        post_init(self)
        object.__setattr__(self, "epochs", min(self.epochs, 2))
        object.__setattr__(self, "device", "cpu")
        if self.data is None and self.dataset in ("mnist1d", "digits"):
            object.__setattr__(self, "train_size", min(self.train_size or 300, 300))

    monkeypatch.setattr(hpo.Task, "__post_init__", small)
    compare = hpo.compare
    monkeypatch.setattr(hpo, "compare", lambda *a, **k: compare(*a, **{**k, "seeds": 1}))
    optimize = optuna.Study.optimize

    def few(self, func, n_trials=None, *a, **k):  # noqa: ANN001, ANN202
        return optimize(self, func, 2 if n_trials is None else min(n_trials, 2), *a, **k)

    monkeypatch.setattr(optuna.Study, "optimize", few)


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=IDS)
def test_a_block_runs_as_shown(index, shrunk, capsys):
    heading, source = BLOCKS[index]
    exec(compile(source, f"README block {index} ({heading})", "exec"), {"__name__": "__main__"})
    if heading == OWN_PARTS.removeprefix("### "):  # the worked examples print their result
        out = capsys.readouterr().out
        assert out.strip(), "the example prints its result"
        if "model=my_cnn" in source:
            assert out.startswith("finished best val")
        if "streaming=True" in source:
            assert out.startswith("StreamingSplits finished")
