"""OpenAI Responses API, stateless: ``POST /v1/responses``.

A thin adapter on the chat seam: the request becomes a :class:`Conversation` (:func:`conversation`), the
:data:`ChatEvent` stream becomes Responses output items and numbered stream events (:class:`ResponseWriter`).
Nothing is stored, so ``previous_response_id``, ``store: true``, ``conversation``, ``background`` and
``item_reference`` inputs are refused with a 400 that says to send the whole conversation in ``input``.
Errors use the OpenAI error body (``/v1`` paths; :mod:`slmnode.server.errors`). See ``docs/api-responses.md``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from slmnode.chat.types import (
    ChatEvent,
    Conversation,
    Finished,
    Message,
    Reasoning,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolSpec,
)
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.errors import EngineError, RequestError, SlmnodeError
from slmnode.server.chat import open_chat
from slmnode.server.service import Node, event_stream, generation_params, stream_fault

router = APIRouter(prefix="/v1", tags=["openai-responses"])

_STATELESS = "this node is stateless: send the whole conversation in 'input' (with store omitted or false)"
_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text", "reasoning_text")
_THINKING_OFF = ("none", "minimal")
_THINKING_ON = ("low", "medium", "high", "xhigh", "max")


class ResponsesRequest(BaseModel):
    """The fields this node reads; any other field is accepted and ignored (see the docs for what is refused)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    stream: bool = False
    store: bool | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    # extensions, as llama.cpp's server takes them
    seed: int | None = None
    top_k: int | None = Field(None, ge=0)
    stop: str | list[str] | None = None


# ---- request → Conversation ------------------------------------------------------------------------------


def _refuse_state(body: ResponsesRequest) -> None:
    extra = body.model_extra or {}
    if body.previous_response_id is not None:
        raise RequestError(f"previous_response_id is not supported: {_STATELESS}", param="previous_response_id")
    if body.store is True:
        raise RequestError(f"store: true is not supported: {_STATELESS}", param="store")
    if extra.get("conversation") is not None:
        raise RequestError(f"conversation is not supported: {_STATELESS}", param="conversation")
    if extra.get("background"):
        raise RequestError("background responses are not supported: this node answers in the request "
                           "(use stream: true for progress)", param="background")
    if extra.get("prompt") is not None:
        raise RequestError("stored prompt templates ('prompt') are not supported: send instructions and input",
                           param="prompt")


