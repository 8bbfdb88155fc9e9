"""A small in-test gRPC server built from a client library's own message types.

No emulator exists for Cloud Scheduler, and the Cloud Tasks emulator neither refuses
duplicate names nor keeps OIDC settings: these fakes answer the real client over a
real channel, with the proto-plus types' ``serialize``/``deserialize``. Each records
the calls it got (method, request) in order, and ``fail_next`` makes the next calls
of a method answer with a gRPC error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc

Handler = Callable[[Any, grpc.ServicerContext], Any]


class FakeService:
    """Records calls and serves ``methods`` (name -> handler, request type, response type)."""

    service: str = ""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._failures: dict[str, list[grpc.StatusCode]] = {}
        self.lock = threading.Lock()

    def methods(self) -> dict[str, tuple[Handler, Any, Any]]:
        raise NotImplementedError

    def fail_next(self, method: str, *codes: grpc.StatusCode) -> None:
        """Answer the next ``len(codes)`` calls of ``method`` with these errors."""
        with self.lock:
            self._failures.setdefault(method, []).extend(codes)

    def called(self, *methods: str) -> list[str]:
        """Names of the calls so far, only those in ``methods`` when given."""
        with self.lock:
            return [name for name, _ in self.calls if not methods or name in methods]

    def _wrap(self, name: str, handler: Handler) -> Handler:
        def serve(request: Any, context: grpc.ServicerContext) -> Any:
            with self.lock:
                self.calls.append((name, request))
                pending = self._failures.get(name)
                code = pending.pop(0) if pending else None
            if code is not None:
                context.abort(code, f"injected {code.name}")
            return handler(request, context)

        return serve

    def generic_handler(self) -> grpc.GenericRpcHandler:
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._wrap(name, handler),
                request_deserializer=request_type.deserialize,
                response_serializer=response_type.serialize,
            )
            for name, (handler, request_type, response_type) in self.methods().items()
        }
        return grpc.method_handlers_generic_handler(self.service, handlers)


@contextmanager
def serve(fake: FakeService) -> Iterator[str]:
    """Run ``fake`` on a free local port; yields ``host:port``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((fake.generic_handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait(5)


class EmptyType:
    """``google.protobuf.Empty`` with the proto-plus codec interface."""

    @staticmethod
    def serialize(_message: Any) -> bytes:
        return b""

    @staticmethod
    def deserialize(_data: bytes) -> None:
        return None
