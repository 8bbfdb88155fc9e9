"""``http``: call a service, with an idempotency key and an egress policy.

The egress policy refuses plain http and private, loopback, link-local and metadata
addresses (checked after DNS resolution and again on every redirect) unless the host
is explicitly allowed in settings, as local mode does for its demo service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import Field

from shared.engine.steps import Complete, Outcome, StepConfig, StepContext, StepType
from shared.errors import Issue, StepFailed
from shared.expressions import check_template
from shared.models import WorkflowStep

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpConfig(StepConfig):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = Field(min_length=1, max_length=4096)
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    body: Any = None
    """JSON body template."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=900)
    success_codes: list[int] | None = None
    """Status codes counted as success; default 2xx."""


@dataclass
class HttpGateway:
    """Outbound HTTP for steps: one client, one egress policy."""

    allowed_hosts: frozenset[str] = frozenset()
    """Hosts allowed despite resolving to private/loopback addresses, and over plain http."""
    max_response_bytes: int = 1_000_000
    max_redirects: int = 5
    _client: httpx.AsyncClient | None = field(default=None, repr=False)

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def check(self, url: str) -> None:
        """Raise EGRESS_DENIED unless ``url`` may be called."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise _denied(f"unsupported URL {url!r}")
        if host in self.allowed_hosts:
            return
        if parts.scheme != "https":
            raise _denied(f"plain http to {host} is not allowed (https only)")
        for address in await _resolve(host, parts.port or 443):
            if not address.is_global or address.is_multicast:
                raise _denied(f"{host} resolves to non-public address {address}")

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        for _ in range(self.max_redirects + 1):
            await self.check(url)
            response = await self.client().request(method, url, **kwargs)
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            url = urljoin(url, response.headers.get("location", ""))
            if response.status_code == 303:
                method, kwargs = "GET", {k: v for k, v in kwargs.items() if k != "json"}
        raise StepFailed("too many redirects", code="HTTP_REDIRECTS", retryable=False)


def _denied(message: str) -> StepFailed:
    return StepFailed(message, code="EGRESS_DENIED", retryable=False)


async def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise StepFailed(f"cannot resolve {host}: {exc}", code="HTTP_DNS", retryable=True) from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]


class HttpStep(StepType):
    type_name = "http"
    config_model = HttpConfig

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        return check_template(
            {
                "url": config.url,
                "headers": config.headers,
                "query": config.query,
                "body": config.body,
            },
            f"{path}/config",
        )

    async def execute(self, ctx: StepContext) -> Outcome:
        gateway: HttpGateway | None = ctx.services.http
        if gateway is None:
            raise StepFailed("http is not configured", code="NO_HTTP", retryable=False)
        config: HttpConfig = ctx.config
        url = str(ctx.render(config.url))
        headers = {k: str(v) for k, v in ctx.render(config.headers).items()}
        headers.setdefault("Idempotency-Key", ctx.run.idempotency_key or ctx.run.id)
        query = ctx.render(config.query)
        body = ctx.render(config.body)
        ctx.run.input = {"method": config.method, "url": url, "query": query, "body": body}
        kwargs: dict[str, Any] = {
            "headers": headers,
            "params": query,
            "timeout": config.timeout_seconds,
        }
        if body is not None:
            kwargs["json"] = body
        try:
            response = await gateway.request(config.method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise StepFailed(f"timeout calling {url}", code="HTTP_TIMEOUT") from exc
        except httpx.TransportError as exc:
            raise StepFailed(f"cannot reach {url}: {exc}", code="HTTP_UNREACHABLE") from exc
        return self._result(response, config, gateway.max_response_bytes)

    def _result(self, response: httpx.Response, config: HttpConfig, cap: int) -> Outcome:
        content = response.content[:cap]
        try:
            payload: Any = json.loads(content) if content else None
        except ValueError:
            payload = content.decode(errors="replace")
        output = {
            "status": response.status_code,
            "body": payload,
            "headers": {
                k: v
                for k, v in response.headers.items()
                if k.lower() in ("content-type", "location", "etag")
            },
        }
        ok = (
            response.status_code in config.success_codes
            if config.success_codes
            else 200 <= response.status_code < 300
        )
        if ok:
            return Complete(output=output)
        retryable = response.status_code in RETRYABLE_STATUS
        raise StepFailed(
            f"HTTP {response.status_code} from {response.request.url}",
            code=f"HTTP_{response.status_code}",
            retryable=retryable,
            details=output,
        )
