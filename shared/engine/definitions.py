"""Immutable definition versions, cached: an execution reads its pinned version often."""

from __future__ import annotations

from collections import OrderedDict

from shared.errors import NotFound
from shared.models import WorkflowDefinition, WorkflowExecution
from shared.ports import WorkflowStore


class DefinitionCache:
    """Read-through LRU of (workflow id, version) -> definition. Versions never change."""

    def __init__(self, workflows: WorkflowStore, size: int = 512) -> None:
        self._workflows = workflows
        self._size = size
        self._items: OrderedDict[tuple[str, str, int], WorkflowDefinition] = OrderedDict()

    async def get(self, execution: WorkflowExecution) -> WorkflowDefinition:
        return await self.version(
            execution.workflow_id, execution.workflow_version, execution.tenant
        )

    async def version(self, workflow_id: str, version: int, tenant: str) -> WorkflowDefinition:
        key = (tenant, workflow_id, version)
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            return found
        definition = await self._workflows.get_version(workflow_id, version, tenant)
        if definition is None:
            raise NotFound(f"workflow {workflow_id} version {version} not found")
        self._items[key] = definition
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return definition

    def require(self, execution: WorkflowExecution) -> WorkflowDefinition:
        """The cached definition, for use inside a transaction (no store call there:
        a nested store call would deadlock an embedded store). Raises ``NotCached``."""
        key = (execution.tenant, execution.workflow_id, execution.workflow_version)
        found = self._items.get(key)
        if found is None:
            raise NotCached(execution)
        return found

    def put(self, definition: WorkflowDefinition, tenant: str) -> WorkflowDefinition:
        """Cache ``definition`` unless an equal version is cached; return the cached one
        (its derived indexes are already computed)."""
        key = (tenant, definition.id, definition.version)
        return self._items.setdefault(key, definition)


class NotCached(Exception):
    """A transaction needs a definition that is not cached yet: load it and retry."""

    def __init__(self, execution: WorkflowExecution) -> None:
        super().__init__(execution.workflow_id)
        self.execution = execution
