"""``make dev-emulators``: ``wfe dev`` in gcp mode against the local Google emulators.

Starts the Firestore, Pub/Sub and Cloud Tasks emulators (``shared/dev/emulators.py``),
creates the Cloud Tasks queue and the topics (those of the examples' event triggers and
``publish`` steps, plus ``--topic``), each with a push subscription to the dev server's
``/triggers/pubsub?topic=T``, then runs ``wfe dev`` with ``WFE_BACKEND=gcp``, the
emulator hosts and ``WFE_EXECUTE_STEP_URL=http://127.0.0.1:PORT/tasks/execute-step``.
Ctrl-C stops the dev server, then every emulator (by process group). The emulators
keep their data in memory: it is gone when they stop.

    python -m shared.dev.on_emulators [--port 8080] [--project demo] [--topic T ...]
        [-- <more wfe dev arguments>]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.dev.emulators import (
    Emulator,
    Unavailable,
    ensure_tasks_emulator,
    find_firestore,
    find_pubsub,
    firestore_emulator,
    free_port,
    pubsub_emulator,
    tasks_emulator,
)

__all__ = ["create_push_topics", "create_queue", "dev_environment", "main", "topics_of"]

EXIT_UNAVAILABLE = 2


def topics_of(folder: Path) -> set[str]:
    """Topics the workflows of ``folder`` listen on (event triggers) or publish to
    (``publish`` steps with a literal topic)."""
    from shared.engine.validation import parse_documents

    topics: set[str] = set()
    for path in sorted(folder.glob("*.y*ml")):
        try:
            documents = parse_documents(path.read_text(), str(path))
        except Exception:
            continue  # the dev server reports the broken example
        for document in documents:
            trigger = document.get("trigger") or {}
            if trigger.get("type") == "event" and isinstance(trigger.get("topic"), str):
                topics.add(trigger["topic"])
            for step in document.get("steps") or []:
                topic = (step.get("config") or {}).get("topic")
                if step.get("type") == "publish" and isinstance(topic, str) and "${" not in topic:
                    topics.add(topic)
    return topics


def create_queue(host: str, project: str, location: str, queue_id: str) -> str:
    """The Cloud Tasks queue on the emulator (an existing one is fine); its path."""
    import grpc
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(host)
    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    parent = f"projects/{project}/locations/{location}"
    name = f"{parent}/queues/{queue_id}"
    try:
        client.create_queue(parent=parent, queue=tasks_v2.Queue(name=name))
    except AlreadyExists:
        pass
    finally:
        channel.close()
    return name


def create_push_topics(
    host: str, project: str, topics: Iterable[str], trigger_url: str, suffix: str = "-wfe"
) -> None:
    """Each topic on the Pub/Sub emulator with a push subscription ``{topic}{suffix}``
    to ``{trigger_url}/pubsub?topic=T``; existing ones are kept."""
    import grpc
    from google.api_core.exceptions import AlreadyExists
    from google.pubsub_v1 import PublisherClient, PushConfig, SubscriberClient
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    channel = grpc.insecure_channel(host)
    publisher = PublisherClient(transport=PublisherGrpcTransport(channel=channel))
    subscriber = SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
    try:
        for topic in sorted(set(topics)):
            path = publisher.topic_path(project, topic)
            with contextlib.suppress(AlreadyExists):
                publisher.create_topic(name=path)
            endpoint = f"{trigger_url}/pubsub?topic={topic}"
            with contextlib.suppress(AlreadyExists):
                subscriber.create_subscription(
                    name=subscriber.subscription_path(project, f"{topic}{suffix}"),
                    topic=path,
                    push_config=PushConfig(push_endpoint=endpoint),
                    ack_deadline_seconds=60,
                )
    finally:
        channel.close()


def dev_environment(
    *,
    project: str,
    location: str,
    queue: str,
    port: int,
    firestore: str,
    pubsub: str,
    tasks: str,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables ``wfe dev`` (or any function process) needs on the emulators."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "WFE_BACKEND": "gcp",
            "WFE_PROJECT": project,
            "WFE_LOCATION": location,
            "WFE_TASKS_QUEUE": queue,
            "WFE_EXECUTE_STEP_URL": f"http://127.0.0.1:{port}/tasks/execute-step",
            "WFE_TRIGGER_HANDLER_URL": f"http://127.0.0.1:{port}/triggers",
            "WFE_SCHEDULER_JOBS": "false",  # no Cloud Scheduler emulator exists
            "WFE_ALLOW_UNAUTHENTICATED": "true",  # the emulators: no keys to give
            # The Cloud Tasks and Pub/Sub emulators send no ID tokens: the internal
            # endpoints cannot check their callers here (a warning at every start).
            "WFE_TOKEN_VERIFIER": "none",
            "WFE_TASKS_EMULATOR_HOST": tasks,
            "FIRESTORE_EMULATOR_HOST": firestore,
            "PUBSUB_EMULATOR_HOST": pubsub,
        }
    )
    return env


def _port(wanted: int) -> int:
    """``wanted``, or a free port for 0; SystemExit when something listens there."""
    if wanted == 0:
        return free_port()
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", wanted)) == 0:
            raise SystemExit(f"port {wanted} is in use (pass 0 for a free one)")
    return wanted


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dev-emulators", description="wfe dev on the emulators")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--project", default="demo")
    parser.add_argument("--location", default="us-central1")
    parser.add_argument("--queue", default="wfe-steps")
    parser.add_argument("--topic", action="append", default=[], help="another topic (repeat)")
    parser.add_argument("--examples", type=Path, default=Path("examples"))
    for name, default in (("firestore", 8681), ("pubsub", 8685), ("tasks", 9123)):
        parser.add_argument(f"--{name}-port", type=int, default=default, help="0: a free port")
    parser.add_argument("dev_args", nargs=argparse.REMAINDER, help="passed to `wfe dev`")
    return parser


def _start_all(args: Any) -> list[Emulator]:
    emulators = [
        firestore_emulator(find_firestore(), _port(args.firestore_port)),
        pubsub_emulator(find_pubsub(), _port(args.pubsub_port)),
        tasks_emulator(ensure_tasks_emulator(), _port(args.tasks_port)),
    ]
    started: list[Emulator] = []
    try:
        for emulator in emulators:
            print(f"dev-emulators: starting {emulator.name} on {emulator.host}", flush=True)
            emulator.start()
            started.append(emulator)
    except BaseException:
        for emulator in reversed(started):
            emulator.stop()
        raise
    return emulators


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)  # stop the emulators on SIGTERM too
    try:
        emulators = _start_all(args)
    except Unavailable as missing:
        print(f"dev-emulators: an emulator is not available: {missing}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except RuntimeError as failed:  # installed, but it did not start
        print(f"dev-emulators: {failed}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit) as stopped:
        return 130 if isinstance(stopped, KeyboardInterrupt) else int(stopped.code or 1)
    firestore, pubsub, tasks = (emulator.host for emulator in emulators)
    env = dev_environment(
        project=args.project,
        location=args.location,
        queue=args.queue,
        port=args.port,
        firestore=firestore,
        pubsub=pubsub,
        tasks=tasks,
    )
    dev: subprocess.Popen[bytes] | None = None
    interrupted = False
    try:
        create_queue(tasks, args.project, args.location, args.queue)
        topics = set(args.topic) | (topics_of(args.examples) if args.examples.is_dir() else set())
        create_push_topics(pubsub, args.project, topics, env["WFE_TRIGGER_HANDLER_URL"])
        print(f"dev-emulators: queue {args.queue}, topics {', '.join(sorted(topics)) or '-'}")
        for name in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "WFE_TASKS_EMULATOR_HOST"):
            print(f"  export {name}={env[name]}", flush=True)
        extra = [a for a in args.dev_args if a != "--"]
        command = [sys.executable, "-m", "shared.cli", "dev", "--port", str(args.port), *extra]
        if not args.examples.is_dir() and "--no-examples" not in extra:
            command.append("--no-examples")
        dev = subprocess.Popen(command, env=env)
        return dev.wait()
    except KeyboardInterrupt:  # the dev server got the same SIGINT from the terminal
        interrupted = True
        return 130
    finally:
        if dev is not None:
            _stop(dev, signalled=interrupted)
        for emulator in reversed(emulators):
            emulator.stop()


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _stop(process: subprocess.Popen[bytes], *, signalled: bool) -> None:
    """Let the dev server shut down (SIGTERM unless it got the terminal's SIGINT)."""
    if process.poll() is None and not signalled:
        process.terminate()
    try:
        process.wait(timeout=15)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        process.kill()
        process.wait()


if __name__ == "__main__":
    sys.exit(main())
