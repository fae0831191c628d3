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
    context: Any = None  # agent.conversation.Context: what was shown last, for 'approve them'

    @property
    def _llm_type(self) -> str:
        return "labelchat-router"

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            message = AIMessage(content=_summarise_tool_results(messages))
        else:
            text = last.content if isinstance(last.content, str) else str(last.content)
            found = route(text, self.labels, self.context)
            available = {t["function"]["name"] for t in kwargs.get("tools", [])}
            if found.tool and found.tool in available:
                call = {"name": found.tool, "args": found.args, "id": f"call_{uuid.uuid4().hex[:12]}", "type": "tool_call"}
                message = AIMessage(content=found.note, tool_calls=[call])
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
    """A chat model behind an OpenAI-compatible HTTP API (`/chat/completions`), streamed.

    `timeout_s` bounds the wait for the first byte and between two streamed chunks;
    `turn_limit_s` bounds one whole answer. A dropped connection, an HTTP error or an
    answer that is not a chat completion is a BrainError with what happened."""

    base_url: str
    model: str
    api_key: str = ""
    timeout_s: float = 120.0
    turn_limit_s: float = 600.0
    streaming: bool = True
    state_text: str = ""  # what the conversation showed and did, sent as a system note each call

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        import requests

        payload: dict[str, Any] = {"model": self.model, "messages": self._payload_messages(messages),
                                   "stream": self.streaming}
        for key in ("tools", "tool_choice", "max_tokens", "temperature"):
            if kwargs.get(key) is not None:
                payload[key] = kwargs[key]
        url = self.base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            with requests.post(url, json=payload, headers=headers, timeout=self.timeout_s, stream=self.streaming) as response:
                if response.status_code >= 400:
                    raise BrainError(f"The chat model at {self.base_url} answered HTTP {response.status_code}: "
                                     f"{response.text[:200]}")
                choice = self._read_stream(response) if self.streaming and _is_event_stream(response) else \
                    self._read_whole(response)
        except requests.Timeout as exc:
            raise BrainError(f"The chat model at {self.base_url} did not answer within {self.timeout_s:.0f} s.") from exc
        except requests.ConnectionError as exc:
            raise BrainError(f"Cannot reach the chat model at {self.base_url}, or it went away while answering: "
                             f"{_reason(exc)}. Is it running?") from exc
        except requests.RequestException as exc:
            raise BrainError(f"The chat model at {self.base_url} failed: {_reason(exc)}.") from exc
        return ChatResult(generations=[ChatGeneration(message=_from_openai(choice))])

    def _payload_messages(self, messages: list[BaseMessage]) -> list[dict]:
        converted = [_to_openai(m) for m in messages]
        if self.state_text:
            at = 1 if converted and converted[0]["role"] == "system" else 0
            converted.insert(at, {"role": "system", "content": self.state_text})
        return converted

    def _read_whole(self, response) -> dict:
        try:
            return response.json()["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BrainError(f"The chat model at {self.base_url} sent something that is not a chat completion: "
                             f"{response.text[:200]!r}") from exc

    def _read_stream(self, response) -> dict:
        """Server-sent events of chat.completion.chunk -> one assistant message."""
        import time

        deadline = time.monotonic() + self.turn_limit_s
        content: list[str] = []
        calls: dict[int, dict] = {}
        for line in response.iter_lines(decode_unicode=True):
            if time.monotonic() > deadline:
                raise BrainError(f"The chat model at {self.base_url} was still answering after {self.turn_limit_s:.0f} s; stopped.")
            if not line or not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return _assembled(content, calls)
            try:
                delta = json.loads(data)["choices"][0].get("delta") or {}
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                raise BrainError(f"The chat model at {self.base_url} streamed something that is not a chat "
                                 f"completion chunk: {data[:200]!r}") from exc
            content.append(delta.get("content") or "")
            for part in delta.get("tool_calls") or []:
                _add_call_delta(calls, part)
        if not content and not calls:
            raise BrainError(f"The chat model at {self.base_url} closed the stream without an answer.")
        return _assembled(content, calls)


def _is_event_stream(response) -> bool:
    return "text/event-stream" in response.headers.get("Content-Type", "")


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."


def _add_call_delta(calls: dict[int, dict], part: dict) -> None:
    """Fold one streamed tool-call fragment in (some servers repeat the id and name each time)."""
    call = calls.setdefault(part.get("index", len(calls)), {"id": None, "name": "", "arguments": ""})
    call["id"] = call["id"] or part.get("id")
    function = part.get("function") or {}
    name = function.get("name") or ""
    if name and name != call["name"]:
        call["name"] += name
    call["arguments"] += function.get("arguments") or ""


def _assembled(content: list[str], calls: dict[int, dict]) -> dict:
    return {"content": "".join(content), "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
        for _, c in sorted(calls.items())]}


def _to_openai(message: BaseMessage) -> dict:
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": message.content}
    if isinstance(message, HumanMessage):
        return {"role": "user", "content": message.content}
    if isinstance(message, ToolMessage):
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": str(message.content)}
    # "" rather than null: llama.cpp's server (and others) refuse a null content beside tool calls
    result: dict = {"role": "assistant", "content": message.content or ""}
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
               llm_model: str | None = None, api_key: str | None = None, timeout_s: float | None = None) -> BaseChatModel:
    if kind == "router":
        return RouterChatModel(labels=labels or [])
    if kind == "openai":
        base_url = base_url or os.environ.get("LABELCHAT_LLM_URL") or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise BrainError("The openai brain needs an endpoint: --llm-url http://127.0.0.1:11434/v1 "
                             "(or $LABELCHAT_LLM_URL / $OPENAI_BASE_URL).")
        return OpenAICompatibleChat(base_url=base_url, model=llm_model or os.environ.get("LABELCHAT_LLM_MODEL", "gpt-4o-mini"),
                                    api_key=api_key or os.environ.get("OPENAI_API_KEY", ""),
                                    timeout_s=timeout_s or float(os.environ.get("LABELCHAT_LLM_TIMEOUT", "120")))
    raise BrainError(f"Unknown brain {kind!r}; use router or openai.")
