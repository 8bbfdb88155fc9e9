"""Every public sample of the corpus imports with the outcome recorded in manifest.json.

A change in what a file translates to (a new unsupported code, a lost warning, a
translation that stops validating) fails here; re-record deliberately with
``.venv/bin/python tests/import/corpus_figures.py --write`` and review the diff.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("corpus_figures", HERE / "corpus_figures.py")
assert _spec is not None and _spec.loader is not None
figures: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)

MANIFEST = json.loads((HERE / "manifest.json").read_text())
FILES = figures.corpus_files()


def test_the_corpus_is_large_enough_and_every_file_has_a_recorded_outcome() -> None:
    names = {f"{fmt}/{path.name}" for fmt, path in FILES}
    assert sum(1 for fmt, _ in FILES if fmt == "gcw") >= 30
    assert sum(1 for fmt, _ in FILES if fmt == "asl") >= 30
    assert names == set(MANIFEST), "corpus and manifest differ: re-record the manifest"


def test_every_corpus_file_names_its_source() -> None:
    sources = (HERE / "corpus" / "SOURCES.md").read_text()
    assert "Apache License 2.0" in sources and "MIT No Attribution" in sources
    for fmt, path in FILES:
        assert f"| {fmt}/{path.name} |" in sources, path.name


@pytest.mark.parametrize(("fmt", "path"), FILES, ids=[f"{f}/{p.name}" for f, p in FILES])
def test_corpus_file_imports_as_recorded(fmt: str, path: Path) -> None:
    assert figures.outcome(fmt, path) == MANIFEST[f"{fmt}/{path.name}"]
