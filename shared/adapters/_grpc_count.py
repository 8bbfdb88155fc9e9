"""Counting the gRPC calls a client makes, for cost figures (``bench/cost.py``).

Cloud Tasks, Firestore and Pub/Sub bill per operation; the RPCs a client sends are the
operations. ``RpcCounter`` hands out client interceptors (``grpc.aio`` and sync) that
count every call by its full method name, e.g.
``/google.cloud.tasks.v2.CloudTasks/CreateTask``, attempts of a retried call included.
Pass ``counter.aio_interceptors()`` to an adapter that accepts ``interceptors``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
from grpc import aio

__all__ = ["RpcCounter"]


def _method_name(details: Any) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)


class RpcCounter:
    """Thread-safe counts of the RPCs sent through its interceptors."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(self, method: str) -> None:
        with self._lock:
            self._counts[method] += 1

    def count(self, method: str) -> int:
        """Calls of ``method``: a full name, or a bare one (``CreateTask``) of any service."""
        with self._lock:
            if method.startswith("/"):
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