def _text(content: Any, where: str) -> str:
    """The text of a string or a list of text parts (input_text, output_text, ...)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise RequestError(f"{where} must be a string or a list of content parts", param="input")
    out: list[str] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if isinstance(part, dict) and kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            out.append(part["text"])
        elif isinstance(part, dict) and kind == "refusal" and isinstance(part.get("refusal"), str):
            out.append(part["refusal"])
        elif kind in ("input_image", "input_file", "input_audio"):
            raise RequestError(f"{where}[{i}]: content part '{kind}' is not supported: this node serves "
                               "text-only models; send input_text", param="input")
        else:
            raise RequestError(f"{where}[{i}]: expected a text part ({', '.join(_TEXT_PARTS[:2])}) with a "
                               f"string 'text', got {kind or type(part).__name__!r}", param="input")
    return "\n".join(out)


def _string(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or (key != "arguments" and not value):
        raise RequestError(f"{where}.{key} must be a non-empty string", param="input")
    return value


def messages_of(body: ResponsesRequest) -> list[Message]:
    """``instructions`` + ``input`` as seam messages; function calls join the assistant turn before them."""
    msgs: list[Message] = [Message("system", body.instructions)] if body.instructions else []
    if isinstance(body.input, str):
        return [*msgs, Message("user", body.input)]
    if not body.input:
        raise RequestError("input must be a string or a non-empty list of items", param="input")
    names: dict[str, str] = {}  # call_id -> function name
    thinking: list[str] = []  # reasoning items waiting for the assistant turn they belong to
    for i, item in enumerate(body.input):
        where = f"input[{i}]"
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            text = _text(item.get("content"), f"{where}.content")
            if role in ("system", "developer"):
                msgs.append(Message("system", text))
            elif role == "user":
                msgs.append(Message("user", text))
            elif role == "assistant":
                msgs.append(Message("assistant", text, reasoning="".join(thinking)))
                thinking.clear()
            else:
                raise RequestError(f"{where}.role must be user, assistant, system or developer; got {role!r}",
                                   param="input")
        elif kind == "function_call":
            call = ToolCall(_string(item, "call_id", where), _string(item, "name", where),
                            _string(item, "arguments", where) or "{}")
            names[call.id] = call.name
            if msgs and msgs[-1].role == "assistant" and not thinking:
                msgs[-1] = replace(msgs[-1], tool_calls=(*msgs[-1].tool_calls, call))
            else:
                msgs.append(Message("assistant", "", reasoning="".join(thinking), tool_calls=(call,)))
                thinking.clear()
        elif kind == "function_call_output":
            call_id = _string(item, "call_id", where)
            output = item.get("output")
            text = output if isinstance(output, str) else _text(output, f"{where}.output")
            msgs.append(Message("tool", text, tool_call_id=call_id, name=names.get(call_id)))
        elif kind == "reasoning":
            parts = item.get("content") or item.get("summary") or []
            thinking.append(_text(parts, f"{where}.content"))
        elif kind == "item_reference":
            raise RequestError(f"{where}: item_reference is not supported: {_STATELESS}", param="input")
        else:
            raise RequestError(f"{where}.type {kind!r} is not supported: send message, function_call, "
                               "function_call_output or reasoning items", param="input")
    if not any(m.role in ("user", "assistant", "tool") for m in msgs):
        raise RequestError("input must contain at least one user, assistant or function_call_output item",
                           param="input")
    return msgs


def tools_of(body: ResponsesRequest) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    for i, tool in enumerate(body.tools or []):
        if tool.get("type") != "function":
            raise RequestError(f"tools[{i}].type {tool.get('type')!r} is not supported: this node runs function "
                               "tools only ({\"type\": \"function\", \"name\": ..., \"parameters\": ...})",
                               param="tools")
        fn = tool if "name" in tool else tool.get("function") or {}  # also the chat-completions nesting
        name, params, desc = fn.get("name"), fn.get("parameters"), fn.get("description")
        if not isinstance(name, str) or not name:
            raise RequestError(f"tools[{i}].name must be a non-empty string", param="tools")
        if params is not None and not isinstance(params, dict):
            raise RequestError(f"tools[{i}].parameters must be a JSON schema object", param="tools")
        if any(s.name == name for s in specs):
            raise RequestError(f"tools[{i}]: a function named {name!r} is already defined", param="tools")
        specs.append(ToolSpec(name, desc if isinstance(desc, str) else "",
                              params or {"type": "object", "properties": {}}))
    return specs


def tool_choice_of(body: ResponsesRequest, tools: list[ToolSpec]) -> ToolChoice:
    choice = body.tool_choice
    if choice is None or choice in ("auto", "none"):
        return ToolChoice("none" if choice == "none" else "auto")
    if choice == "required":
        if not tools:
            raise RequestError("tool_choice 'required' needs at least one function in tools", param="tool_choice")
        return ToolChoice("required")
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        if not any(t.name == name for t in tools):
            raise RequestError(f"tool_choice names function {name!r}, which is not in tools", param="tool_choice")
        return ToolChoice("function", name)
    raise RequestError("tool_choice must be 'auto', 'none', 'required' or {\"type\": \"function\", \"name\": ...}",
                       param="tool_choice")


def _format(params: GenerationParams, body: ResponsesRequest) -> GenerationParams:
    fmt = (body.text or {}).get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return params
    if kind == "json_object":
        return params.model_copy(update={"json_object": True})
    if kind == "json_schema":
        assert isinstance(fmt, dict)
        if not isinstance(fmt.get("schema"), dict):
            raise RequestError("text.format.schema must be a JSON schema object", param="text.format.schema")
        return params.model_copy(update={"json_schema": fmt["schema"]})
    raise RequestError("text.format.type must be 'text', 'json_object' or 'json_schema'", param="text.format")


def _reasoning(body: ResponsesRequest) -> Reasoning:
    effort = (body.reasoning or {}).get("effort")
    if effort is None:
        return Reasoning()
    if effort in _THINKING_OFF or effort in _THINKING_ON:
        return Reasoning(enabled=effort in _THINKING_ON)
    raise RequestError(f"reasoning.effort must be one of {', '.join(_THINKING_OFF + _THINKING_ON)}; got {effort!r}",
                       param="reasoning.effort")


def conversation(body: ResponsesRequest) -> Conversation:
    """The seam request for ``body``; every refusal is a :class:`RequestError` (400)."""
    _refuse_state(body)
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    params = generation_params({"max_tokens": body.max_output_tokens, "temperature": body.temperature,
                                "top_p": body.top_p, "top_k": body.top_k, "seed": body.seed, "stop": stop})
    tools = tools_of(body)
    return Conversation(messages=messages_of(body), params=_format(params, body), model=body.model, tools=tools,
                        tool_choice=tool_choice_of(body, tools),
                        parallel_tool_calls=body.parallel_tool_calls is not False,
                        reasoning=_reasoning(body), stream=body.stream)


# ---- chat events → Responses items and stream events -----------------------------------------------------


def usage_body(u: Usage) -> dict[str, Any]:
    # cache_write_tokens: not tracked (0); the SDK's type requires the field
    return {"input_tokens": u.prompt_tokens,
            "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": u.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.total_tokens}


def response_skeleton(body: ResponsesRequest, conv: Conversation, model: str) -> dict[str, Any]:
    """The response object's echo of the request (status, output and usage are filled in later)."""
    choice: Any = conv.tool_choice.mode
    if choice == "function":
        choice = {"type": "function", "name": conv.tool_choice.name}
    fmt = (body.text or {}).get("format") or {"type": "text"}
    return {
        "id": f"resp_{secrets.token_hex(16)}", "object": "response", "created_at": int(time.time()),
        "status": "in_progress", "error": None, "incomplete_details": None, "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens, "model": model, "output": [],
        "parallel_tool_calls": conv.parallel_tool_calls, "previous_response_id": None,
        "reasoning": {"effort": (body.reasoning or {}).get("effort"), "summary": None}, "store": False,
        "temperature": conv.params.temperature, "top_p": conv.params.top_p, "text": {"format": fmt},
        "tool_choice": choice,
        "tools": [{"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters,
                   "strict": True} for t in conv.tools],
        "truncation": "disabled", "usage": None, "user": body.user, "metadata": body.metadata or {},
    }


