"""The console's vendored libraries are all in the repository: every file MANIFEST.json
lists is on disk and not ignored by git. A `dist/` line in .gitignore once kept every
library's `dist/index.js` out of the commits: the console worked on the machine that
vendored it and answered 404 for CodeMirror, dagre and chart.js on a clean clone."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "shared" / "api" / "console" / "static" / "vendor"


def _manifest_files() -> list[str]:
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text())
    return [name for package in manifest["packages"] for name in package["files"]]


def test_every_vendored_file_is_on_disk() -> None:
    files = _manifest_files()
    assert any(name.endswith("/dist/index.js") for name in files)
    missing = [name for name in files if not (VENDOR / name).is_file()]
    assert missing == []


def test_no_vendored_file_is_ignored_by_git() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [str(VENDOR / name) for name in _manifest_files()]
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        input="\n".join(paths),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    # check-ignore exits 1 when no path is ignored, 0 when some are (and prints them)
    assert done.returncode == 1, f"ignored by .gitignore: {done.stdout.splitlines()}"
