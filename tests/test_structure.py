"""The house's edges: the command line sits on top, nothing imports it back."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from apflab import cli

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_nothing_imports_the_command_line() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in ROOT.joinpath("apflab").rglob("*.py")
        if p.name not in ("cli.py", "__main__.py") or p.parent.name != "apflab"
        if "apflab.cli" in _imports(p)
    ]
    assert not offenders


def test_every_extension_exists_and_registers() -> None:
    for name in cli.EXTENSIONS:
        assert callable(importlib.import_module(name).register), name
    parser = cli.build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"agent", "run", "images", "simulate", "report", "nightly"} <= set(choices)
