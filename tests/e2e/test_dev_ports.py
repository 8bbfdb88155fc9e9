"""``wfe dev`` puts its demo service on ``PORT + 1``, or on a free port when that one is
taken: a second ``make dev`` with another ``PORT`` (or anything on the demo port) no
longer stops it from starting (it always bound 127.0.0.1:8099)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
from processes import ROOT


def _ports() -> tuple[int, socket.socket]:
    """A free port whose next port is held by a listening socket (returned)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        holder = socket.socket()
        try:
            holder.bind(("127.0.0.1", port + 1))
        except OSError:
            holder.close()
            continue
        holder.listen()
        return port, holder
    raise AssertionError("no pair of free ports")


def _dev(port: int, folder: Path) -> tuple[subprocess.Popen[str], Path]:
    log = folder / f"dev-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFE_")}
    argv = [str(ROOT / ".venv/bin/wfe"), "dev", "--port", str(port), "--no-examples"]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*argv, "--db", str(folder / f"dev-{port}.db")],
            cwd=folder,
            env={**env, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    return process, log


def _demo_url(process: subprocess.Popen[str], log: Path, port: int) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            url: str = httpx.get(f"http://127.0.0.1:{port}/", timeout=1).json()["demoService"]
            return url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(log.read_text())


def test_two_dev_servers_start_even_when_the_next_port_is_taken(tmp_path: Path) -> None:
    first_port, holder = _ports()
    second_port = first_port
    while second_port in (first_port, first_port + 1):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            second_port = int(probe.getsockname()[1])
    started = [_dev(first_port, tmp_path), _dev(second_port, tmp_path)]
    try:
        first = _demo_url(*started[0], first_port)
        second = _demo_url(*started[1], second_port)
        assert first != f"http://127.0.0.1:{first_port + 1}"  # taken: a free port instead
        assert httpx.get(f"{first}/health").json() == {"status": "ok"}
        assert second.startswith("http://127.0.0.1:") and second != first
        assert httpx.get(f"{second}/health").json() == {"status": "ok"}
    finally:
        holder.close()
        for process, _ in started:
            os.killpg(process.pid, 15)
            process.wait(timeout=20)
