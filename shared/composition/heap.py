"""The startup heap out of the cyclic garbage collector's way, in long-lived processes.

A server builds most of its objects once: modules, classes, pydantic schemas, the
composition root's graph (about 150,000 objects in ``wfe dev``). Every full (oldest
generation) collection scans them all, and a flood of work triggers full collections:
each was a 40 to 50 ms pause of the event loop in ``bench/fairness.py`` (one other
tenant's start waited through it). Frozen (``gc.freeze``), they are left out of every
collection; what the process makes afterwards is collected as before.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap() -> int:
    """Collect, then move every object alive now to the collector's permanent generation.
    Returns how many objects are frozen. Call once, when the process has built what it
    keeps for its lifetime (a frozen object that becomes garbage in a cycle is never
    collected): ``wfe dev`` before it serves, a function once its app has started."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
