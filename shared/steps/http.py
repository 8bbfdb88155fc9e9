"""``http``: call a service, with an idempotency key and an egress policy.

The egress policy (``_egress``) refuses plain http and private, loopback, link-local
and metadata addresses unless the ``host:port`` is allowed in settings, as local mode
does for its demo service. Names are resolved once and the connection goes to the
checked address; every redirect hop is checked again; credentials are not sent to
another origin; the response body is read up to the cap and no further.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import httpx
from pydantic import Field

from shared.engine.steps import Complete, Outcome, StepConfig, StepContext, StepType
from shared.errors import Issue, StepFailed
from shared.expressions import check_template
from shared.models import WorkflowStep
from shared.steps._egress import HttpGateway

__all__ = ["HttpConfig", "HttpGateway", "HttpStep"]

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
    credential_headers: list[str] = Field(default_factory=list, max_length=50)
    """Headers not sent to another origin on a redirect, besides ``Authorization``,
    ``Cookie`` and ``Proxy-Authorization``."""


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
        try:
            response = await gateway.request(
                config.method,
                url,
                headers=headers,
                params=query,
                json=body,
                timeout=config.timeout_seconds,
                credential_headers=config.credential_headers,
            )
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
