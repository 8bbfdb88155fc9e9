"""Trigger use cases: which workflows a Pub/Sub message or a schedule tick starts.

Every delivery that reaches these use cases is at least once (Pub/Sub push, Eventarc,
Cloud Scheduler retries, the local cron after a restart). Each start therefore uses a
deterministic execution id (``trigger_execution_id``): a redelivery finds the
execution of the first delivery and starts nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.app.audit import audited_trigger
from shared.app.service import StartRequest, WorkflowApp
from shared.errors import NotFound, WorkflowError
from shared.expressions import TRIGGER_ROOTS, compile_expression
from shared.models import EventTrigger, ScheduleTrigger, WorkflowDefinition

__all__ = [
    "TRIGGER_NAMESPACE",
    "EventDispatch",
    "PubSubEvent",
    "ScheduleFire",
    "StartOutcome",
    "active_workflows",
    "dispatch_event",
    "filter_passes",
    "fire_schedule",
    "format_time",
    "job_id",
    "short_topic",
    "start_once",
    "topic_matches",
    "trigger_execution_id",
]

log = logging.getLogger(__name__)

TRIGGER_NAMESPACE = uuid.UUID("5b0f6f4e-2d7e-4c57-9a43-7f1d2b8e6a10")
"""uuid5 namespace of trigger execution ids. Never change it: ids would stop matching."""
_PAGE = 200


def trigger_execution_id(workflow_id: str, kind: str, key: str) -> str:
    """The execution id of one logical trigger delivery, e.g. ``(wf, "pubsub", msg id)``."""
    return str(uuid.uuid5(TRIGGER_NAMESPACE, f"{workflow_id}:{kind}:{key}"))


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` and whole seconds (stable, so usable in ids)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def short_topic(topic: str) -> str:
    """``projects/P/topics/T`` (or ``//pubsub.googleapis.com/projects/P/topics/T``) -> ``T``."""
    return topic.rsplit("/topics/", 1)[-1]


def _project(topic: str) -> str | None:
    if "/topics/" not in topic:
        return None
    return topic.rsplit("/topics/", 1)[0].rsplit("projects/", 1)[-1] or None


def topic_matches(trigger_topic: str, event_topic: str) -> bool:
    """Same topic name, and same project when both sides name one."""
    if short_topic(trigger_topic) != short_topic(event_topic):
        return False
    wanted, got = _project(trigger_topic), _project(event_topic)
    return wanted is None or got is None or wanted == got


def job_id(job_name: str) -> str:
    """``projects/P/locations/L/jobs/J`` -> ``J`` (Cloud Scheduler may send either)."""
    return job_name.rsplit("/jobs/", 1)[-1]


@dataclass(frozen=True)
class StartOutcome:
    """One workflow's answer to a trigger delivery."""

    workflow_id: str
    status: str
    """started | duplicate | inactive | skipped (vanished between listing and start)."""
    execution_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"workflowId": self.workflow_id, "status": self.status}
        if self.execution_id:
            body["executionId"] = self.execution_id
        return body


async def start_once(app: WorkflowApp, request: StartRequest) -> StartOutcome:
    """Start (or find) the execution; non-retryable refusals become an outcome."""
    try:
        result = await app.start_execution_once(request)
    except NotFound:
        return StartOutcome(request.workflow_id, "skipped")
    except WorkflowError as exc:
        if exc.code == "WORKFLOW_INACTIVE":
            return StartOutcome(request.workflow_id, "inactive")
        raise
    status = "started" if result.created else "duplicate"
    return StartOutcome(request.workflow_id, status, result.execution.id)


# -- Pub/Sub ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PubSubEvent:
    """One Pub/Sub message, decoded, whichever way it was delivered."""

    topic: str
    message_id: str
    data: Any = None
    """The payload: parsed JSON if it was JSON, else text."""
    attributes: Mapping[str, str] = field(default_factory=dict)
    publish_time: str | None = None

    def as_input(self) -> dict[str, Any]:
        """The execution input of a workflow this message starts."""
        return {
            "event": {
                "data": self.data,
                "attributes": dict(self.attributes),
                "messageId": self.message_id,
                "publishTime": self.publish_time,
                "topic": self.topic,
            }
        }


@dataclass
class EventDispatch:
    """What one message did across every workflow listening on its topic."""

    outcomes: list[StartOutcome] = field(default_factory=list)
    filtered_out: list[str] = field(default_factory=list)
    """Workflows on the topic whose filter was false."""
    filter_errors: dict[str, str] = field(default_factory=dict)
    """Workflow id -> why its filter could not be evaluated (it was not started)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "processed",
            "executions": [outcome.to_dict() for outcome in self.outcomes],
            "filteredOut": self.filtered_out,
            "filterErrors": self.filter_errors,
        }


async def active_workflows(app: WorkflowApp) -> AsyncIterator[WorkflowDefinition]:
    """Every active workflow of the app's tenant, page by page."""
    cursor: str | None = None
    while True:
        page = await app.list_workflows(active_only=True, limit=_PAGE, cursor=cursor)
        for definition in page.items:
            yield definition
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def filter_passes(trigger: EventTrigger, event: PubSubEvent) -> bool:
    """Evaluate the trigger's CEL filter; raises WorkflowError when it cannot."""
    if not trigger.filter:
        return True
    compiled, issues = compile_expression(trigger.filter, "/trigger/filter", TRIGGER_ROOTS)
    if compiled is None:
        raise WorkflowError(issues[0].message, code=issues[0].code)
    env = {"data": event.data, "attributes": dict(event.attributes), "topic": event.topic}
    value = compiled.evaluate(env)
    if not isinstance(value, bool):
        raise WorkflowError(
            f"filter returned {type(value).__name__}, not a boolean", code="FILTER_NOT_BOOLEAN"
        )
    return value


