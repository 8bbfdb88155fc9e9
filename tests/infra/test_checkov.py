"""checkov (its own virtualenv, offline) finds no failed check, and every skip says why.

``make checkov`` creates ``.venv-checkov``; without it this test does not run and the
session ends with one loud line saying so.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _terraform import NOT_RUN, ROOT, TERRAFORM

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_every_checkov_skip_is_justified() -> None:
    skips = [
        (path.relative_to(ROOT), match)
        for path in sorted(TERRAFORM.rglob("*.tf"))
        for match in SKIP.finditer(path.read_text())
    ]
    for path, match in skips:
        reason = (match.group(2) or "").strip()
        assert len(reason) >= 20, f"{path}: skip of {match.group(1)} needs a reason"


def run_checkov(home: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            str(CHECKOV),
            "--framework",
            "terraform",
            "--skip-download",
            "--output",
            "json",
            "--directory",
            str(TERRAFORM),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "BC_SKIP_MAPPING": "TRUE"},
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def test_checkov_reports_no_failed_check(tmp_path: Path) -> None:
    if not CHECKOV.exists():
        NOT_RUN["checkov"] = "no .venv-checkov (run make checkov to create it)"
        pytest.skip("NOT RUN: checkov (no .venv-checkov; make checkov creates it)")
    reports = run_checkov(tmp_path)
    results = [report["results"] for report in reports if "results" in report]
    failed = [
        (check["check_id"], check["resource"], check["file_path"])
        for result in results
        for check in result["failed_checks"]
    ]
    assert failed == []
    passed = sum(len(result["passed_checks"]) for result in results)
    assert passed > 0, "checkov checked nothing"
    for result in results:
        for check in result["skipped_checks"]:
            reason = (check.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason.strip()) >= 20, (check["check_id"], check["resource"])
