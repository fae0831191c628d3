"""The chat models the loop can run on, all langchain-core chat models that emit tool calls.

- `RouterChatModel` (the default): offline, deterministic, instant; maps a
  message to a tool call with agent/router.py, and turns tool results into
  the answer.
- `OpenAICompatibleChat`: any OpenAI-compatible /chat/completions endpoint
  (OpenAI, Ollama, vLLM, llama.cpp's server), spoken over plain HTTP.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any, Sequence

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from index.errors import LabelchatError

from .router import route


class BrainError(LabelchatError):
    """The chat model could not answer (endpoint down, too slow, garbage)."""


class _ToolBinding:
    """bind_tools for chat models that take the tools as OpenAI tool schemas."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


class RouterChatModel(_ToolBinding, BaseChatModel):
    """The offline brain. `labels` lets it read label names in messages."""

    labels: list[str] = []

    @property
    def _llm_type(self) -> str:
        return "labelchat-router"

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            message = AIMessage(content=_summarise_tool_results(messages))
        else:
            text = last.content if isinstance(last.content, str) else str(last.content)
            found = route(text, self.labels)
            available = {t["function"]["name"] for t in kwargs.get("tools", [])}
            if found.tool and found.tool in available:
                call = {"name": found.tool, "args": found.args, "id": f"call_{uuid.uuid4().hex[:12]}", "type": "tool_call"}
                message = AIMessage(content="", tool_calls=[call])
            elif found.tool:
                message = AIMessage(content=f"I cannot {found.tool.replace('_', ' ')} here yet.")
            else:
                message = AIMessage(content=found.reply)
        return ChatResult(generations=[ChatGeneration(message=message)])


def _summarise_tool_results(messages: list[BaseMessage]) -> str:
    """The answer after tools ran: what each tool of this turn reported."""
    results = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        results.append(str(message.content))
    return "\n".join(reversed(results))


SYSTEM_PROMPT_FILE = "system.yaml"


class OpenAICompatibleChat(_ToolBinding, BaseChatModel):
    """A chat model behind an OpenAI-compatible HTTP API (`/chat/completions`)."""

    base_url: str
    model: str
    api_key: str = ""
    timeout_s: float = 120.0

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        import requests

        payload: dict[str, Any] = {"model": self.model, "messages": [_to_openai(m) for m in messages]}
        if kwargs.get("tools"):
            payload["tools"] = kwargs["tools"]
        url = self.base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = requests.post(url, json=payload, headers=headers, timeout=self.timeout_s)
        except requests.Timeout as exc:
            raise BrainError(f"The chat model at {self.base_url} did not answer within {self.timeout_s:.0f} s.") from exc
        except requests.RequestException as exc:
            raise BrainError(f"Cannot reach the chat model at {self.base_url}: {exc}. Is it running?") from exc
        if response.status_code >= 400:
            raise BrainError(f"The chat model at {self.base_url} answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            choice = response.json()["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BrainError(f"The chat model at {self.base_url} sent something that is not a chat completion: {response.text[:200]!r}") from exc
        return ChatResult(generations=[ChatGeneration(message=_from_openai(choice))])


def _to_openai(message: BaseMessage) -> dict:
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": message.content}
    if isinstance(message, HumanMessage):
        return {"role": "user", "content": message.content}
    if isinstance(message, ToolMessage):
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": str(message.content)}
    result: dict = {"role": "assistant", "content": message.content or None}
    calls = list(getattr(message, "tool_calls", []) or [])
    if calls:
        result["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["args"])}}
            for c in calls
        ]
    return result


def _from_openai(choice: dict) -> AIMessage:
    calls, invalid = [], []
    for raw in choice.get("tool_calls") or []:
        function = raw.get("function") or {}
        try:
            args = json.loads(function.get("arguments") or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments are not a JSON object")
            calls.append({"name": function.get("name", ""), "args": args, "id": raw.get("id") or uuid.uuid4().hex, "type": "tool_call"})
        except (ValueError, TypeError) as exc:
            invalid.append({"name": function.get("name"), "args": function.get("arguments"), "id": raw.get("id"),
                            "error": str(exc), "type": "invalid_tool_call"})
    return AIMessage(content=choice.get("content") or "", tool_calls=calls, invalid_tool_calls=invalid)


def make_brain(kind: str = "router", *, labels: list[str] | None = None, base_url: str | None = None,
               llm_model: str | None = None, api_key: str | None = None) -> BaseChatModel:
    if kind == "router":
        return RouterChatModel(labels=labels or [])
    if kind == "openai":
        base_url = base_url or os.environ.get("LABELCHAT_LLM_URL") or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise BrainError("The openai brain needs an endpoint: --llm-url http://127.0.0.1:11434/v1 "
                             "(or $LABELCHAT_LLM_URL / $OPENAI_BASE_URL).")
        return OpenAICompatibleChat(base_url=base_url, model=llm_model or os.environ.get("LABELCHAT_LLM_MODEL", "gpt-4o-mini"),
                                    api_key=api_key or os.environ.get("OPENAI_API_KEY", ""))
    raise BrainError(f"Unknown brain {kind!r}; use router or openai.")
