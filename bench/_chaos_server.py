"""The chaos suite's server process: ``wfe dev`` (the same ``DevServer`` app under
uvicorn, on the embedded SQLite store, no examples, no demo service) plus one fault
switch for the store.

``SIGUSR1`` caps the store's database file at its current size with SQLite's own
``PRAGMA max_page_count`` on the engine's writer connection, so the next write that
needs a new page fails with SQLITE_FULL ("database or disk is full"), as on a full
disk; ``SIGUSR2`` lifts the cap. The chaos driver SIGKILLs this process and starts a
new one on the same file. Settings come from the environment as for ``wfe dev``
(``WFE_DUPLICATE_RATE``, ``WFE_HTTP_ALLOWED_HOSTS``, ...).

Run: ``python bench/_chaos_server.py --port P --db FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.composition import LocalRuntime
from shared.composition.edge import configure_observability
from shared.dev.server import DevOptions, DevServer
from shared.observability import TelemetryMiddleware, uvicorn_log_config
from shared.settings import Settings

log = logging.getLogger("chaos.server")
UNCAPPED = 1_073_741_823


class FaultSwitch:
    """Wraps the dev app; once it has started, SIGUSR1/SIGUSR2 cap and uncap the store."""

    def __init__(self, server: DevServer) -> None:
        self.server = server
        self.installed = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and not self.installed:
            self.installed = True
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGUSR1, lambda: loop.create_task(self.cap(True)))
            loop.add_signal_handler(signal.SIGUSR2, lambda: loop.create_task(self.cap(False)))
        await self.server(scope, receive, send)

    async def cap(self, on: bool) -> None:
        runtime = self.server.runtime
        if not isinstance(runtime, LocalRuntime):
            print("chaos: store fault needs the local runtime", file=sys.stderr, flush=True)
            return
        store: Any = runtime.store
        async with store._lock:  # fault injection: between two transactions
            conn: sqlite3.Connection = store._conn
            current = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {current if on else UNCAPPED}")
        state = f"capped at {current} pages" if on else "uncapped"
        print(f"chaos: store {state}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    settings = Settings.from_env(db_path=args.db)
    configure_observability("wfe-dev", settings)
    options = DevOptions(port=args.port, examples=None, demo_port=None)
    server = DevServer(settings, options)
    uvicorn.run(
        TelemetryMiddleware(FaultSwitch(server), service="wfe-dev"),
        host=options.host,
        port=options.port,
        log_config=uvicorn_log_config("wfe-dev"),
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        ws="websockets-sansio",
    )


if __name__ == "__main__":
    main()
