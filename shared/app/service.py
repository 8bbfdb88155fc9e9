"""Use cases of the management API, the trigger handler and the CLI."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.ai import render_mermaid
from shared.app.audit import Auditor
from shared.app.fair_gate import FairGate
from shared.app.quotas import Quotas
from shared.app.stats import decision_stats, execution_stats
from shared.engine.runtime import Engine, HopResult
from shared.engine.validation import validate_definition
from shared.errors import (
    Conflict,
    DefinitionInvalid,
    InputInvalid,
    InvalidState,
    Issue,
    NotFound,
    SenderNotAllowed,
)
from shared.models import (
    ExecutionEvent,
    ExecutionStatus,
    StepRun,
    WorkflowDefinition,
    WorkflowExecution,
)
from shared.ports import (
    ExecutionQuery,
    ExecutionStore,
    Page,
    StepTask,
    WorkflowQuery,
    WorkflowStore,
)
from shared.ports.fairness import working_for

log = logging.getLogger(__name__)

STATS_WINDOW = 1000
"""Executions a workflow's ``executionStats`` cover (``GET /workflows/{id}``)."""
LIST_STATS_WINDOW = 100
"""Executions each workflow's ``executionStats`` cover in a listing (one query each)."""

_SERVER_FIELDS = (
    "id",
    "version",
    "createdAt",
    "updatedAt",
    "lastExecuted",
    "executionStats",
    "owner",
)


OnConflict = Literal["fail", "newVersion"]
"""What creating a workflow does when its name is taken: refuse (409) or add a version."""

WorkflowChangeHook = Callable[[str, str], Awaitable[object]]


@dataclass
class StartRequest:
    """Input of ``start_execution``: one object so fields can be added compatibly."""

    workflow_id: str
    input: dict[str, Any]
    version: int | None = None
    trigger: dict[str, Any] | None = None
    execution_id: str | None = None
    """Deduplication: a second start with the same id returns the first execution. From
    a caller (no ``trigger``), a second start that differs (workflow, input) is refused
    with EXECUTION_ID_REUSED; triggers derive ids from their message or tick."""
    require_active: bool = False


@dataclass(frozen=True)
class StartResult:
    """What ``start_execution_once`` did: the execution, and whether this call created it."""

    execution: WorkflowExecution
    created: bool
    """False when an execution with the requested id already existed (a duplicate start)."""


