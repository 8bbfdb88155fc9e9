"""bench/listeners.py --quick --json runs end to end and reports both listeners.

Only the report's shape is checked (both scenarios, both listeners, every event of the
single writer received); the lag under concurrent writes belongs to the benchmark. With
no Firestore emulator here, the report says so, loudly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _bench_run import run_bench

from shared.dev.emulators import Unavailable, find_firestore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parents[2]


def test_the_listener_bench_reports_both_listeners_or_why_not() -> None:
    done = run_bench(ROOT / "bench" / "listeners.py", "--quick", "--json", timeout=140)
    report = json.loads(done.stdout)
    try:
        find_firestore()
    except Unavailable:
        assert "skipped" in report
        assert "LISTENERS NOT MEASURED" in done.stderr
        return
    for name, writers in (("alone", 1), ("concurrent", 5)):
        figure = report[name]
        assert figure["writers"] == writers
        assert figure["events_written"] == writers * 3
        assert figure["writes_per_s"] > 0
        for listener in ("collection_group", "one_execution"):
            assert figure[listener]["received"] >= 1
            assert figure[listener]["p50_ms"] >= 0
    alone = report["alone"]
    assert alone["collection_group"]["received"] == alone["collection_group"]["expected"] == 3
