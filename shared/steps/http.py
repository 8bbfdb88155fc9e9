"""``http``: call a service, with an idempotency key and an egress policy.

The egress policy (``_egress``) refuses plain http and private, loopback, link-local
and metadata addresses unless the ``host:port`` is allowed in settings, as local mode
does for its demo service. Names are resolved once and the connection goes to the
checked address; every redirect hop is checked again; credentials are not sent to
another origin; the response body is read up to the cap and no further.

Credentials come from ``secrets`` (``_secrets``): references declared on the step,
placed as ``${secret.NAME}`` in header, query and body values, resolved when the step
runs and never recorded. A URL carrying credentials (``https://user:pass@host``) is
refused at validation and at run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import Field

from shared.engine.steps import Complete, Outcome, StepConfig, StepContext, StepType
from shared.errors import Issue, StepFailed, WorkflowError
from shared.expressions import check_template
from shared.models import WorkflowStep
from shared.ports.secrets import SecretRefForbidden, SecretResolver, check_secret_ref
from shared.steps._egress import HttpGateway
from shared.steps._secrets import (
    SECRET_NAME,
    SECRET_TEMPLATE,
    Placement,
    secret_names,
    without_secret_templates,
)

__all__ = ["HttpConfig", "HttpGateway", "HttpStep"]

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
HTTP_MARGIN_SECONDS = 5.0
"""Time an http step may take beyond its ``timeoutSeconds`` (redirect hops, the body)."""


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
    secrets: dict[str, str] = Field(default_factory=dict, max_length=20)
    """``NAME: reference`` (``env:WFE_SECRET_<NAME>`` or ``sm:<name>``): each is placed
    with ``${secret.NAME}`` in a header, query or body value."""


_NAME = re.compile(SECRET_NAME)
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")
"""A URL whose authority carries ``user[:password]@`` before the host."""


def _url_issues(url: str, path: str) -> list[Issue]:
    issues: list[Issue] = []
    if SECRET_TEMPLATE.search(url):
        issues.append(
            Issue(
                "SECRET_IN_URL",
                "secrets go in headers, query or body, never in the URL (URLs are logged "
                "and recorded)",
                path,
            )
        )
    if _USERINFO.match(url):
        issues.append(
            Issue(
                "URL_CREDENTIALS",
                "a URL cannot carry credentials (user:password@): declare them in secrets "
                "and send them in a header",
                path,
            )
        )
    return issues


def _secret_issues(secrets: Mapping[str, str], path: str) -> list[Issue]:
    issues: list[Issue] = []
    for name, ref in secrets.items():
        if not _NAME.fullmatch(name):
            issues.append(
                Issue("SECRET_NAME", f"secret name {name[:64]!r} is not an identifier", path)
            )
            continue
        try:
            check_secret_ref(ref)
        except SecretRefForbidden as exc:
            issues.append(Issue(exc.code, exc.message, f"{path}/{name}"))
    return issues


def _scrubbed(failed: StepFailed, secrets: Placement) -> StepFailed:
    """``failed`` with no copy of a secret in its message or details."""
    return StepFailed(
        secrets.scrub(failed.message),
        code=failed.code,
        retryable=failed.retryable,
        details=secrets.scrub(failed.details),
    )


async def _resolve(secrets: Mapping[str, str], resolver: SecretResolver | None) -> dict[str, str]:
    if not secrets:
        return {}
    if resolver is None:
        raise StepFailed("no secret resolver is configured", code="SECRET_UNAVAILABLE")
    values: dict[str, str] = {}
    for name, ref in secrets.items():
        try:
            values[name] = await resolver.resolve(ref)
        except WorkflowError as exc:
            raise StepFailed(
                f"secret {name}: {exc.message}", code=exc.code, retryable=exc.retryable
            ) from exc
    return values


class HttpStep(StepType):
    type_name = "http"
    config_model = HttpConfig

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        where = f"{path}/config"
        placed = {"headers": config.headers, "query": config.query, "body": config.body}
        issues = _url_issues(config.url, f"{where}/url")
        issues += _secret_issues(config.secrets, f"{where}/secrets")
        for field, value in placed.items():
            issues += secret_names(value, f"{where}/{field}", config.secrets)
        if any(issue.code == "SECRET_IN_URL" for issue in issues):
            return issues
        return issues + check_template(
            {"url": config.url, **without_secret_templates(placed)}, where
        )

    def time_limit(self, config: Any) -> float | None:
        """The call's own timeout (httpx applies it to connecting and to each read) and a
        margin for redirects and a slow body: the engine cuts the whole call there
        (``STEP_TIMEOUT``), and a dead worker's run is retried soon after."""
        return float(config.timeout_seconds) + HTTP_MARGIN_SECONDS

    async def execute(self, ctx: StepContext) -> Outcome:
        gateway: HttpGateway | None = ctx.services.http
        if gateway is None:
            raise StepFailed("http is not configured", code="NO_HTTP", retryable=False)
        config: HttpConfig = ctx.config
        secrets = Placement(await _resolve(config.secrets, ctx.services.secrets))
        url = str(ctx.render(config.url))
        if _USERINFO.match(url) or urlsplit(url).username is not None:
            raise StepFailed(
                "the URL carries credentials (user:password@): declare them in secrets",
                code="URL_CREDENTIALS",
                retryable=False,
            )
        headers = secrets.mark(config.headers)
        query = ctx.render(secrets.mark(config.query))
        body = ctx.render(secrets.mark(config.body))
        sent = {k: str(v) for k, v in secrets.reveal(ctx.render(headers)).items()}
        sent.setdefault("Idempotency-Key", ctx.run.idempotency_key or ctx.run.id)
        ctx.run.input = secrets.scrub(
            {
                "method": config.method,
                "url": url,
                "query": secrets.redact(query),
                "body": secrets.redact(body),
            }
        )
        try:
            response = await gateway.request(
                config.method,
                url,
                headers=sent,
                params=secrets.reveal(query),
                json=secrets.reveal(body),
                timeout=config.timeout_seconds,
                credential_headers=config.credential_headers,
            )
            output = self._result(response, config, gateway.max_response_bytes)
        except httpx.TimeoutException as exc:
            raise StepFailed(f"timeout calling {url}", code="HTTP_TIMEOUT") from exc
        except httpx.TransportError as exc:
            failed = StepFailed(f"cannot reach {url}: {exc}", code="HTTP_UNREACHABLE")
            raise _scrubbed(failed, secrets) from None
        except StepFailed as failed:
            raise _scrubbed(failed, secrets) from None
        return Complete(output=secrets.scrub(output))

    def _result(self, response: httpx.Response, config: HttpConfig, cap: int) -> dict[str, Any]:
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
            return output
        retryable = response.status_code in RETRYABLE_STATUS
        raise StepFailed(
            f"HTTP {response.status_code} from {response.request.url.copy_with(query=None)}",
            code=f"HTTP_{response.status_code}",
            retryable=retryable,
            details=output,
        )