class WorkflowApp:
    """Workflow management and execution control over the ports."""

    def __init__(
        self,
        *,
        workflows: WorkflowStore,
        executions: ExecutionStore,
        engine: Engine,
        tenant: str = "default",
        change_hooks: list[WorkflowChangeHook] | None = None,
        quotas: Quotas | None = None,
        auditor: Auditor | None = None,
    ) -> None:
        self.workflows = workflows
        self.executions = executions
        self.engine = engine
        self.tenant = tenant
        self.quotas = quotas
        """Rate limits (execution starts here; the edges ask for request limits)."""
        self.auditor = auditor
        """Where the edges and the triggers record the audit log (None: nowhere)."""
        self.variable_defaults: dict[str, Any] = {}
        """Values for variables a saved definition declares empty (``""``): ``wfe dev``
        gives ``demoUrl`` its demo service's URL. Shared by the tenant-scoped copies."""
        self.change_hooks = change_hooks if change_hooks is not None else []
        """Called after a workflow is created, updated, (de)activated or deleted, with the
        workflow id and tenant (the trigger manager reconciles there). Shared by the
        tenant-scoped copies of this app."""
        self.start_gate: FairGate | None = FairGate()
        """Start calls in flight per tenant while tenants share this process (None: no
        bound). Shared by the tenant-scoped copies."""

    def for_tenant(self, tenant: str) -> WorkflowApp:
        """The same use cases scoped to another tenant (cheap: shares every port)."""
        if tenant == self.tenant:
            return self
        scoped = WorkflowApp(
            workflows=self.workflows,
            executions=self.executions,
            engine=self.engine,
            tenant=tenant,
            change_hooks=self.change_hooks,
            quotas=self.quotas,
            auditor=self.auditor,
        )
        scoped.variable_defaults = self.variable_defaults
        scoped.start_gate = self.start_gate
        return scoped

    async def _changed(self, workflow_id: str) -> None:
        """Tell the hooks; a failing hook is logged, never raised: the change is stored."""
        for hook in list(self.change_hooks):
            try:
                await hook(workflow_id, self.tenant)
            except Exception:
                log.exception("workflow change hook failed for %s", workflow_id)

    # -- definitions -----------------------------------------------------------------

    def validate(self, raw: Mapping[str, Any]) -> WorkflowDefinition:
        """Validate without storing (``wfe validate``, dry runs)."""
        body = {k: v for k, v in raw.items() if k not in _SERVER_FIELDS}
        variables = body.get("variables")
        if self.variable_defaults and isinstance(variables, Mapping):
            filled = {
                k: self.variable_defaults.get(k, v) if v == "" else v for k, v in variables.items()
            }
            body["variables"] = filled
        return validate_definition(body, self.engine.registry)

    async def create_workflow(
        self,
        raw: Mapping[str, Any],
        owner: str = "",
        *,
        on_conflict: OnConflict = "fail",
        may_update: Callable[[str], None] | None = None,
    ) -> WorkflowDefinition:
        """Create a workflow at version 1; its name must be new in the tenant.

        A taken name raises WORKFLOW_NAME_TAKEN (409) unless ``on_conflict`` is
        ``newVersion``: then the definition becomes the next version of the workflow of
        that name, after ``may_update(workflow_id)`` (the edge's authorization) allows it.
        """
        definition = self.validate(raw)
        existing = await self._workflow_named(definition.name)
        if existing is not None:
            if on_conflict != "newVersion":
                raise _name_taken(existing)
            if may_update is not None:
                may_update(existing.id)
            return await self.update_workflow(existing.id, raw, existing.version)
        await self._admit_definitions([definition], new=1)
        now = self.engine.clock.now()
        definition.id = str(uuid.uuid4())
        definition.version = 1
        definition.owner = owner
        definition.created_at = definition.updated_at = now
        await self.workflows.create_workflow(definition, self.tenant)
        await self._changed(definition.id)
        return definition

    async def _admit_definitions(self, definitions: list[WorkflowDefinition], new: int) -> None:
        """The tenant's quotas (maxWorkflows, maxDefinitionBytes) admit these saves."""
        if self.quotas is not None and definitions:
            size = max(len(d.model_dump_json(by_alias=True).encode()) for d in definitions)
            await self.quotas.admit_workflow(self.tenant, size, new=new)

    async def _workflow_named(self, name: str) -> WorkflowDefinition | None:
        """The head of the tenant's workflow called ``name`` (no statistics), or None."""
        page = await self.workflows.list_workflows(
            WorkflowQuery(tenant=self.tenant, name=name, limit=1)
        )
        return page.items[0] if page.items else None

    async def update_workflow(
        self, workflow_id: str, raw: Mapping[str, Any], expected_version: int | None = None
    ) -> WorkflowDefinition:
        """Write a new immutable version; running executions keep theirs."""
        head = await self.get_workflow(workflow_id)
        if expected_version is not None and expected_version != head.version:
            raise Conflict(
                f"workflow is at version {head.version}, not {expected_version}",
                code="VERSION_MISMATCH",
                retryable=False,
            )
        definition = self.validate(raw)
        definition.id = head.id
        definition.version = head.version + 1
        definition.owner = head.owner
        definition.created_at = head.created_at
        definition.updated_at = self.engine.clock.now()
        definition.last_executed = head.last_executed
        await self._admit_definitions([definition], new=0)
        await self.workflows.save_version(definition, head.version, self.tenant)
        await self._changed(definition.id)
        return definition

    async def set_active(self, workflow_id: str, active: bool) -> WorkflowDefinition:
        head = await self.get_workflow(workflow_id)
        if head.is_active == active:
            return head
        raw = head.to_json_dict()
        raw["isActive"] = active
        return await self.update_workflow(workflow_id, raw, head.version)

    async def get_workflow(self, workflow_id: str) -> WorkflowDefinition:
        definition = await self.workflows.get_workflow(workflow_id, self.tenant)
        if definition is None:
            raise NotFound(f"workflow {workflow_id} not found")
        return definition

    async def get_workflow_with_stats(self, workflow_id: str) -> WorkflowDefinition:
        definition = await self._with_stats(await self.get_workflow(workflow_id), STATS_WINDOW)
        assert definition.execution_stats is not None
        window = self.engine.services.settings.ai.history_window
        definition.execution_stats.decision_stats = await decision_stats(
            self.executions, definition, self.tenant, window
        )
        return definition

    async def _with_stats(self, definition: WorkflowDefinition, window: int) -> WorkflowDefinition:
        """``executionStats`` over the latest ``window`` executions, and ``lastExecuted``:
        derived on read, so starting an execution never rewrites the workflow's head (one
        hot document in Firestore)."""
        page = await self.executions.list_executions(
            ExecutionQuery(tenant=self.tenant, workflow_id=definition.id, limit=window)
        )
        definition.execution_stats = execution_stats(page.items, window)
        if page.items:  # newest first
            definition.last_executed = page.items[0].started_at
        return definition

    async def get_version(self, workflow_id: str, version: int) -> WorkflowDefinition:
        definition = await self.workflows.get_version(workflow_id, version, self.tenant)
        if definition is None:
            raise NotFound(f"workflow {workflow_id} version {version} not found")
        return definition

    async def decision_graph(
        self, workflow_id: str, step_id: str, version: int | None = None
    ) -> str:
        """The Mermaid flowchart of a decision step's tree (latest version by default)."""
        if version is None:
            definition = await self.get_workflow(workflow_id)
        else:
            definition = await self.get_version(workflow_id, version)
        step = definition.step_index.get(step_id)
        if step is None or step.type != "decision":
            raise NotFound(f"workflow {workflow_id} has no decision step {step_id!r}")
        return render_mermaid(
            self.engine.registry.get("decision").parse_config(step.config), step_id
        )

    async def list_versions(self, workflow_id: str) -> list[WorkflowDefinition]:
        versions = await self.workflows.list_versions(workflow_id, self.tenant)
        if not versions:
            raise NotFound(f"workflow {workflow_id} not found")
        return versions

    async def list_workflows(
        self,
        *,
        active_only: bool = False,
        tags: tuple[str, ...] = (),
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[WorkflowDefinition]:
        page = await self.workflows.list_workflows(
            WorkflowQuery(
                tenant=self.tenant, active_only=active_only, tags=tags, limit=limit, cursor=cursor
            )
        )
        items = await asyncio.gather(
            *(self._with_stats(item, LIST_STATS_WINDOW) for item in page.items)
        )
        return Page(list(items), page.next_cursor)

    async def delete_workflow(self, workflow_id: str) -> None:
        if not await self.workflows.delete_workflow(workflow_id, self.tenant):
            raise NotFound(f"workflow {workflow_id} not found")
        await self._changed(workflow_id)

    # -- executions ------------------------------------------------------------------

    async def start_execution(self, request: StartRequest) -> WorkflowExecution:
        return (await self.start_execution_once(request)).execution

    async def start_execution_once(self, request: StartRequest) -> StartResult:
        """``start_execution`` that also says whether it created the execution; triggers
        use it to tell a first delivery (started) from a redelivery (duplicate). The
        store calls are made as this tenant's work (``working_for``: fair shares)."""
        with working_for(self.tenant):
            if self.start_gate is None:
                return await self._start_execution_once(request)
            async with self.start_gate.admit(self.tenant):
                return await self._start_execution_once(request)

    async def _start_execution_once(self, request: StartRequest) -> StartResult:
        if not isinstance(request.input, dict):
            raise InputInvalid("execution input must be a JSON object", path="/input")
        if request.version is None:
            # The head's version, then that version from the engine's cache: a start
            # does not parse the head's definition (0.5 ms for a 100-step workflow).
            head = await self.workflows.get_head(request.workflow_id, self.tenant)
            if head is None:
                raise NotFound(f"workflow {request.workflow_id} not found")
            definition = await self.engine.definitions.version(
                request.workflow_id, head.version, self.tenant
            )
            active = head.is_active
        else:
            definition = await self.get_version(request.workflow_id, request.version)
            active = definition.is_active
        if request.require_active and not active:
            raise InvalidState(f"workflow {definition.id} is inactive", code="WORKFLOW_INACTIVE")
        if self.quotas is not None:  # every door's starts pass here: REST, GraphQL, triggers
            await self.quotas.admit_start(self.tenant, request.input)
        execution, created = await self.engine.start_execution(
            definition,
            input=request.input,
            trigger=request.trigger,
            execution_id=request.execution_id,
            tenant=self.tenant,
        )
        if not created and (
            execution.tenant != self.tenant
            or (
                request.trigger is None
                and execution.id == request.execution_id
                and (execution.workflow_id != definition.id or execution.input != request.input)
            )
        ):
            # A caller-chosen id names one start: the same request again is a duplicate
            # (the first execution answers); anything else under that id is a mistake
            # to report, never a silent success, and never another tenant's execution.
            # (A trigger's id names its message, schedule tick or webhook key: the first
            # delivery's input wins, as docs/triggers.md says. Another id answered is a
            # start control's: the live singleton, or the debounced execution.)
            raise Conflict(
                f"execution id {request.execution_id} is taken by another start (a different "
                "workflow or input): choose a new id",
                code="EXECUTION_ID_REUSED",
                retryable=False,
            )
        return StartResult(execution, created)

    async def get_execution(self, execution_id: str) -> WorkflowExecution:
        execution = await self.executions.get_execution(execution_id)
        if execution is None or execution.tenant != self.tenant:
            raise NotFound(f"execution {execution_id} not found")
        return execution

    async def list_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: ExecutionStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
        started_from: datetime | None = None,
        started_before: datetime | None = None,
    ) -> Page[WorkflowExecution]:
        for name, moment in (("startedFrom", started_from), ("startedBefore", started_before)):
            if moment is not None and moment.utcoffset() is None:
                raise InputInvalid(f"{name} needs a time zone (e.g. Z)", path=f"/{name}")
        if started_from and started_before and started_from >= started_before:
            raise InputInvalid("startedFrom must be before startedBefore", path="/startedFrom")
        return await self.executions.list_executions(
            ExecutionQuery(
                tenant=self.tenant,
                workflow_id=workflow_id,
                status=status,
                limit=limit,
                cursor=cursor,
                started_from=started_from,
                started_before=started_before,
            )
        )

    async def step_history(self, execution_id: str) -> list[StepRun]:
        """The execution's step runs, oldest first (internal timers left out)."""
        await self.get_execution(execution_id)
        return _user_runs(await self.executions.list_runs(execution_id))

    async def get_step_run(self, execution_id: str, run_id: str) -> StepRun:
        """One step run of an execution of this tenant (e.g. to learn its scope)."""
        await self.get_execution(execution_id)
        run = await self.executions.get_run(run_id)
        if run is None or run.execution_id != execution_id:
            raise NotFound(f"step run {run_id} not found")
        return run

    async def events(
        self, execution_id: str, after_seq: int = 0, limit: int = 1000
    ) -> list[ExecutionEvent]:
        await self.get_execution(execution_id)
        return await self.executions.list_events(execution_id, after_seq, limit)

    async def send_event(
        self, execution_id: str, name: str, payload: Any = None, *, sender: str | None = None
    ) -> dict[str, Any]:
        """Send event ``name``; when the steps of the execution's version that wait for it
        name who may answer (``answeredBy``), ``sender`` must be one of them."""
        execution = await self.get_execution(execution_id)
        definition = await self.workflows.get_version(
            execution.workflow_id, execution.workflow_version, self.tenant
        )
        allowed = answerers(definition, name) if definition is not None else None
        if allowed is not None and sender not in allowed:
            raise SenderNotAllowed(
                f"event {name!r} of this execution may be sent only by {', '.join(allowed)}"
            )
        signal, delivered = await self.engine.send_signal(
            execution_id, name, payload, sender=sender
        )
        return {"signalId": signal.id, "delivered": delivered}

    async def cancel(self, execution_id: str, reason: str = "") -> WorkflowExecution:
        await self.get_execution(execution_id)
        return await self.engine.cancel(execution_id, reason)

    async def pause(self, execution_id: str) -> WorkflowExecution:
        await self.get_execution(execution_id)
        return await self.engine.pause(execution_id)

    async def resume(self, execution_id: str) -> WorkflowExecution:
        await self.get_execution(execution_id)
        return await self.engine.resume(execution_id)

    async def redrive(self, execution_id: str) -> WorkflowExecution:
        await self.get_execution(execution_id)
        return await self.engine.redrive(execution_id)

    # -- import, export and detail (management API) --------------------------------------

    async def import_workflows(
        self,
        documents: Sequence[Any],
        owner: str = "",
        *,
        on_conflict: OnConflict = "fail",
        may_update: Callable[[str], None] | None = None,
    ) -> list[WorkflowDefinition]:
        """Create every definition of an import, or none: all are validated first, and
        with ``on_conflict="fail"`` no name may be taken (nor used twice in the import);
        with ``newVersion`` a taken name gets a new version (see ``create_workflow``).

        Issues are addressed ``/<document index><pointer into that document>``.
        """
        if not documents:
            raise InputInvalid("nothing to import: no definition given")
        issues: list[Issue] = []
        for index, document in enumerate(documents):
            if not isinstance(document, Mapping):
                issues.append(
                    Issue("INVALID_FORMAT", "a definition must be an object", f"/{index}")
                )
                continue
            try:
                self.validate(document)
            except DefinitionInvalid as exc:
                issues.extend(Issue(i.code, i.message, f"/{index}{i.path}") for i in exc.issues)
        if issues:
            raise DefinitionInvalid(issues)
        validated = [self.validate(d) for d in documents]
        if on_conflict != "newVersion":
            await self._check_names_free([d.name for d in validated])
            new = len(validated)
        else:
            new = sum([await self._workflow_named(d.name) is None for d in validated])
        await self._admit_definitions(validated, new=new)  # all or nothing: checked first
        return [
            await self.create_workflow(
                document, owner, on_conflict=on_conflict, may_update=may_update
            )
            for document in documents
        ]

    async def _check_names_free(self, names: list[str]) -> None:
        """WORKFLOW_NAME_TAKEN when a name is taken in the tenant or repeated in ``names``."""
        for index, name in enumerate(names):
            if name in names[:index]:
                raise Conflict(
                    f"the import names two workflows {name!r}",
                    code="WORKFLOW_NAME_TAKEN",
                    retryable=False,
                    path=f"/{index}/name",
                )
            existing = await self._workflow_named(name)
            if existing is not None:
                raise _name_taken(existing, path=f"/{index}/name")

    async def export_workflow(self, workflow_id: str, version: int | None = None) -> dict[str, Any]:
        """The portable definition (no server fields) that ``import_workflows`` accepts."""
        if version is None:
            definition = await self.get_workflow(workflow_id)
        else:
            definition = await self.get_version(workflow_id, version)
        return {k: v for k, v in definition.to_json_dict().items() if k not in _SERVER_FIELDS}

    async def get_execution_detail(
        self, execution_id: str
    ) -> tuple[WorkflowExecution, list[StepRun]]:
        """An execution and its step history, oldest run first."""
        execution = await self.get_execution(execution_id)
        return execution, _user_runs(await self.executions.list_runs(execution_id))

    # -- workers ---------------------------------------------------------------------

    async def execute_step(self, task: StepTask) -> HopResult:
        """The task-queue target: run one delivery of a step task (after its tenant's
        step throughput admits it: a refusal is retryable, so the queue delivers later)."""
        if self.quotas is not None:
            await self.quotas.admit_step(task.execution_id, tenant=task.tenant)
        return await self.engine.handle_task(task)


