"""Long-lived processes freeze the heap they built at startup (shared.composition.heap):
a full garbage collection then skips it (a 40 to 50 ms pause of the event loop in a
flood before, bench/fairness.py's ``fair_no_freeze``), and ``wfe dev`` does it before
it serves."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.composition.heap import freeze_startup_heap
from shared.dev import server
from shared.dev.server import DevOptions
from shared.settings import Settings


class Node:
    me: Any = None


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session collects as before


def test_garbage_is_collected_first_and_what_lives_is_frozen() -> None:
    garbage = Node()
    garbage.me = garbage  # a cycle: only the collector frees it
    gone = weakref.ref(garbage)
    del garbage
    kept = Node()
    kept.me = kept

    frozen = freeze_startup_heap()

    assert gone() is None  # collected, not frozen for ever
    assert frozen == gc.get_freeze_count() > 1000
    assert not any(obj is kept for obj in gc.get_objects(2))  # out of full collections
    made_after = Node()
    made_after.me = made_after
    assert any(obj is made_after for obj in gc.get_objects())  # collected as before


def test_wfe_dev_freezes_its_built_heap_before_it_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    seen: list[int] = []

    def serve(app: Any, **options: Any) -> None:
        seen.append(gc.get_freeze_count())

    monkeypatch.setattr(uvicorn, "run", serve)
    monkeypatch.setattr(server, "configure_observability", lambda *args: None)
    settings = Settings.local_mode(str(tmp_path / "dev.db"))
    assert server.run(settings, DevOptions(examples=None, demo_port=0)) == 0
    assert len(seen) == 1 and seen[0] > 1000


async def test_a_function_freezes_its_heap_once_its_app_has_started(tmp_path: Path) -> None:
    from shared.composition.hosting import FunctionHost

    host = FunctionHost("create", Settings.local_mode(str(tmp_path / "fn.db")))
    assert gc.get_freeze_count() == 0  # built at import, not frozen yet
    await host.start()
    try:
        assert gc.get_freeze_count() > 1000
    finally:
        await host.stop()
