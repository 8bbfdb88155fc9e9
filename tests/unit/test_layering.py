"""The layers import one way (DESIGN.md section 3), read from the code's own imports.

functions -> composition -> api -> app -> engine, ai, steps -> ports -> models, errors;
adapters implement ports and are picked by the composition root only. A capability
is a declared member of a port, never a ``getattr``/``hasattr`` probe.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"

FORBIDDEN: dict[str, tuple[str, ...]] = {
    # package: what it must not import
    "adapters": ("shared.app", "shared.api", "shared.composition", "shared.engine"),
    "ports": ("shared.adapters", "shared.app", "shared.api", "shared.composition"),
    "engine": ("shared.adapters", "shared.app", "shared.api", "shared.composition", "shared.ai"),
    "steps": ("shared.adapters", "shared.app", "shared.api", "shared.composition"),
    "ai": ("shared.adapters", "shared.app", "shared.api", "shared.composition"),
    "app": ("shared.adapters", "shared.api", "shared.composition"),
    "api": ("shared.adapters", "shared.composition", "shared.dev", "shared.cli"),
    "observability": ("shared.api", "shared.app", "shared.engine", "shared.composition"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_downward(package: str) -> None:
    files = sorted((SHARED / package).rglob("*.py"))
    assert files, package
    wrong = [
        (str(path.relative_to(SHARED)), module)
        for path in files
        for module in sorted(_imports(path))
        if module.startswith(FORBIDDEN[package])
    ]
    assert wrong == []


def test_no_module_at_the_root_of_shared_but_the_shared_basics() -> None:
    loose = sorted(p.name for p in SHARED.glob("*.py"))
    assert loose == [
        "__init__.py",
        "errors.py",
        "expressions.py",
        "settings.py",
        "task_codec.py",
    ]


def test_no_capability_probe_on_a_port() -> None:
    """``getattr(store, "run_transaction")``-style probes: capabilities are declared."""
    probes = []
    for path in sorted(SHARED.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"getattr", "hasattr"}
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Attribute | ast.Name)
                and isinstance(node.args[1], ast.Constant)
                and any(
                    word in ast.unparse(node.args[0])
                    for word in ("store", "executions", "bus", "queue", "settings", "runtime")
                )
            ):
                probes.append(f"{path.relative_to(SHARED)}:{node.lineno}: {ast.unparse(node)}")
    assert probes == []