def _admits(
    definition_id: str, trigger: EventTrigger, event: PubSubEvent, dispatch: EventDispatch
) -> bool:
    """Whether the filter lets ``event`` start the workflow; failures are recorded."""
    try:
        passes = filter_passes(trigger, event)
    except WorkflowError as exc:
        log.warning(
            "filter of workflow %s failed on message %s: %s",
            definition_id,
            event.message_id,
            exc.message,
            extra={
                "json_fields": {
                    "workflowId": definition_id,
                    "messageId": event.message_id,
                    "topic": event.topic,
                    "code": exc.code,
                }
            },
        )
        dispatch.filter_errors[definition_id] = exc.message
        return False
    if not passes:
        dispatch.filtered_out.append(definition_id)
    return passes


async def dispatch_event(app: WorkflowApp, event: PubSubEvent) -> EventDispatch:
    """Start every active workflow whose event trigger matches ``event``, once each.

    A filter that fails is logged and recorded; it does not block the other workflows.
    A retryable error of one start does not either, but it is raised once every
    workflow was tried, so the message is redelivered (the ones that started are
    deduplicated then).
    """
    dispatch = EventDispatch()
    retry: WorkflowError | None = None
    async for definition in active_workflows(app):
        trigger = definition.trigger
        if not isinstance(trigger, EventTrigger) or not topic_matches(trigger.topic, event.topic):
            continue
        if not _admits(definition.id, trigger, event, dispatch):
            continue
        request = StartRequest(
            definition.id,
            event.as_input(),
            trigger={"type": "event", "topic": event.topic, "messageId": event.message_id},
            execution_id=trigger_execution_id(definition.id, "pubsub", event.message_id),
            require_active=True,
        )
        try:
            dispatch.outcomes.append(await _audited_start(app, "pubsub", request))
        except WorkflowError as exc:
            if not exc.retryable:
                raise
            log.warning(
                "start of workflow %s failed, asking for redelivery: %s", definition.id, exc.message
            )
            retry = retry or exc
    if retry is not None:
        raise retry
    return dispatch


# -- Cloud Scheduler / local cron ------------------------------------------------------


@dataclass(frozen=True)
class ScheduleFire:
    """One tick of a schedule: by Cloud Scheduler over HTTP, or by the local cron."""

    workflow_id: str
    job_name: str
    scheduled_time: datetime | None = None
    """The tick's time; ``None`` (a manual "force run") means the current minute."""


async def _audited_start(app: WorkflowApp, kind: str, request: StartRequest) -> StartOutcome:
    """``start_once``, recorded in the audit log as a call of ``trigger:<kind>``."""
    return await audited_trigger(
        app.auditor,
        kind=kind,
        tenant=app.tenant,
        workflow_id=request.workflow_id,
        start=lambda: start_once(app, request),
    )


async def fire_schedule(app: WorkflowApp, fire: ScheduleFire) -> StartOutcome:
    """Start the workflow once per (workflow, job, schedule time); recorded in the audit
    log as a call of ``trigger:schedule``, refused or not.

    Raises NotFound when the workflow does not exist or has no schedule trigger.
    """
    return await audited_trigger(
        app.auditor,
        kind="schedule",
        tenant=app.tenant,
        workflow_id=fire.workflow_id,
        start=lambda: _fire_schedule(app, fire),
    )


async def _fire_schedule(app: WorkflowApp, fire: ScheduleFire) -> StartOutcome:
    definition = await app.get_workflow(fire.workflow_id)
    trigger = definition.trigger
    if not isinstance(trigger, ScheduleTrigger):
        raise NotFound(f"workflow {fire.workflow_id} has no schedule trigger")
    when = fire.scheduled_time or app.engine.clock.now().astimezone(UTC).replace(
        second=0, microsecond=0
    )
    scheduled = format_time(when)
    job = job_id(fire.job_name)
    request = StartRequest(
        definition.id,
        {**trigger.input, "scheduledTime": scheduled},
        version=definition.version,
        trigger={"type": "schedule", "jobName": job, "scheduledTime": scheduled},
        execution_id=trigger_execution_id(definition.id, "schedule", f"{job}:{scheduled}"),
        require_active=True,
    )
    outcome = await start_once(app, request)
    if outcome.status == "inactive":
        log.warning("schedule %s fired for inactive workflow %s", job, definition.id)
    return outcome
