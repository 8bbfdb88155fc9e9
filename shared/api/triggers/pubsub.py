"""Pub/Sub deliveries to ``PubSubEvent``: Eventarc CloudEvents and raw push bodies.

Accepted shapes:

- CloudEvent, binary mode (Eventarc's default): ``ce-*`` headers, body
  ``{"message": {...}, "subscription": ...}``.
- CloudEvent, structured mode: ``Content-Type: application/cloudevents+json``, the
  same envelope under ``data``.
- Raw Pub/Sub push: body ``{"message": {"data", "attributes", "messageId",
  "publishTime"}, "subscription"}``, no CloudEvent headers.

The topic of a CloudEvent is its ``source`` (``//pubsub.googleapis.com/projects/P/
topics/T``). A raw push body does not name its topic: it comes from the ``?topic=``
query parameter of the push endpoint (set per subscription, preferred) or else from
the message attribute ``topic``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from cloudevents.http import from_http

from shared.app.triggers import PubSubEvent
from shared.errors import InputInvalid, WorkflowError

__all__ = [
    "PUBSUB_EVENT_TYPE",
    "MessageUndecodable",
    "decode_data",
    "is_cloudevent",
    "parse_cloudevent",
    "parse_push",
]

PUBSUB_EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
_SOURCE_PREFIX = "//pubsub.googleapis.com/"
TOPIC_ATTRIBUTE = "topic"


class MessageUndecodable(WorkflowError):
    """A well-formed delivery whose message cannot be decoded (redelivery cannot help)."""

    code = "INVALID_INPUT"


def is_cloudevent(headers: Mapping[str, str]) -> bool:
    content_type = headers.get("content-type", "")
    return "ce-specversion" in headers or content_type.startswith("application/cloudevents")


def decode_data(raw: Any) -> Any:
    """base64 -> JSON when it parses, else UTF-8 text; non-UTF-8 bytes stay base64."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise MessageUndecodable("message.data must be a base64 string")
    try:
        payload = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise MessageUndecodable("message.data is not valid base64") from None
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    try:
        return json.loads(text)
    except ValueError:
        return text


def _first(message: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if message.get(name):
            return message[name]
    return None


def _from_envelope(
    envelope: Any,
    topic: str | None,
    fallback_id: str | None = None,
    fallback_time: str | None = None,
) -> PubSubEvent:
    if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
        raise InputInvalid("not a Pub/Sub delivery: no 'message' object", path="/message")
    message: dict[str, Any] = envelope["message"]
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise InputInvalid("message.attributes must be an object", path="/message/attributes")
    attributes = {str(key): str(value) for key, value in attributes.items()}
    message_id = _first(message, "messageId", "message_id") or fallback_id
    if not message_id:
        raise InputInvalid("message.messageId is missing", path="/message/messageId")
    topic = topic or attributes.get(TOPIC_ATTRIBUTE)
    if not topic:
        raise InputInvalid(
            "topic unknown: add ?topic=NAME to the push endpoint (or a 'topic' attribute)"
        )
    return PubSubEvent(
        topic=topic,
        message_id=str(message_id),
        data=decode_data(message.get("data")),
        attributes=attributes,
        publish_time=_first(message, "publishTime", "publish_time") or fallback_time,
    )


def parse_cloudevent(headers: Mapping[str, str], body: bytes) -> PubSubEvent | None:
    """A Pub/Sub CloudEvent (binary or structured); ``None`` for another event type."""
    try:
        event = from_http(dict(headers), body)
    except Exception as exc:  # the SDK raises several unrelated types
        raise InputInvalid(f"not a valid CloudEvent: {exc}") from None
    if event["type"] != PUBSUB_EVENT_TYPE:
        return None
    source = str(event["source"])
    topic = source.removeprefix(_SOURCE_PREFIX) if "/topics/" in source else None
    data = event.data
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError:
            raise InputInvalid("CloudEvent data is not a JSON envelope") from None
    time = event.get("time")
    return _from_envelope(data, topic, str(event["id"]), str(time) if time else None)


def parse_push(body: bytes, topic: str | None) -> PubSubEvent:
    """A raw Pub/Sub push body; ``topic`` from the endpoint's ``?topic=`` parameter."""
    try:
        envelope = json.loads(body)
    except ValueError:
        raise InputInvalid("body is not JSON") from None
    return _from_envelope(envelope, topic)
