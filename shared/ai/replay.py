"""Recorded model outputs: a step visit never pays for the same model answer twice.

Every model answer (and tool result) of a step run is saved under a slot name
(``turn:0``, ``tool:<call id>``, ``ai:<node>``) as soon as it arrives, keyed by the
run's idempotency key, which every attempt of one step visit shares. The store is
the step run itself (``state.replay``), written through the execution store in its
own small transaction, so a crash, a duplicate delivery, a retry or a resume after a
budget pause replays what was recorded instead of calling the model again.

Recording files (``<name>.recording.json`` beside an example) hold the model turns of
a workflow's llm steps; they are replayed when no model is configured, and the step
output says so.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shared.models import StepRun, StepRunStatus
from shared.ports import ExecutionStore, ExecutionTx

log = logging.getLogger(__name__)

REPLAY_KEY = "replay"
MAX_SLOT_BYTES = 64 * 1024
"""A recorded value larger than this is cut (the run document has a size cap)."""


class ReplayStore(Protocol):
    """Recorded values of a step visit, by slot."""

    async def load(self, run: StepRun) -> dict[str, Any]:
        """Every slot recorded for the run's idempotency key (any attempt)."""

    async def save(self, run: StepRun, slot: str, value: Any) -> None:
        """Record ``value`` under ``slot`` now (before the step's own commit)."""


@dataclass
class RunStateReplay:
    """Replay records kept in the step runs, through the ``ExecutionStore`` port."""

    store: ExecutionStore | None

    async def load(self, run: StepRun) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if self.store is not None and run.idempotency_key:
            for other in await self.store.list_runs(run.execution_id):
                if other.idempotency_key == run.idempotency_key and other.id != run.id:
                    found.update(other.state.get(REPLAY_KEY) or {})
        found.update(run.state.get(REPLAY_KEY) or {})
        return found

    async def save(self, run: StepRun, slot: str, value: Any) -> None:
        value = _capped(value)
        run.state = {**run.state, REPLAY_KEY: {**(run.state.get(REPLAY_KEY) or {}), slot: value}}
        if self.store is None:
            return
        owner = run.lease_owner

        async def persist(tx: ExecutionTx) -> None:
            stored = await tx.get_run(run.id)
            if stored is None or stored.status != StepRunStatus.RUNNING:
                return  # an inline run not stored yet, or the run moved on: memory only
            if owner is not None and stored.lease_owner != owner:
                return  # another worker holds the run now
            slots = {**(stored.state.get(REPLAY_KEY) or {}), slot: value}
            stored.state = {**stored.state, REPLAY_KEY: slots}
            tx.put_run(stored)

        await self.store.run_transaction(persist)


def _capped(value: Any) -> Any:
    text = json.dumps(value, default=str)
    if len(text.encode()) <= MAX_SLOT_BYTES:
        return json.loads(text)
    return {"truncated": True, "preview": text[: MAX_SLOT_BYTES // 2]}


@dataclass
class Recording:
    """The recorded turns of one llm step of one workflow."""

    source: str
    """The file it came from (its name only)."""
    turns: list[dict[str, Any]]
    model: str | None = None


@dataclass
class RecordingLibrary:
    """``*.recording.json`` files of a folder, indexed by workflow name and step id.

    File format: ``{"workflow": "<workflow name>", "steps": {"<step id>": {"model": ...,
    "turns": [{"content": ..., "toolCalls": [{"id", "name", "args"}], "usage":
    {"inputTokens", "outputTokens"}}]}}}``.
    """

    folder: Path | None
    _index: dict[tuple[str, str], Recording] | None = field(default=None, repr=False)

    def find(self, workflow_name: str, step_id: str) -> Recording | None:
        if self.folder is None:
            return None
        if self._index is None:
            self._index = self._load(self.folder)
        return self._index.get((workflow_name, step_id))

    @staticmethod
    def _load(folder: Path) -> dict[tuple[str, str], Recording]:
        index: dict[tuple[str, str], Recording] = {}
        for path in sorted(folder.glob("*.recording.json")):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
                workflow = str(document["workflow"])
                for step_id, body in dict(document["steps"]).items():
                    turns = list(body["turns"])
                    index[(workflow, str(step_id))] = Recording(path.name, turns, body.get("model"))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("recording %s not loaded: %s", path, exc)
        return index


__all__ = ["Recording", "RecordingLibrary", "ReplayStore", "RunStateReplay"]
