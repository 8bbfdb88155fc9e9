"""Egress policy for outbound HTTP: checked addresses, checked redirects, capped bodies.

The policy refuses plain http and non-public addresses (private, loopback, link-local,
metadata, multicast) unless the ``host:port`` pair is allow-listed. A name is resolved
once per connection, inside the transport: every resolved address is checked and the
socket is opened to a checked address, so a rebinding resolver cannot swap in another
one between the check and the connection. TLS still verifies the certificate against
the hostname (SNI and Host carry the name, only the socket goes to the IP).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpcore
import httpx

from shared.errors import StepFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolves ``(host, port)`` to IP address strings; injectable for tests."""

CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
"""Headers never sent to another origin on a redirect."""
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system's resolver (``getaddrinfo``)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse_allowed(entries: Iterable[str]) -> frozenset[tuple[str, int | None]]:
    """Parse allow-list entries: ``host:port``, ``[v6]:port``, or a bare host (any port)."""
    parsed: set[tuple[str, int | None]] = set()
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, sep, port = entry.rpartition(":")
            if not sep or ":" in host:  # a bare name or a bare IPv6 address
                host, port = entry, ""
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"bad port in allowed host {raw!r}")
        parsed.add((host, int(port) if port else None))
    return frozenset(parsed)


def _denied(message: str) -> StepFailed:
    return StepFailed(message, code="EGRESS_DENIED", retryable=False)


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class EgressPolicy:
    """Which URLs and addresses outbound requests may reach."""

    allowed: frozenset[tuple[str, int | None]] = frozenset()
    """Allow-listed ``(host, port)`` pairs; port ``None`` allows every port of the host."""
    resolver: Resolver = system_resolver

    def allows(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is allow-listed (plain http and private addresses)."""
        host = host.lower().strip("[]")
        return (host, port) in self.allowed or (host, None) in self.allowed

    def check_url(self, url: httpx.URL) -> None:
        """Raise EGRESS_DENIED unless the URL's scheme and host may be called."""
        host = url.host.lower()
        if url.scheme not in _DEFAULT_PORTS or not host:
            raise _denied(f"unsupported URL {str(url)!r}")
        if url.scheme != "https" and not self.allows(host, _port(url)):
            raise _denied(f"plain http to {host} is not allowed (https only)")

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Resolve once and return the addresses, all checked unless allow-listed."""
        try:
            found: list[IPAddress] = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            try:
                found = [ipaddress.ip_address(a) for a in await self.resolver(host, port)]
            except OSError as exc:
                message = f"cannot resolve {host}: {exc}"
                raise StepFailed(message, code="HTTP_DNS", retryable=True) from exc
        if not found:
            raise StepFailed(f"{host} has no address", code="HTTP_DNS", retryable=True)
        if not self.allows(host, port):
            for address in found:
                if not _is_public(address):
                    raise _denied(f"{host} resolves to non-public address {address}")
        return found


def _port(url: httpx.URL) -> int:
    return url.port or _DEFAULT_PORTS.get(url.scheme, 0)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Network backend that connects only to addresses the policy has just checked."""

    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend) -> None:
        self.policy = policy
        self.inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        error: Exception = httpcore.ConnectError(f"cannot connect to {host}:{port}")
        for address in await self.policy.addresses(host, port):
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, ssl_context: ssl.SSLContext, backend: PinnedBackend) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx has no network-backend option: rebuild its pool around ours, so its
        # request/response and error mapping stay while every socket goes to a checked IP.
        self._pool = httpcore.AsyncConnectionPool(ssl_context=ssl_context, network_backend=backend)


