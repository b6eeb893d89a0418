"""The layering holds: an AST walk over every module of the package checks who may import whom.

physics is the bottom layer (it may use only :mod:`mridiff.utils`); tasks build problems from physics and data
and never see training or the run configuration; inference samples and never imports the training stack (which
pulls in Lightning); the file workflows (read -> run -> write) use inference, io, data and physics but never
training, and nothing below them imports them; nothing below the commands imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mridiff"

# layer -> mridiff sub-packages / modules it must never import (TYPE_CHECKING imports included)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "physics": ("mridiff.data", "mridiff.diffusion", "mridiff.models", "mridiff.tasks", "mridiff.training",
                "mridiff.inference", "mridiff.io", "mridiff.commands", "mridiff.cli", "mridiff.config",
                "mridiff.errors", "mridiff.metrics", "mridiff.evaluation", "mridiff.prep", "mridiff.workflows"),
    "diffusion": ("mridiff.training", "mridiff.inference", "mridiff.commands", "mridiff.cli", "mridiff.config",
                  "mridiff.io", "mridiff.models", "mridiff.data", "mridiff.workflows"),
    "tasks": ("mridiff.training", "mridiff.config", "mridiff.inference", "mridiff.commands", "mridiff.cli",
              "mridiff.diffusion", "mridiff.workflows"),
    "models": ("mridiff.training", "mridiff.inference", "mridiff.commands", "mridiff.cli", "mridiff.tasks",
               "mridiff.workflows"),
    "inference": ("mridiff.training", "mridiff.commands", "mridiff.cli", "mridiff.config", "mridiff.workflows"),
    "io": ("mridiff.training", "mridiff.inference", "mridiff.commands", "mridiff.cli", "mridiff.workflows"),
    "data": ("mridiff.training", "mridiff.inference", "mridiff.commands", "mridiff.cli", "mridiff.tasks",
             "mridiff.diffusion", "mridiff.workflows"),
    "training": ("mridiff.commands", "mridiff.cli", "mridiff.inference", "mridiff.workflows"),
    # file workflows: read -> run (inference) -> write (io); never the training stack or the command line
    "workflows": ("mridiff.training", "mridiff.commands", "mridiff.cli", "mridiff.config"),
}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every module ``path`` imports (relative imports resolved), at any depth of the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def violations(layer: str, root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted((root / layer).rglob("*.py")) + sorted(root.glob(f"{layer}.py")):
        for name in imports_of(path, root):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer]):
                bad.append(f"{module_name(path, root)} imports {name}")
    return sorted(bad)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(layer: str) -> None:
    assert violations(layer) == []


def test_the_walk_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    root = tmp_path / "mridiff"
    (root / "physics").mkdir(parents=True)
    (root / "physics" / "probe.py").write_text(
        "from __future__ import annotations\n\nfrom .fft import fft2c\n\n\ndef f() -> None:\n"
        "    from ..training import run\n    import mridiff.inference.model\n")
    assert violations("physics", root) == ["mridiff.physics.probe imports mridiff.inference.model",
                                           "mridiff.physics.probe imports mridiff.training",
                                           "mridiff.physics.probe imports mridiff.training.run"]


def test_a_workflow_importing_training_is_caught(tmp_path: Path) -> None:
    root = tmp_path / "mridiff"
    (root / "workflows").mkdir(parents=True)
    (root / "workflows" / "probe.py").write_text("from mridiff.inference.reconstruct import Reconstructor\n"
                                                 "from mridiff.training.run import train\n")
    assert violations("workflows", root) == ["mridiff.workflows.probe imports mridiff.training.run",
                                             "mridiff.workflows.probe imports mridiff.training.run.train"]
