"""The WorkflowStore half of the Firestore store: heads and their immutable versions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud.firestore import AsyncClient, AsyncDocumentReference, AsyncTransaction

from shared.adapters._firestore_codec import (
    Collections,
    datetime_text,
    encode_head,
    encode_version,
    is_storable,
    read_head,
    version_doc_id,
)
from shared.adapters._firestore_queries import (
    Row,
    child,
    fetch,
    keyset_page,
    versions_of,
    workflows_listing,
)
from shared.adapters._firestore_tx import translated
from shared.adapters._store_common import epoch
from shared.errors import Conflict, InputInvalid, NotFound
from shared.models import WorkflowDefinition
from shared.ports import Clock, Page, WorkflowQuery
from shared.ports.stores import WorkflowHead

__all__ = ["FirestoreWorkflows"]

T = TypeVar("T")


async def _row(
    ref: AsyncDocumentReference, transaction: AsyncTransaction | None = None
) -> Row | None:
    snapshot = await ref.get(transaction=transaction)
    return snapshot.to_dict() if snapshot.exists else None


def _visible(row: Row | None, tenant: str) -> Row | None:
    """The head row if it belongs to ``tenant`` (deleted or not)."""
    return row if row is not None and row["tenant"] == tenant else None


def _live(row: Row | None, tenant: str) -> Row | None:
    """The head row if it belongs to ``tenant`` and is not deleted."""
    visible = _visible(row, tenant)
    return visible if visible is not None and not visible["deleted"] else None


class FirestoreWorkflows:
    """WorkflowStore methods over ``workflows/{id}`` and ``workflows/{id}/versions/{v}``.

    Mixed into FirestoreStore, which provides the client, the names, the clock and the
    transaction runner.
    """

    _names: Collections
    _clock: Clock

    def _client(self) -> AsyncClient:
        raise NotImplementedError

    async def _transact(self, body: Callable[[AsyncTransaction], Awaitable[T]]) -> T:
        raise NotImplementedError

    def _head_ref(self, workflow_id: str) -> AsyncDocumentReference:
        return self._client().collection(self._names.workflows).document(workflow_id)

    def _version_ref(self, workflow_id: str, version: int) -> AsyncDocumentReference:
        head = self._head_ref(workflow_id)
        return child(head, self._names.versions).document(version_doc_id(version))

    async def create_workflow(self, definition: WorkflowDefinition, tenant: str) -> None:
        created = epoch(definition.created_at)
        head = encode_head(definition, tenant, created, datetime_text(definition.last_executed))
        version = encode_version(definition)
        batch = self._client().batch()
        batch.create(self._head_ref(definition.id), head)
        batch.create(self._version_ref(definition.id, definition.version), version)
        with translated():
            try:
                await batch.commit()
            except gexc.AlreadyExists as exc:
                raise Conflict(f"workflow {definition.id!r} already exists") from exc

    async def save_version(
        self, definition: WorkflowDefinition, expected_version: int, tenant: str
    ) -> None:
        if definition.version != expected_version + 1:
            raise InputInvalid(
                f"version {definition.version} does not follow {expected_version}",
                path="/version",
            )
        if not is_storable(definition.id):
            raise NotFound(f"workflow {definition.id!r} not found")
        head_ref = self._head_ref(definition.id)
        version_ref = self._version_ref(definition.id, definition.version)
        version = encode_version(definition)

        async def body(transaction: AsyncTransaction) -> None:
            row = _live(await _row(head_ref, transaction), tenant)
            if row is None:
                raise NotFound(f"workflow {definition.id!r} not found")
            if row["latestVersion"] != expected_version:
                raise Conflict(
                    f"workflow {definition.id!r} is at version {row['latestVersion']}, "
                    f"not {expected_version}"
                )
            last = datetime_text(definition.last_executed) or row.get("lastExecuted")
            transaction.create(version_ref, version)
            transaction.set(head_ref, encode_head(definition, tenant, row["createdAt"], last))

        await self._transact(body)

    async def get_workflow(self, workflow_id: str, tenant: str) -> WorkflowDefinition | None:
        if not is_storable(workflow_id):
            return None
        with translated():
            row = _live(await _row(self._head_ref(workflow_id)), tenant)
        return None if row is None else read_head(row)

    async def get_head(self, workflow_id: str, tenant: str) -> WorkflowHead | None:
        if not is_storable(workflow_id):
            return None
        with translated():
            row = _live(await _row(self._head_ref(workflow_id)), tenant)
        return None if row is None else WorkflowHead(int(row["latestVersion"]), row["isActive"])

    async def get_version(
        self, workflow_id: str, version: int, tenant: str
    ) -> WorkflowDefinition | None:
        if not is_storable(workflow_id):
            return None
        with translated():
            head, row = await asyncio.gather(
                _row(self._head_ref(workflow_id)), _row(self._version_ref(workflow_id, version))
            )
        if _visible(head, tenant) is None or row is None:
            return None
        return WorkflowDefinition.model_validate_json(row["doc"])

    async def list_versions(self, workflow_id: str, tenant: str) -> list[WorkflowDefinition]:
        if not is_storable(workflow_id):
            return []
        with translated():
            head, rows = await asyncio.gather(
                _row(self._head_ref(workflow_id)),
                fetch(versions_of(self._client(), self._names, workflow_id)),
            )
        if _visible(head, tenant) is None:
            return []
        return [WorkflowDefinition.model_validate_json(row["doc"]) for row in rows]

    async def list_workflows(self, query: WorkflowQuery) -> Page[WorkflowDefinition]:
        wanted = set(query.tags)
        keep: Callable[[Row], bool] | None = None
        if len(wanted) > 1 or query.name is not None:
            # The query matched one tag (or none): the other tags and the name are
            # checked here, which needs no composite index per combination.

            def keep(row: Row) -> bool:
                named = query.name is None or row["name"] == query.name
                return named and wanted <= set(row["tags"])

        listing = workflows_listing(self._client(), self._names, query)
        with translated():
            rows, cursor = await keyset_page(listing, "createdAt", query.cursor, query.limit, keep)
        return Page([read_head(row) for row in rows], cursor)

    async def delete_workflow(self, workflow_id: str, tenant: str) -> bool:
        if not is_storable(workflow_id):
            return False
        head_ref = self._head_ref(workflow_id)
        deleted_at = epoch(self._clock.now())

        async def body(transaction: AsyncTransaction) -> bool:
            if _live(await _row(head_ref, transaction), tenant) is None:
                return False
            transaction.update(head_ref, {"deleted": True, "deletedAt": deleted_at})
            return True

        return await self._transact(body)

    async def touch_executed(self, workflow_id: str, at: datetime) -> None:
        """One blind field update (no transaction): ``lastExecuted`` beside the body."""
        update: dict[str, Any] = {"lastExecuted": datetime_text(at)}
        if not is_storable(workflow_id):
            return
        head_ref = self._head_ref(workflow_id)
        with translated():
            try:
                await head_ref.update(update)
            except gexc.NotFound:
                return  # nothing to touch, as in the other stores
