"""Counting the gRPC calls a client makes, for cost figures (``bench/cost.py``).

Cloud Tasks, Firestore and Pub/Sub bill per operation; the RPCs a client sends are the
operations. ``RpcCounter`` hands out client interceptors (``grpc.aio`` and sync) that
count every call by its full method name, e.g.
``/google.cloud.tasks.v2.CloudTasks/CreateTask``, attempts of a retried call included.
Pass ``counter.aio_interceptors()`` to an adapter that accepts ``interceptors``.

Firestore bills documents, not calls: ``counter.firestore_interceptors()`` also counts
the documents a call read or wrote, under ``DOCUMENTS_READ`` (each document a
``BatchGetDocuments`` answered, found or missing, and each one a ``RunQuery`` returned,
at least one per query as Firestore bills), ``DOCUMENTS_WRITTEN`` (the writes of each
``Commit``) and ``TRANSACTIONS`` (the commits of a transaction).
``counting_firestore_client`` attaches them to an AsyncClient on the emulator
(``bench/cost.py``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from grpc import aio

__all__ = [
    "DOCUMENTS_READ",
    "DOCUMENTS_WRITTEN",
    "TRANSACTIONS",
    "RpcCounter",
    "counting_firestore_client",
]

DOCUMENTS_READ = "firestore:documents_read"
DOCUMENTS_WRITTEN = "firestore:documents_written"
TRANSACTIONS = "firestore:transactions"
"""Commits of a transaction (a ``Commit`` with a transaction id)."""


def _method_name(details: Any) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)


class RpcCounter:
    """Thread-safe counts of the RPCs sent through its interceptors."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(self, method: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[method] += amount

    def count(self, method: str) -> int:
        """Calls of ``method``: a full name, or a bare one (``CreateTask``) of any service;
        or the count of a key such as ``DOCUMENTS_READ``."""
        with self._lock:
            if method.startswith("/") or method in self._counts:
                return self._counts[method]
            return sum(n for name, n in self._counts.items() if name.endswith(f"/{method}"))

    def snapshot(self) -> dict[str, int]:
        """Every method called so far and how often."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> dict[str, int]:
        """Start again from zero; returns the counts up to now."""
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
            return counts

    def aio_interceptors(self) -> list[aio.ClientInterceptor]:
        """Interceptors for ``grpc.aio`` channels, one per call shape."""
        return [
            _AioUnaryUnary(self.record),
            _AioUnaryStream(self.record),
            _AioStreamUnary(self.record),
            _AioStreamStream(self.record),
        ]

    def firestore_interceptors(self) -> list[aio.ClientInterceptor]:
        """``aio_interceptors`` plus the documents read and written (see the module)."""
        return [
            *self.aio_interceptors(),
            _FirestoreCommits(self.record),
            _FirestoreReads(self.record),
        ]

    def interceptor(self) -> _SyncCounting:
        """An interceptor for sync channels: ``grpc.intercept_channel(ch, it)``."""
        return _SyncCounting(self.record)


Record = Callable[[str], None]


class _AioUnaryUnary(aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, record: Record) -> None:
        self._record = record

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        self._record(_method_name(client_call_details))
        return await continuation(client_call_details, request)


class _AioUnaryStream(aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, record: Record) -> None:
        self._record = record

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        self._record(_method_name(client_call_details))
        return await continuation(client_call_details, request)


class _AioStreamUnary(aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, record: Record) -> None:
        self._record = record

    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        self._record(_method_name(client_call_details))
        return await continuation(client_call_details, request_iterator)


class _AioStreamStream(aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, record: Record) -> None:
        self._record = record

    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        self._record(_method_name(client_call_details))
        return await continuation(client_call_details, request_iterator)


class _FirestoreCommits(aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, record: Callable[[str, int], None]) -> None:
        self._record = record

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        if _method_name(client_call_details).endswith("/Commit"):
            self._record(DOCUMENTS_WRITTEN, len(request.writes))
            if request.transaction:
                self._record(TRANSACTIONS, 1)
        return await continuation(client_call_details, request)


class _FirestoreReads(aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Counts the documents of ``BatchGetDocuments`` and ``RunQuery`` answers."""

    def __init__(self, record: Callable[[str, int], None]) -> None:
        self._record = record

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        call = await continuation(client_call_details, request)
        method = _method_name(client_call_details)
        if method.endswith("/BatchGetDocuments"):
            return self._counted(call, lambda r: "found" in r or bool(r.missing), 0)
        if method.endswith("/RunQuery"):
            return self._counted(call, lambda r: "document" in r, 1)
        return call

    async def _counted(
        self, call: Any, is_document: Callable[[Any], bool], minimum: int
    ) -> AsyncIterator[Any]:
        documents = 0  # recorded as they come: a reader may stop early (a single get)
        try:
            async for response in call:
                if is_document(response):
                    documents += 1
                    self._record(DOCUMENTS_READ, 1)
                yield response
        finally:
            if documents < minimum:
                self._record(DOCUMENTS_READ, minimum - documents)


def counting_firestore_client(
    project: str, interceptors: Sequence[aio.ClientInterceptor], database: str | None = None
) -> Any:
    """A Firestore ``AsyncClient`` on the emulator (FIRESTORE_EMULATOR_HOST) whose channel
    carries ``interceptors``: the SDK builds its emulator channel in ``_emulator_channel``,
    which this subclass overrides."""
    from google.cloud.firestore import AsyncClient

    class CountingAsyncClient(AsyncClient):
        def _emulator_channel(self, transport: Any) -> Any:
            if self._emulator_host is None:
                raise RuntimeError("counting_firestore_client needs FIRESTORE_EMULATOR_HOST")
            options = [("grpc.max_send_message_length", -1)]
            options.append(("grpc.max_receive_message_length", -1))
            return aio.insecure_channel(
                self._emulator_host, options=options, interceptors=list(interceptors)
            )

    return CountingAsyncClient(project=project, database=database)


class _SyncCounting(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Sync channels accept one object implementing every shape."""

    def __init__(self, record: Record) -> None:
        self._record = record

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        self._record(_method_name(client_call_details))
        return continuation(client_call_details, request)

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        self._record(_method_name(client_call_details))
        return continuation(client_call_details, request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        self._record(_method_name(client_call_details))
        return continuation(client_call_details, request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        self._record(_method_name(client_call_details))
        return continuation(client_call_details, request_iterator)
