"""What the Google API adapters share: building async clients and translating errors.

A client is built on first use (in the running event loop, which its ``grpc.aio``
channel belongs to), never at import. ``endpoint`` names an emulator or an in-test
fake: a plain-text channel without credentials. Otherwise the client connects to the
Google endpoint with Application Default Credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from grpc import aio

from shared.errors import TransientError, WorkflowError

__all__ = ["TRANSIENT", "async_client", "translate"]

C = TypeVar("C")

TRANSIENT: tuple[type[gexc.GoogleAPICallError], ...] = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.ResourceExhausted,
    gexc.Aborted,
    gexc.InternalServerError,
)
"""Answers that a later attempt can get past: UNAVAILABLE, DEADLINE_EXCEEDED,
RESOURCE_EXHAUSTED (quota), ABORTED and INTERNAL."""


def async_client(
    client_cls: type[C],
    transport_cls: Any,
    *,
    endpoint: str = "",
    interceptors: Sequence[aio.ClientInterceptor] = (),
) -> C:
    """A GAPIC async client; call inside the event loop that will use it."""
    chain = list(interceptors) or None
    if endpoint:
        channel = aio.insecure_channel(endpoint, interceptors=chain)
        return client_cls(transport=transport_cls(channel=channel))  # type: ignore[call-arg]
    if chain is None:
        return client_cls()

    def make_channel(*args: Any, **kwargs: Any) -> aio.Channel:
        channel: aio.Channel = transport_cls.create_channel(*args, interceptors=chain, **kwargs)
        return channel

    return client_cls(transport=transport_cls(channel=make_channel))  # type: ignore[call-arg]


def translate(exc: gexc.GoogleAPICallError, what: str, code: str) -> WorkflowError:
    """Our error for a failed call: TransientError when retrying can help."""
    message = f"{what}: {type(exc).__name__}: {exc.message}"
    details = {"grpcStatus": getattr(exc.grpc_status_code, "name", None) or str(exc.code)}
    if isinstance(exc, TRANSIENT):
        return TransientError(message, details=details)
    return WorkflowError(message, code=code, retryable=False, details=details)
