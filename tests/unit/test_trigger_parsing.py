"""Pure pieces of the triggers: webhook signatures, secrets, task codec, Pub/Sub parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.api.tasks import TaskPayloadInvalid, decode_task, encode_task
from shared.api.triggers.pubsub import MessageUndecodable, decode_data, parse_cloudevent, parse_push
from shared.app.secrets import (
    EnvSecretResolver,
    SchemeSecretResolver,
    SecretUnavailable,
    default_secret_resolver,
)
from shared.app.triggers import short_topic, topic_matches, trigger_execution_id
from shared.app.webhooks import SignatureInvalid, sign, verify_signature
from shared.errors import InputInvalid
from shared.ports import StepTask

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
BODY = b'{"order": 1}'

# -- signatures ------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_version_timestamp_key_and_body() -> None:
    expected = hmac.new(b"k", f"v1:{TS}::".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign("k", TS, BODY) == f"sha256={expected}"
    keyed = hmac.new(b"k", f"v1:{TS}:key-1:".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign("k", TS, BODY, "key-1") == f"sha256={keyed}"
    verify_signature("k", TS, sign("k", TS, BODY, "key-1"), BODY, NOW, idempotency_key="key-1")
    with pytest.raises(SignatureInvalid):
        verify_signature("k", TS, sign("k", TS, BODY, "key-1"), BODY, NOW, idempotency_key="k2")
    verify_signature("k", TS, sign("k", TS, BODY), BODY, NOW)
    verify_signature("k", TS, sign("k", TS, BODY).upper().replace("SHA256=", "sha256="), BODY, NOW)


@pytest.mark.parametrize(
    ("timestamp", "signature", "body"),
    [
        (TS, sign("other", TS, BODY), BODY),  # wrong secret
        (TS, sign("k", TS, BODY), b'{"order": 2}'),  # tampered body
        (str(int(TS) + 1), sign("k", TS, BODY), BODY),  # timestamp not the signed one
        (TS, sign("k", TS, BODY)[7:], BODY),  # no sha256= prefix
        (TS, "sha256=é", BODY),  # non-ASCII: still a clean refusal
        (None, sign("k", TS, BODY), BODY),
        (TS, None, BODY),
        ("12.5", sign("k", "12.5", BODY), BODY),
        ("-1", sign("k", "-1", BODY), BODY),
    ],
)
def test_bad_signatures_are_refused(
    timestamp: str | None, signature: str | None, body: bytes
) -> None:
    with pytest.raises(SignatureInvalid) as raised:
        verify_signature("k", timestamp, signature, body, NOW)
    assert raised.value.code == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("offset", "fresh"), [(-300, True), (300, True), (-301, False), (301, False)]
)
def test_five_minute_skew_either_way(offset: int, fresh: bool) -> None:
    timestamp = str(int(TS) + offset)
    signature = sign("k", timestamp, BODY)
    if fresh:
        verify_signature("k", timestamp, signature, BODY, NOW)
    else:
        with pytest.raises(SignatureInvalid, match="window"):
            verify_signature("k", timestamp, signature, BODY, NOW)


async def test_secret_resolvers() -> None:
    resolver = SchemeSecretResolver({"env": EnvSecretResolver({"WFE_SECRET_HOOK": "v1"})})
    assert await resolver.resolve("env:WFE_SECRET_HOOK") == "v1"
    with pytest.raises(SecretUnavailable, match="MISSING"):
        await resolver.resolve("env:WFE_SECRET_MISSING")
    with pytest.raises(SecretUnavailable, match="scheme 'sm'"):
        await resolver.resolve("sm:projects/p/secrets/s")

    class Fixed:
        async def resolve(self, ref: str) -> str:
            return f"secret-of-{ref}"

    resolver.register("sm", Fixed())
    assert await resolver.resolve("sm:x") == "secret-of-sm:x"
    fallback = SchemeSecretResolver({}, fallback=Fixed())
    assert await fallback.resolve("projects/p/secrets/s") == "secret-of-projects/p/secrets/s"
    assert isinstance(default_secret_resolver(), SchemeSecretResolver)


# -- task codec ------------------------------------------------------------------------


def test_task_codec_round_trip_carries_ids_only() -> None:
    task = StepTask("exec-1", "run-1", NOW, wake_seq=3)
    body = encode_task(task)
    assert json.loads(body) == {"executionId": "exec-1", "runId": "run-1", "wakeSeq": 3}
    assert decode_task(body, received_at=NOW) == task
    grown = b'{"executionId": "e", "runId": "r", "wakeSeq": 1, "traceId": "t"}'
    assert decode_task(grown, received_at=NOW) == StepTask("e", "r", NOW, 1)
    assert decode_task(b'{"executionId": "e", "runId": "r"}').wake_seq == 0


def test_task_codec_carries_the_cheap_hint_only_when_true() -> None:
    cheap = StepTask("exec-1", "run-1", NOW, wake_seq=3, cheap=True)
    body = encode_task(cheap)
    assert json.loads(body) == {
        "executionId": "exec-1",
        "runId": "run-1",
        "wakeSeq": 3,
        "cheap": True,
    }
    assert decode_task(body, received_at=NOW).cheap is True
    assert b"cheap" not in encode_task(StepTask("exec-1", "run-1", NOW))
    for value in (b'"yes"', b"1", b"null", b"false"):  # only JSON true is the hint
        odd = b'{"executionId": "e", "runId": "r", "cheap": ' + value + b"}"
        assert decode_task(odd).cheap is False


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"nope",
        b"null",
        b'"s"',
        b'{"executionId": "", "runId": "r"}',
        b'{"executionId": "e", "runId": "r", "wakeSeq": 1.5}',
        b"{" + b" " * 20_000 + b"}",
    ],
)
def test_task_codec_rejects(body: bytes) -> None:
    with pytest.raises(TaskPayloadInvalid):
        decode_task(body)


# -- Pub/Sub ---------------------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (None, None),
        ("", None),
        (b64(b'{"a": [1, 2]}'), {"a": [1, 2]}),
        (b64(b"42"), 42),
        (b64(b"plain text"), "plain text"),
        (b64(b"\xff\x00\x01"), b64(b"\xff\x00\x01")),  # not UTF-8: kept as base64
    ],
)
def test_decode_data(raw: str | None, decoded: Any) -> None:
    assert decode_data(raw) == decoded


@pytest.mark.parametrize("raw", ["***", 12, "YQ"])
def test_decode_data_rejects_non_base64(raw: Any) -> None:
    with pytest.raises(MessageUndecodable):
        decode_data(raw)


def test_topics_match_by_name_and_by_project_when_both_have_one() -> None:
    assert short_topic("//pubsub.googleapis.com/projects/p/topics/orders") == "orders"
    assert topic_matches("orders", "projects/p/topics/orders")
    assert topic_matches("projects/p/topics/orders", "orders")
    assert topic_matches("projects/p/topics/orders", "projects/p/topics/orders")
    assert not topic_matches("projects/p/topics/orders", "projects/q/topics/orders")
    assert not topic_matches("orders", "projects/p/topics/orders-eu")


def test_push_and_cloudevent_fallbacks() -> None:
    body = json.dumps(
        {"message": {"data": b64(b"{}"), "message_id": "9", "publish_time": "t"}}
    ).encode()
    event = parse_push(body, "orders")
    assert (event.message_id, event.publish_time, event.topic) == ("9", "t", "orders")
    with pytest.raises(InputInvalid):
        parse_push(b'{"message": {"data": ""}}', "orders")  # no message id
    # a CloudEvent whose message lacks messageId uses the event id and time
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/orders",
        "ce-id": "ce-7",
        "ce-time": "2025-01-01T00:00:00Z",
        "content-type": "application/json",
    }
    fallback = parse_cloudevent(headers, b'{"message": {"data": ""}}')
    assert fallback is not None
    assert (fallback.message_id, fallback.topic, fallback.data) == (
        "ce-7",
        "projects/p/topics/orders",
        None,
    )
    with pytest.raises(InputInvalid):
        parse_cloudevent({"ce-specversion": "1.0"}, b"{}")


def test_execution_ids_are_stable() -> None:
    # Changing the namespace or the key format would start redelivered messages again.
    assert trigger_execution_id("wf", "pubsub", "1") == trigger_execution_id("wf", "pubsub", "1")
    assert trigger_execution_id("wf", "pubsub", "1") != trigger_execution_id("wf2", "pubsub", "1")
    namespace = uuid.UUID("5b0f6f4e-2d7e-4c57-9a43-7f1d2b8e6a10")
    assert trigger_execution_id("wf", "pubsub", "1") == str(uuid.uuid5(namespace, "wf:pubsub:1"))
    assert trigger_execution_id("wf", "pubsub", "1") == "9e924fb8-de64-59ca-84c8-13741dc1df1b"
