"""Egress attacks on http steps (issue 10, items 7 to 9), each refused or contained.

- a rebinding resolver (a public answer for the check, 127.0.0.1 for the connection):
  the socket goes to the checked address, TLS still verified for the hostname;
- a redirect to another origin carrying ``Authorization``, cookies and marked headers;
- a redirect hop to the metadata address or to a loopback port not allow-listed;
- a 200 MB (and a gzip-bombed) response: reading stops at the cap, memory stays flat;
- an allow-list entry with a port admits that port only, and ``wfe dev`` allows the
  demo service's port, not its own API's.

Every server is local; "public" names reach it through a test network backend that
routes a public address to a loopback port, as the internet would.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.adapters.memory_store import MemoryStore
from shared.dev.server import DevOptions, DevServer
from shared.errors import StepFailed
from shared.settings import Settings
from shared.steps._egress import parse_allowed
from shared.steps.http import HttpGateway
from tests.engine.harness import Harness

PUBLIC_IP = "93.184.216.34"
CAP = 1_000_000
Handler = Callable[[str, dict[str, str], asyncio.StreamWriter], Awaitable[None]]


class LocalServer:
    """A raw HTTP/1.1 server on 127.0.0.1 that records each request's path and headers."""

    def __init__(self, handler: Handler | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler or _text("ok")
        self.tls = tls
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> LocalServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = dict(line.split(": ", 1) for line in head[1:] if line)
            headers = {k.lower(): v for k, v in headers.items()}
            await reader.readexactly(int(headers.get("content-length", "0")))
            path = head[0].split(" ")[1]
            self.seen.append((path, headers))
            await self.handler(path, headers, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client hung up (the cap) or refused our certificate
        finally:
            writer.close()


def _head(status: int, extra: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "Connection: close", *(f"{k}: {v}" for k, v in extra)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _text(body: str) -> Handler:
    async def handler(path: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        data = body.encode()
        writer.write(_head(200, [("Content-Length", str(len(data)))]) + data)
        await writer.drain()

    return handler


def _redirect(location: str | Callable[[str], str], status: int = 302) -> Handler:
    async def handler(path: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        if path == "/landing":
            return await _text("landed")(path, headers, writer)
        target = location(path) if callable(location) else location
        writer.write(_head(status, [("Location", target), ("Content-Length", "0")]))
        await writer.drain()

    return handler


class Resolver:
    """Answers from a table; a list of answers is served one per call (rebinding)."""

    def __init__(self, table: dict[str, list[list[str]]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        answers = self.table[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]


class Network(httpcore.AsyncNetworkBackend):
    """Routes public addresses to local ports and records where sockets were opened.

    A name it is given is resolved with the same (rebinding) resolver, as the operating
    system would: a transport that connected by name would be caught by the second answer.
    """

    def __init__(self, resolver: Resolver, routes: dict[tuple[str, int], int]) -> None:
        self.resolver = resolver
        self.routes = routes
        self.connected: list[str] = []
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            host = (await self.resolver(host, port))[0]
        self.connected.append(host)
        target = self.routes.get((host, port))
        if target is None:
            raise httpcore.ConnectError(f"no route to {host}:{port}")
        return await self.inner.connect_tcp("127.0.0.1", target, timeout)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for ``name``: (server context, client context trusting it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


@pytest.fixture
async def gateways() -> AsyncIterator[list[HttpGateway]]:
    made: list[HttpGateway] = []
    yield made
    for gateway in made:
        await gateway.aclose()


async def _denied(gateway: HttpGateway, url: str, **kwargs: Any) -> StepFailed:
    with pytest.raises(StepFailed) as raised:
        await gateway.request("GET", url, timeout=5.0, **kwargs)
    assert raised.value.code == "EGRESS_DENIED", raised.value
    return raised.value


async def test_rebinding_resolver_cannot_swap_the_checked_address(
    tmp_path: Path, gateways: list[HttpGateway]
) -> None:
    server_tls, client_tls = _certificate(tmp_path, "rebind.example")
    async with (
        LocalServer(_text("public"), tls=server_tls) as public,
        LocalServer(_text("internal")) as internal,
    ):
        resolver = Resolver({"rebind.example": [[PUBLIC_IP], ["127.0.0.1"]]})
        network = Network(
            resolver, {(PUBLIC_IP, 443): public.port, ("127.0.0.1", 443): internal.port}
        )
        gateway = HttpGateway(resolver=resolver, network_backend=network, ssl_context=client_tls)
        gateways.append(gateway)
        response = await gateway.request("GET", "https://rebind.example/data")
    assert (response.status_code, response.text) == (200, "public")
    assert resolver.calls == ["rebind.example"]  # resolved once
    assert network.connected == [PUBLIC_IP]  # the socket went to the checked address
    assert internal.seen == []
    assert public.seen[0][1]["host"] == "rebind.example"  # Host and SNI keep the name


async def test_certificate_is_still_verified_for_the_hostname(
    tmp_path: Path, gateways: list[HttpGateway]
) -> None:
    server_tls, client_tls = _certificate(tmp_path, "rebind.example")
    async with LocalServer(_text("public"), tls=server_tls) as public:
        resolver = Resolver({"other.example": [[PUBLIC_IP]]})
        network = Network(resolver, {(PUBLIC_IP, 443): public.port})
        gateway = HttpGateway(resolver=resolver, network_backend=network, ssl_context=client_tls)
        gateways.append(gateway)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await gateway.request("GET", "https://other.example/")
    assert network.connected == [PUBLIC_IP]
    assert public.seen == []


async def test_any_non_public_answer_refuses_the_name(gateways: list[HttpGateway]) -> None:
    resolver = Resolver({"mixed.example": [[PUBLIC_IP, "127.0.0.1"]]})
    network = Network(resolver, {})
    gateway = HttpGateway(resolver=resolver, network_backend=network)
    gateways.append(gateway)
    error = await _denied(gateway, "https://mixed.example/")
    assert "127.0.0.1" in error.message
    assert network.connected == []


async def test_cross_origin_redirect_drops_credentials(gateways: list[HttpGateway]) -> None:
    async with LocalServer(_text("landed")) as other, LocalServer() as origin:
        origin.handler = _redirect(
            lambda path: "/landing" if path == "/same" else f"http://b.example:{other.port}/x"
        )
        resolver = Resolver({"a.example": [["127.0.0.1"]], "b.example": [["127.0.0.1"]]})
        gateway = HttpGateway(
            allowed_hosts=frozenset({f"a.example:{origin.port}", f"b.example:{other.port}"}),
            resolver=resolver,
        )
        gateways.append(gateway)
        headers = {
            "Authorization": "Bearer s3cret",
            "Cookie": "session=s3cret",
            "Proxy-Authorization": "Basic s3cret",
            "X-Api-Key": "s3cret",
            "X-Trace": "kept",
        }
        kwargs: dict[str, Any] = {"headers": headers, "credential_headers": ["X-Api-Key"]}
        away = await gateway.request("GET", f"http://a.example:{origin.port}/away", **kwargs)
        same = await gateway.request("GET", f"http://a.example:{origin.port}/same", **kwargs)
    assert (away.status_code, away.text, same.text) == (200, "landed", "landed")
    [(_, received)] = other.seen
    assert received["x-trace"] == "kept"
    assert "s3cret" not in repr(received)
    landing = dict(origin.seen)["/landing"]  # same origin: the credentials go on
    assert landing["authorization"] == "Bearer s3cret"
    assert landing["x-api-key"] == "s3cret"


@pytest.mark.parametrize(
    "location",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://metadata.example/computeMetadata/v1/",
        "https://127.0.0.1:{internal}/admin",
        "http://127.0.0.1:{internal}/admin",
        "https://localhost.example:{internal}/admin",
        "http://public.example/downgraded",
    ],
)
async def test_redirect_to_a_forbidden_address_is_refused_at_the_hop(
    location: str, gateways: list[HttpGateway]
) -> None:
    async with LocalServer(_text("internal")) as internal, LocalServer() as origin:
        origin.handler = _redirect(location.format(internal=internal.port))
        resolver = Resolver(
            {
                "metadata.example": [["169.254.169.254"]],
                "localhost.example": [["127.0.0.1"]],
                "public.example": [[PUBLIC_IP]],
            }
        )
        network = Network(resolver, {("127.0.0.1", origin.port): origin.port})
        gateway = HttpGateway(
            allowed_hosts=frozenset({f"127.0.0.1:{origin.port}"}),
            resolver=resolver,
            network_backend=network,
        )
        gateways.append(gateway)
        await _denied(gateway, f"http://127.0.0.1:{origin.port}/start")
    assert [path for path, _ in origin.seen] == ["/start"]
    assert network.connected == ["127.0.0.1"]  # no socket opened for the hop
    assert internal.seen == []


async def test_redirect_hops_are_capped(gateways: list[HttpGateway]) -> None:
    async with LocalServer(_redirect("/again")) as loop_server:
        gateway = HttpGateway(allowed_hosts=frozenset({f"127.0.0.1:{loop_server.port}"}))
        gateways.append(gateway)
        with pytest.raises(StepFailed) as raised:
            await gateway.request("GET", f"http://127.0.0.1:{loop_server.port}/start")
    assert raised.value.code == "HTTP_REDIRECTS"
    assert len(loop_server.seen) == gateway.max_redirects + 1


def _huge(total: int, sent: list[int], encode: Callable[[bytes], bytes] | None = None) -> Handler:
    """Stream ``total`` bytes lazily, 64 KiB at a time, counting the blocks sent."""

    async def handler(path: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        if path == "/warm":  # the first request imports and allocates what any request does
            return await _text("warm")(path, headers, writer)
        block = b"x" * 65536
        extra = (
            [("Content-Length", str(total))] if encode is None else [("Content-Encoding", "gzip")]
        )
        writer.write(_head(200, extra))
        for _ in range(total // len(block)):
            if writer.is_closing():
                return
            writer.write(encode(block) if encode else block)
            sent.append(len(block))
            await writer.drain()
            await asyncio.sleep(0)  # lets the hang-up arrive though gzip output is tiny
        if encode is not None:
            writer.write(encode(b""))

    return handler


def _gzip() -> Callable[[bytes], bytes]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return lambda block: compressor.compress(block) if block else compressor.flush()


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
async def test_a_200_mb_response_stops_at_the_cap(gzip: bool, gateways: list[HttpGateway]) -> None:
    total, sent = 200 * 1024 * 1024, list[int]()
    async with LocalServer(_huge(total, sent, _gzip() if gzip else None)) as server:
        gateway = HttpGateway(
            allowed_hosts=frozenset({f"127.0.0.1:{server.port}"}), max_response_bytes=CAP
        )
        gateways.append(gateway)
        await gateway.request("GET", f"http://127.0.0.1:{server.port}/warm")
        tracemalloc.start()
        try:
            response = await gateway.request("GET", f"http://127.0.0.1:{server.port}/big")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(response.content) == CAP
    assert response.extensions["truncated"] is True
    assert peak < 3 * CAP, f"peak {peak / 1e6:.1f} MB for a {CAP / 1e6:.0f} MB cap"
    assert sum(sent) < total / 4  # the client hung up early, the server stopped


async def test_an_allow_listed_port_admits_that_port_only(gateways: list[HttpGateway]) -> None:
    async with LocalServer(_text("demo")) as demo, LocalServer(_text("api")) as api:
        strict = HttpGateway(allowed_hosts=frozenset({f"127.0.0.1:{demo.port}"}))
        legacy = HttpGateway(allowed_hosts=frozenset({"127.0.0.1"}))
        gateways.extend([strict, legacy])
        assert (await strict.request("GET", f"http://127.0.0.1:{demo.port}/")).text == "demo"
        await _denied(strict, f"http://127.0.0.1:{api.port}/")
        await _denied(strict, f"https://127.0.0.1:{api.port}/")
        assert (await legacy.request("GET", f"http://127.0.0.1:{api.port}/")).text == "api"
    assert api.seen[0][0] == "/"
    assert len(api.seen) == 1  # only the bare (every port) entry reached it


def test_allow_list_entries_parse_with_ports() -> None:
    assert parse_allowed(["127.0.0.1:8099", "Demo.Local", "[::1]:8080", "::1", " "]) == {
        ("127.0.0.1", 8099),
        ("demo.local", None),
        ("::1", 8080),
        ("::1", None),
    }
    with pytest.raises(ValueError, match="bad port"):
        HttpGateway(allowed_hosts=frozenset({"127.0.0.1:99999"}))


async def test_dev_server_allows_the_demo_port_only(tmp_path: Path) -> None:
    settings = Settings.local_mode(str(tmp_path / "wfe.db"))
    server = DevServer(settings, DevOptions(port=8080, examples=None, demo_port=0))
    await server.start()
    try:
        assert server.runtime is not None and server.demo_url is not None
        gateway = server.runtime.http
        await gateway.check(f"{server.demo_url}/inventory")
        with pytest.raises(StepFailed, match="https only"):
            await gateway.check("http://127.0.0.1:8080/api/v1/workflows")  # the service itself
    finally:
        await server.stop()


async def test_an_http_step_keeps_its_marked_header_and_the_cap(
    gateways: list[HttpGateway],
) -> None:
    async with LocalServer(_text("x" * 5000)) as other, LocalServer() as origin:
        origin.handler = _redirect(f"http://127.0.0.1:{other.port}/big")
        gateway = HttpGateway(
            allowed_hosts=frozenset({f"127.0.0.1:{origin.port}", f"127.0.0.1:{other.port}"}),
            max_response_bytes=1000,
        )
        gateways.append(gateway)
        h = Harness(MemoryStore(), http=gateway)
        config = {
            "url": f"http://127.0.0.1:{origin.port}/start",
            "headers": {"X-Api-Key": "s3cret"},
            "credentialHeaders": ["X-Api-Key"],
        }
        workflow = await h.create(
            {"name": "w", "steps": [{"id": "call", "type": "http", "config": config}]}
        )
        execution = await h.start(workflow)
        await h.drain()
        [run] = await h.runs(execution.id)
    assert run.output is not None and run.output["body"] == "x" * 1000  # cut at the cap
    assert origin.seen[0][1]["x-api-key"] == "s3cret"
    assert "x-api-key" not in other.seen[0][1]