class ResponseWriter:
    """Chat events in, Responses stream events out (numbered from 0); :attr:`response` is the final object.

    One output item is open at a time: a ``reasoning`` item (``reasoning_text`` content), a ``message``
    (one ``output_text`` part) or a ``function_call``; an event of another kind (or another call) closes it.
    """

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.seq = 0
        self._item: dict[str, Any] | None = None
        self._text: list[str] = []

    def _ev(self, kind: str, **fields: Any) -> dict[str, Any]:
        ev = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return ev

    def _snapshot(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.response))  # events must not change when the response does

    def start(self) -> list[dict[str, Any]]:
        return [self._ev("response.created", response=self._snapshot()),
                self._ev("response.in_progress", response=self._snapshot())]

    def _open(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        prefix = {"message": "msg", "function_call": "fc", "reasoning": "rs"}[kind]
        self._item = {"id": f"{prefix}_{secrets.token_hex(12)}", "type": kind, "status": "in_progress", **fields}
        self._text = []
        index = len(self.response["output"])
        self.response["output"].append(self._item)
        evs = [self._ev("response.output_item.added", output_index=index, item=json.loads(json.dumps(self._item)))]
        part = {"message": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                "reasoning": {"type": "reasoning_text", "text": ""}}.get(kind)
        if part is not None:
            evs.append(self._ev("response.content_part.added", item_id=self._item["id"], output_index=index,
                                content_index=0, part=part))
        return evs

    def _close(self, status: str = "completed") -> list[dict[str, Any]]:
        item = self._item
        if item is None:
            return []
        self._item = None
        text = "".join(self._text)
        index = len(self.response["output"]) - 1
        at = {"item_id": item["id"], "output_index": index}
        item["status"] = status
        evs: list[dict[str, Any]] = []
        if item["type"] == "message":
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            item["content"] = [part]
            evs += [self._ev("response.output_text.done", **at, content_index=0, text=text, logprobs=[]),
                    self._ev("response.content_part.done", **at, content_index=0, part=part)]
        elif item["type"] == "reasoning":
            part = {"type": "reasoning_text", "text": text}
            item["content"] = [part]
            evs += [self._ev("response.reasoning_text.done", **at, content_index=0, text=text),
                    self._ev("response.content_part.done", **at, content_index=0, part=part)]
        else:
            item["arguments"] = text or "{}"
            evs.append(self._ev("response.function_call_arguments.done", **at, name=item["name"],
                                arguments=item["arguments"]))
        evs.append(self._ev("response.output_item.done", output_index=index, item=json.loads(json.dumps(item))))
        return evs

    def feed(self, ev: ChatEvent) -> list[dict[str, Any]]:
        evs: list[dict[str, Any]] = []
        kind = self._item["type"] if self._item is not None else None
        if isinstance(ev, TextDelta) and ev.text:
            if kind != "message":
                evs += self._close() + self._open("message", role="assistant", content=[])
            assert self._item is not None
            self._text.append(ev.text)
            evs.append(self._ev("response.output_text.delta", item_id=self._item["id"],
                                output_index=len(self.response["output"]) - 1, content_index=0,
                                delta=ev.text, logprobs=[]))
        elif isinstance(ev, ReasoningDelta) and ev.text:
            if kind != "reasoning":
                evs += self._close() + self._open("reasoning", summary=[], content=[])
            assert self._item is not None
            self._text.append(ev.text)
            evs.append(self._ev("response.reasoning_text.delta", item_id=self._item["id"],
                                output_index=len(self.response["output"]) - 1, content_index=0, delta=ev.text))
        elif isinstance(ev, ToolCallDelta):
            if ev.name is not None:  # a call's first delta
                evs += self._close() + self._open("function_call", call_id=ev.id or f"call_{secrets.token_hex(12)}",
                                                  name=ev.name, arguments="")
            if ev.arguments and self._item is not None and self._item["type"] == "function_call":
                self._text.append(ev.arguments)
                evs.append(self._ev("response.function_call_arguments.delta", item_id=self._item["id"],
                                    output_index=len(self.response["output"]) - 1, delta=ev.arguments))
        elif isinstance(ev, Finished):
            cut = ev.result.finish_reason == "length"
            if not self.response["output"]:  # nothing said: still one (empty) message, as OpenAI answers
                evs += self._open("message", role="assistant", content=[])
            evs += self._close("incomplete" if cut else "completed")
            self.response.update(status="incomplete" if cut else "completed", usage=usage_body(ev.result.usage),
                                 incomplete_details={"reason": "max_output_tokens"} if cut else None,
                                 completed_at=None if cut else int(time.time()))
            evs.append(self._ev("response.incomplete" if cut else "response.completed", response=self._snapshot()))
        return evs

    def fail(self, code: str, message: str) -> list[dict[str, Any]]:
        """A failure after the stream started: an ``error`` event (our code), then ``response.failed`` (whose
        ``error.code`` is one of OpenAI's fixed codes: ``server_error``)."""
        self._item = None
        self.response.update(status="failed", error={"code": "server_error", "message": f"{code}: {message}"})
        return [self._ev("error", code=code, message=message, param=None),
                self._ev("response.failed", response=self._snapshot())]


def _sse(ev: dict[str, Any]) -> str:
    return f"event: {ev['type']}\ndata: {json.dumps(ev, ensure_ascii=False)}\n\n"


@router.post("/responses", response_model=None)
async def responses(body: ResponsesRequest, request: Request) -> Response:
    node: Node = request.app.state.node
    conv = conversation(body)
    if node.router is not None:  # local or cloud, privacy guard, ledger: slmnode.router.wire
        return await node.router.wire(node, "responses", body, conv, request, lambda c: local_responses(node, body, c))
    return await local_responses(node, body, conv)


async def local_responses(node: Node, body: ResponsesRequest, conv: Conversation) -> JSONResponse | StreamingResponse:
    """Answer with a local model."""
    t0 = time.perf_counter()
    chat = await open_chat(node, conv)  # admission and request errors raise here, before any byte
    writer = ResponseWriter(response_skeleton(body, conv, chat.model.name))
    if not body.stream:
        async with aclosing(chat.events) as events:  # type: ignore[type-var]
            async for ev in events:
                writer.feed(ev)
        if writer.response["status"] == "in_progress":
            raise EngineError("generation ended without a result; retry, and see the node's log")
        node.metrics.latency.labels("responses").observe(time.perf_counter() - t0)
        return JSONResponse(writer.response)

    async def stream() -> AsyncIterator[str]:
        async with aclosing(chat.events) as events:  # type: ignore[type-var]
            for ev in writer.start():
                yield _sse(ev)
            try:
                async for chat_ev in events:
                    for ev in writer.feed(chat_ev):
                        yield _sse(ev)
            except SlmnodeError as exc:
                for ev in writer.fail(exc.code or exc.error_type, exc.message):
                    yield _sse(ev)
                return
            except Exception as exc:  # a bug: say so in the stream, log the traceback
                for ev in writer.fail("server_error", stream_fault("/v1/responses", exc)):
                    yield _sse(ev)
                return
        node.metrics.latency.labels("responses").observe(time.perf_counter() - t0)

    return event_stream(stream(), chat, "text/event-stream")
