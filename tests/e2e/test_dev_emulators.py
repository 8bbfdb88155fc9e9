"""``make dev-emulators`` as a user runs it: the launcher starts the three emulators,
creates the queue and a pushed topic, and runs ``wfe dev`` in gcp mode on them; a
message published to the topic starts a workflow whose steps hop through the Tasks
emulator; SIGTERM stops the dev server and every emulator."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.pubsub_v1 import PublisherClient, PubsubMessage
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

from shared.dev.emulators import free_port

pytestmark = [pytest.mark.emulator, pytest.mark.slow, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]
FLOW = {
    "name": "dev-emulators",
    "trigger": {"type": "event", "topic": "orders"},
    "steps": [
        {"id": "one", "type": "transform", "config": {"set": {"n": 1}}, "nextSteps": ["nap"]},
        {"id": "nap", "type": "wait", "config": {"seconds": 0.3}, "nextSteps": ["two"]},
        {"id": "two", "type": "transform", "config": {"output": "${vars.n + 1}"}},
    ],
}


def _wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"dev server not up:\n{log.read_text()[-3000:]}")


def _hosts(output: str) -> dict[str, str]:
    lines = [line.split("export ", 1)[1] for line in output.splitlines() if "export " in line]
    return dict(line.strip().split("=", 1) for line in lines)


def _publish(host: str, data: dict[str, Any]) -> None:
    channel = grpc.insecure_channel(host)
    try:
        publisher = PublisherClient(transport=PublisherGrpcTransport(channel=channel))
        topic = publisher.topic_path("demo", "orders")
        publisher.publish(topic=topic, messages=[PubsubMessage(data=json.dumps(data).encode())])
    finally:
        channel.close()


def _closed(host: str) -> bool:
    name, _, port = host.rpartition(":")
    with socket.socket() as probe:
        return probe.connect_ex((name, int(port))) != 0


def test_dev_emulators_runs_a_pushed_workflow_and_stops_everything(
    emulators_installed: None, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "dev-emulators.log"
    argv = [sys.executable, "-m", "shared.dev.on_emulators", "--port", str(port)]
    argv += ["--topic", "orders"]
    argv += ["--firestore-port", "0", "--pubsub-port", "0", "--tasks-port", "0"]
    argv += ["--examples", str(tmp_path / "none"), "--", "--demo-port", "0"]
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, process, log)
        hosts = _hosts(log.read_text())
        created = httpx.post(f"{base}/api/v1/workflows", json=FLOW)
        assert created.status_code == 201, created.text
        _publish(hosts["PUBSUB_EMULATOR_HOST"], {"amount": 1})
        url = f"{base}/api/v1/executions"
        for _ in range(300):
            items = httpx.get(url, params={"workflow_id": created.json()["id"]}).json()["items"]
            if items and items[0]["status"] not in ("pending", "running", "waiting"):
                break
            time.sleep(0.1)
        assert [(e["status"], e["result"]) for e in items] == [("succeeded", 2)], items
        assert items[0]["trigger"]["topic"] == "orders"
        with httpx.stream("GET", f"{base}/sse/executions/{items[0]['id']}", timeout=20) as sse:
            types = [line[7:] for line in sse.iter_lines() if line.startswith("event: ")]
        assert types[0] == "execution.started" and types[-1] == "execution.succeeded", types
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        code = process.wait(timeout=40)
    output = log.read_text()
    assert "gcp mode" in output and "Traceback" not in output, output[-4000:]
    assert code == 128 + signal.SIGTERM, output[-2000:]
    assert set(hosts) == {
        "FIRESTORE_EMULATOR_HOST",
        "PUBSUB_EMULATOR_HOST",
        "WFE_TASKS_EMULATOR_HOST",
    }
    assert all(_closed(host) for host in [*hosts.values(), f"127.0.0.1:{port}"])