def _name_taken(existing: WorkflowDefinition, path: str = "/name") -> Conflict:
    return Conflict(
        f"a workflow named {existing.name!r} exists ({existing.id}, version "
        f"{existing.version}); ask for onConflict=newVersion to add a version to it",
        code="WORKFLOW_NAME_TAKEN",
        retryable=False,
        path=path,
        details={"workflowId": existing.id, "version": existing.version},
    )


def _user_runs(runs: list[StepRun]) -> list[StepRun]:
    """Step runs of the definition's steps: the execution-deadline timer is internal."""
    return [run for run in runs if not run.step_id.startswith("$")]


def answerers(definition: WorkflowDefinition, event: str) -> list[str] | None:
    """Who may send ``event`` to an execution of ``definition``: the union of the
    ``answeredBy`` lists of the steps that wait for it (branch and map steps are in the
    same flat list): ``wait_for_event`` steps by their event name, an ``agent`` step's
    approvals (``agent.approval.<step id>.*``, by the step's ``answeredBy``) and an
    ``llm`` or ``agent`` step's escalated guardrail (``guardrail.<step id>``, by its
    ``guardrails.answeredBy``, which the step enforces too); None when none of them
    restricts it."""
    allowed: list[str] = []
    restricted = False
    for step in definition.steps:
        config = step.config if isinstance(step.config, Mapping) else {}
        named = _answered_by(step.type, step.id, config, event)
        if isinstance(named, list):
            restricted = True
            allowed += [str(n) for n in named if str(n) not in allowed]
    return allowed if restricted else None


def _answered_by(step_type: str, step_id: str, config: Mapping[str, Any], event: str) -> Any:
    """The ``answeredBy`` of a step that waits for ``event``, if it has one."""
    if step_type == "wait_for_event":
        return config.get("answeredBy") if config.get("event") == event else None
    if step_type == "agent" and event.startswith(f"agent.approval.{step_id}."):
        return config.get("answeredBy")
    guardrails = config.get("guardrails")
    if (
        step_type in ("llm", "agent")
        and event == f"guardrail.{step_id}"
        and isinstance(guardrails, Mapping)
    ):
        return guardrails.get("answeredBy")
    return None
