"""A LangGraph checkpointer over our checkpoint store port (memory, SQLite, Firestore).

``StoreCheckpointSaver`` keeps LangGraph's checkpoints and pending writes in a
``CheckpointStore``; a graph compiled with it resumes a thread from its last completed
super-step. Threads are step runs: ``thread_id_for(execution_id, run_id)``, so the
store can delete an execution's checkpoints with the execution
(``adelete_for_execution``).

The saver is async: graphs run with ``ainvoke``/``astream``. Its sync methods, as
``AsyncSqliteSaver``'s, hand the call to the event loop the saver was first used on and
are refused on that loop's own thread (they would block it).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from shared.ports.checkpoints import (
    CheckpointListing,
    CheckpointRecord,
    CheckpointStore,
    CheckpointWrite,
    execution_of,
    thread_id_for,
)

__all__ = ["StoreCheckpointSaver", "thread_id_for"]

T = TypeVar("T")


class StoreCheckpointSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints in a ``CheckpointStore``.

    Args:
        store: Where records and pending writes are kept.
        serde: The serialiser of checkpoints, metadata and written values
            (LangGraph's ``JsonPlusSerializer`` by default).
    """

    def __init__(self, store: CheckpointStore, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self.store = store
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- async API (the real one) ---

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        self._remember_loop()
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        checkpoint_ns = str(conf.get("checkpoint_ns", ""))
        checkpoint_id = get_checkpoint_id(config)
        record = await self.store.get_checkpoint(thread_id, checkpoint_ns, checkpoint_id)
        if record is None:
            return None
        if checkpoint_id is None:
            config = _config(record.thread_id, record.checkpoint_ns, record.checkpoint_id)
        return await self._tuple(record, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        self._remember_loop()
        conf = config["configurable"] if config else {}
        listing = CheckpointListing(
            thread_id=str(conf["thread_id"]) if "thread_id" in conf else None,
            checkpoint_ns=conf.get("checkpoint_ns"),
            checkpoint_id=conf.get("checkpoint_id") or None,
            before=get_checkpoint_id(before) if before else None,
            limit=None if filter else limit,
        )
        left = limit
        for record in await self.store.list_checkpoints(listing):
            if left is not None and left <= 0:
                return
            metadata = self.serde.loads_typed((record.metadata_type, record.metadata))
            if filter and not all(metadata.get(k) == v for k, v in filter.items()):
                continue
            if left is not None:
                left -= 1
            own = _config(record.thread_id, record.checkpoint_ns, record.checkpoint_id)
            yield await self._tuple(record, own, metadata)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        self._remember_loop()
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        checkpoint_ns = str(conf.get("checkpoint_ns", ""))
        checkpoint_type, checkpoint_bytes = self.serde.dumps_typed(checkpoint)
        metadata_type, metadata_bytes = self.serde.dumps_typed(
            get_checkpoint_metadata(config, metadata)
        )
        await self.store.put_checkpoint(
            CheckpointRecord(
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                checkpoint_id=checkpoint["id"],
                execution_id=execution_of(thread_id),
                parent_checkpoint_id=conf.get("checkpoint_id") or None,
                checkpoint_type=checkpoint_type,
                checkpoint=checkpoint_bytes,
                metadata_type=metadata_type,
                metadata=metadata_bytes,
            )
        )
        return _config(thread_id, checkpoint_ns, checkpoint["id"])

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._remember_loop()
        conf = config["configurable"]
        records = []
        for idx, (channel, value) in enumerate(writes):
            value_type, value_bytes = self.serde.dumps_typed(value)
            records.append(
                CheckpointWrite(
                    thread_id=str(conf["thread_id"]),
                    checkpoint_ns=str(conf.get("checkpoint_ns", "")),
                    checkpoint_id=str(conf["checkpoint_id"]),
                    task_id=task_id,
                    idx=WRITES_IDX_MAP.get(channel, idx),
                    channel=channel,
                    value_type=value_type,
                    value=value_bytes,
                    task_path=task_path,
                )
            )
        await self.store.put_writes(records)

    async def adelete_thread(self, thread_id: str) -> None:
        self._remember_loop()
        await self.store.delete_thread(str(thread_id))

    async def adelete_for_execution(self, execution_id: str) -> int:
        """Delete every checkpoint of the execution's step runs (retention)."""
        self._remember_loop()
        return await self.store.delete_for_execution(execution_id)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Zero-padded counter plus a random tie-breaker, as LangGraph's own savers."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # --- sync API: handed to the saver's loop from another thread ---

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._sync(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        async def collect() -> list[CheckpointTuple]:
            found = self.alist(config, filter=filter, before=before, limit=limit)
            return [item async for item in found]

        yield from self._sync(collect())

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._sync(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._sync(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._sync(self.adelete_thread(thread_id))

    # --- helpers ---

    async def _tuple(
        self,
        record: CheckpointRecord,
        config: RunnableConfig,
        metadata: CheckpointMetadata | None = None,
    ) -> CheckpointTuple:
        writes = await self.store.get_writes(
            record.thread_id, record.checkpoint_ns, record.checkpoint_id
        )
        parent = record.parent_checkpoint_id
        return CheckpointTuple(
            config=config,
            checkpoint=self.serde.loads_typed((record.checkpoint_type, record.checkpoint)),
            metadata=(
                metadata
                if metadata is not None
                else self.serde.loads_typed((record.metadata_type, record.metadata))
            ),
            parent_config=(
                _config(record.thread_id, record.checkpoint_ns, parent) if parent else None
            ),
            pending_writes=[
                (w.task_id, w.channel, self.serde.loads_typed((w.value_type, w.value)))
                for w in writes
            ],
        )

    def _remember_loop(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self._loop
        if running is not None or loop is None or not loop.is_running():
            coro.close()
            raise asyncio.InvalidStateError(
                "StoreCheckpointSaver is async: use graph.ainvoke/astream (or the a* "
                "methods); sync calls are only allowed from another thread while the "
                "saver's event loop runs"
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result()


def _config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }
