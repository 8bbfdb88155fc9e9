"""LangChain fake chat models as the tests use them: counted, optionally slow, optionally
able to call tools (``bind_tools`` returns the same fake, which answers what it is told)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult


class FakeChat(GenericFakeChatModel):
    """``GenericFakeChatModel`` that counts its calls and can be slow or tool-capable."""

    calls: int = 0
    delay: float = 0.0
    tool_calling: bool = False
    seen: list[list[BaseMessage]] = []

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls += 1
        self.seen = [*self.seen, list(messages)]
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._generate(messages, stop=stop, **kwargs)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        if not self.tool_calling:
            raise NotImplementedError
        return self


def fake(*answers: AIMessage | str, **fields: Any) -> FakeChat:
    """A fake answering ``answers`` in order (then failing with StopIteration)."""
    iterator: Iterator[AIMessage | str] = iter(list(answers))
    return FakeChat(messages=iterator, **fields)


def choice(label: str, reason: str = "because") -> str:
    return json.dumps({"choice": label, "reason": reason})


def usage(message: AIMessage, inp: int, out: int) -> AIMessage:
    message.usage_metadata = {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}
    return message
