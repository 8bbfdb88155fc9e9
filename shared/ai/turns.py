"""Model answers as plain JSON (recorded turns) and back, and conversation memory."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    messages_from_dict,
    messages_to_dict,
)

from shared.ai.choice import usage_of


def text_of(content: Any) -> str:
    """The text of a message content (a string, or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p if isinstance(p, str) else str(p.get("text", "")) for p in content]
        return "".join(parts)
    return str(content or "")


def turn_from_message(message: AIMessage, model: str) -> dict[str, Any]:
    """A recordable turn: content, tool calls, usage, model and finish reason."""
    turn: dict[str, Any] = {
        "content": text_of(message.content),
        "toolCalls": [
            {"id": call.get("id"), "name": call["name"], "args": call.get("args") or {}}
            for call in message.tool_calls
        ],
        "usage": usage_of(message),
        "model": model,
    }
    finish = (message.response_metadata or {}).get("finish_reason")
    if finish:
        turn["finishReason"] = str(finish)
    return turn


def message_from_turn(turn: dict[str, Any], index: int) -> AIMessage:
    """The ``AIMessage`` of a recorded turn (tool call ids made up when missing)."""
    calls = []
    for number, call in enumerate(turn.get("toolCalls") or []):
        calls.append(
            {
                "id": str(call.get("id") or f"call_{index}_{number}"),
                "name": str(call["name"]),
                "args": dict(call.get("args") or {}),
                "type": "tool_call",
            }
        )
    usage = turn.get("usage") or {}
    inp, out = int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0))
    return AIMessage(
        content=str(turn.get("content", "")),
        tool_calls=calls,
        usage_metadata={"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out},
    )


def dump_messages(messages: Iterable[BaseMessage]) -> list[dict[str, Any]]:
    return messages_to_dict(list(messages))


def load_messages(data: Any) -> list[BaseMessage]:
    if not isinstance(data, list):
        return []
    try:
        return list(messages_from_dict(data))
    except (KeyError, TypeError, ValueError):
        return []
