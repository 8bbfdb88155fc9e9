"""``step.progress``: what a running step tells the execution's event stream as it goes.

An agent step publishes each model call and tool call (a sub-entry) and each proposed
call waiting for approval as a ``step.progress`` event, in a small transaction of its
own through the ``ExecutionStore`` port: the event takes the execution's next ``seq``
(gap-free, as every event), so the stream (SSE, WebSocket, ``GET .../events``)
delivers it between the engine's own events. Best effort: a step whose progress event
cannot be written (the execution ended, a conflict that outlasts the retries) goes on;
what it did is in its output and checkpoints anyway. At least once: a step resumed
after a crash may publish an entry again (same ``entry.index``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from shared.errors import Conflict
from shared.models import ExecutionEvent, StepRun
from shared.ports import ExecutionStore, ExecutionTx

log = logging.getLogger(__name__)

PROGRESS = "step.progress"
ATTEMPTS = 3


async def publish_progress(
    store: ExecutionStore | None, run: StepRun, at: datetime, data: dict[str, Any]
) -> bool:
    """Append a ``step.progress`` event of ``run`` carrying ``data``; whether it was."""
    if store is None:
        return False

    async def append(tx: ExecutionTx) -> bool:
        execution = await tx.get_execution(run.execution_id)
        if execution is None or execution.status.terminal:
            return False
        execution.event_seq += 1
        tx.add_event(
            ExecutionEvent(
                execution_id=execution.id,
                workflow_id=execution.workflow_id,
                seq=execution.event_seq,
                type=PROGRESS,
                step_id=run.step_id,
                run_id=run.id,
                status=run.status.value,
                data=data,
                at=at,
            )
        )
        tx.put_execution(execution)
        return True

    for _ in range(ATTEMPTS):
        try:
            return await store.run_transaction(append)
        except Conflict:
            continue
        except Exception:  # the stream is a view: the step goes on without it
            log.warning("step.progress of run %s not published", run.id, exc_info=True)
            return False
    return False