class _NoQueryInRequestLines(logging.Filter):
    """httpx logs every request's URL at INFO: an http step's query may carry a secret
    (``${secret.NAME}``), so its request lines show URLs without the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(
                a.copy_with(query=None) if isinstance(a, httpx.URL) and a.query else a
                for a in record.args
            )
        return True


def _filter_httpx_request_lines() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _NoQueryInRequestLines) for f in logger.filters):
        logger.addFilter(_NoQueryInRequestLines())


@dataclass
class HttpGateway:
    """Outbound HTTP for steps: one client, one egress policy, capped responses."""

    allowed_hosts: frozenset[str] = frozenset()
    """``host:port`` entries allowed over plain http and on private addresses (a bare
    host allows every port of it)."""
    max_response_bytes: int = 1_000_000
    """Bytes of a response body kept; reading stops there."""
    max_redirects: int = 5
    resolver: Resolver = system_resolver
    ssl_context: ssl.SSLContext | None = None
    """Defaults to httpx's (certifi's CA bundle)."""
    network_backend: httpcore.AsyncNetworkBackend | None = None
    """Opens the sockets to checked addresses; defaults to httpcore's anyio backend."""
    _client: httpx.AsyncClient | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parse_allowed(self.allowed_hosts)  # a bad entry stops the process at startup
        _filter_httpx_request_lines()

    @property
    def policy(self) -> EgressPolicy:
        return EgressPolicy(parse_allowed(self.allowed_hosts), self.resolver)

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            inner = self.network_backend or httpcore.AnyIOBackend()
            context = self.ssl_context or httpx.create_ssl_context()
            transport = _PinnedTransport(context, PinnedBackend(self.policy, inner))
            self._client = httpx.AsyncClient(
                transport=transport,
                follow_redirects=False,
                trust_env=False,
                # one client serves every tenant: it must never keep cookies
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                headers={"Accept-Encoding": "gzip, deflate"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def check(self, url: str) -> None:
        """Raise EGRESS_DENIED unless ``url`` may be called (advisory: connections re-check)."""
        parsed = httpx.URL(url)
        policy = self.policy
        policy.check_url(parsed)
        await policy.addresses(parsed.host, _port(parsed))

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        params: Any = None,
        json: Any = None,
        timeout: float = 30.0,
        credential_headers: Collection[str] = (),
    ) -> httpx.Response:
        """Send a request, following checked redirects; the body is read up to the cap."""
        client = self.client()
        request = client.build_request(
            method, url, headers=headers, params=params, json=json, timeout=timeout
        )
        secret = CREDENTIAL_HEADERS | {name.lower() for name in credential_headers}
        policy = self.policy
        for _ in range(self.max_redirects + 1):
            policy.check_url(request.url)
            response = await client.send(request, stream=True)
            try:
                if not response.has_redirect_location:
                    return await _read_capped(response, self.max_response_bytes)
            finally:
                await response.aclose()
            request = _next_hop(request, response, secret)
        raise StepFailed("too many redirects", code="HTTP_REDIRECTS", retryable=False)


def _next_hop(
    request: httpx.Request, response: httpx.Response, secret: Collection[str]
) -> httpx.Request:
    url = request.url.join(response.headers["location"])
    method = request.method
    status = response.status_code
    if (status in (302, 303) and method != "HEAD") or (status == 301 and method == "POST"):
        method = "GET"  # as browsers and httpx do
    headers = httpx.Headers(request.headers)
    del headers["host"]  # recomputed for the new URL
    if (url.scheme, url.host, _port(url)) != (
        request.url.scheme,
        request.url.host,
        _port(request.url),
    ):
        for name in secret:
            headers.pop(name, None)
    content = request.content
    if method != request.method:
        content = b""
        for name in ("content-length", "content-type", "transfer-encoding"):
            headers.pop(name, None)
    return httpx.Request(
        method, url, headers=headers, content=content or None, extensions=request.extensions
    )


async def _read_capped(response: httpx.Response, cap: int) -> httpx.Response:
    """Read at most ``cap`` bytes of decoded body (plus one chunk), then stop."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
    decoder = zlib.decompressobj(wbits[encoding]) if encoding in wbits else None
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            room = cap + 1 - len(body)
            body += decoder.decompress(chunk, room) if decoder else chunk
            if len(body) > cap:
                break
    except zlib.error as exc:
        raise StepFailed(f"bad {encoding} body: {exc}", code="HTTP_DECODING") from exc
    truncated = len(body) > cap
    del body[cap:]
    dropped = ("content-length", "transfer-encoding", "content-encoding")
    kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
    return httpx.Response(
        response.status_code,
        headers=kept,
        content=bytes(body),
        request=response.request,
        extensions={"truncated": truncated},
    )
