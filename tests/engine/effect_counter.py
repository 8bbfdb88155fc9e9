"""Raw HTTP test servers: one that counts effects by ``Idempotency-Key`` (redrive tests).

``POST /charge`` applies one effect per distinct key (a repeated key is answered from
the first result, as a payment API does) and can be held open by a gate, so a test
decides when the answer lands. ``/ship`` answers ``ship_status`` (404 until a test
repairs it), every other path 404.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Self


class RawHttpServer:
    """A raw HTTP/1.1 server on 127.0.0.1 (one request per connection); subclasses
    answer in ``_serve`` with ``read_request`` and ``answer``."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    @staticmethod
    async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
        """The request's path and headers (lower-cased names); the body is read and
        dropped."""
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in head[1:] if line)}
        await reader.readexactly(int(headers.get("content-length", "0")))
        return head[0].split(" ")[1], headers

    @staticmethod
    async def answer(writer: asyncio.StreamWriter, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        head = (
            f"HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()


class EffectCounter(RawHttpServer):
    """``effects`` is the number of distinct keys."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: Counter[str] = Counter()
        """Requests to ``/charge`` per idempotency key."""
        self.gate = asyncio.Event()
        self.gate.set()
        self.arrived = asyncio.Event()
        """Set whenever a ``/charge`` request arrives (clear it to wait for the next)."""
        self.ship_status = 404

    @property
    def effects(self) -> int:
        return len(self.keys)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path, headers = await self.read_request(reader)
            if path == "/ship":
                await self.answer(writer, self.ship_status, {"shipped": self.ship_status < 300})
                return
            if path != "/charge":
                await self.answer(writer, 404, {"error": "not_found"})
                return
            key = headers.get("idempotency-key", "")
            self.keys[key] += 1
            self.arrived.set()
            await self.gate.wait()
            await self.answer(writer, 200, {"key": key, "replayed": self.keys[key] > 1})
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up
        finally:
            writer.close()
