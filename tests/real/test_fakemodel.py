"""The fake model server on its own (no agent CLI needed): each API's wire format as the
CLIs read it, the directives, the request log, side requests kept apart from prompts."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.real.fakemodel import (
    ANTHROPIC,
    CHAT,
    GEMINI,
    PROBE,
    PROMPT,
    RESPONSES,
    SIDE,
    TOOL_RESULT,
    UNKNOWN,
    FakeModel,
    script_for,
)

SCRIPT = Path(__file__).with_name("fakemodel.py")


def post(model: FakeModel, path: str, body: Any) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", model.port, timeout=30)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def sse(text: str) -> list[tuple[str | None, Any]]:
    """(event name, data) pairs of a Server-Sent Events body."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data is not None:
            events.append((name, data if data == "[DONE]" else json.loads(data)))
    return events


def anthropic(text: str, tools: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "stream": True, "max_tokens": 100,
            "tools": [{"name": "Bash", "input_schema": {}}] if tools else [],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nctx\n</system-reminder>\n"},
                {"type": "text", "text": text}]}], **extra}


@pytest.fixture
def model(tmp_path: Path):
    with FakeModel(log_path=tmp_path / "log.jsonl") as m:
        yield m


def test_directives():
    assert script_for("hi there\nmore").text == "OK: hi there"
    assert script_for("x [fake: echo Hello, world]").text == "Hello, world"
    s = script_for("[fake: think 2] [fake: stream 1.5]")
    assert (s.think, s.stream) == (2.0, 1.5)
    assert script_for("run [fake: tool [ -f a ] && touch b]").tool == "[ -f a ] && touch b"
    assert script_for("[squad task #3 1234abcd]\nFix it").text == "OK: [squad task #3 1234abcd]"


def test_anthropic_stream_and_log(model: FakeModel, tmp_path: Path):
    status, body = post(model, "/v1/messages?beta=true", anthropic("Hello model"))
    assert status == 200
    events = sse(body)
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop",
            "message_delta", "ping"} <= set(names)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "OK: Hello model"
    assert model.prompts() == ["Hello model"]  # the system reminder is not the prompt
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged[0]["api"] == ANTHROPIC and logged[0]["kind"] == PROMPT
    assert logged[0]["body"]["messages"][0]["role"] == "user"


def test_anthropic_tool_use_then_result(model: FakeModel):
    _, body = post(model, "/v1/messages", anthropic("Go [fake: tool touch x]"))
    start = next(d for n, d in sse(body) if n == "content_block_start")
    assert start["content_block"]["type"] == "tool_use"
    assert start["content_block"]["name"] == "Bash"
    delta = next(d for n, d in sse(body) if n == "content_block_delta")
    assert json.loads(delta["delta"]["partial_json"])["command"] == "touch x"
    stop = next(d for n, d in sse(body) if n == "message_delta")
    assert stop["delta"]["stop_reason"] == "tool_use"

    result = {"model": "m", "stream": True, "tools": [{"name": "Bash"}], "messages": [
        {"role": "user", "content": "Go [fake: tool touch x]"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}]}
    _, body = post(model, "/v1/messages", result)
    assert "tool done" in body
    assert [r.kind for r in model.select(ANTHROPIC)] == [PROMPT, TOOL_RESULT]


def test_anthropic_side_requests_and_count_tokens(model: FakeModel):
    title = anthropic("<session>Hi</session>", tools=False, stream=False, output_config={
        "format": {"type": "json_schema", "schema": {
            "type": "object", "properties": {"title": {"type": "string"}}}}})
    status, body = post(model, "/v1/messages", title)
    assert status == 200
    assert json.loads(json.loads(body)["content"][0]["text"]) == {"title": "Fake conversation"}
    status, body = post(model, "/v1/messages/count_tokens", anthropic("x"))
    assert json.loads(body)["input_tokens"] > 0
    assert model.prompts() == []
    assert [r.kind for r in model.requests] == [SIDE, "count-tokens"]


def responses(prompt: str, tools: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "stream": True, "tools": [
        {"type": "function", "name": "exec_command", "parameters": {}}] if tools else [],
        "input": [{"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "<environment_context>x</environment_context>"}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": prompt}]}], **extra}


def test_responses_stream_tool_and_title(model: FakeModel):
    _, body = post(model, "/v1/responses", responses("Hi codex [fake: stream 0.5]"))
    events = sse(body)
    kinds = [d["type"] for _, d in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    deltas = "".join(d["delta"] for _, d in events if d["type"] == "response.output_text.delta")
    done = next(d for _, d in events if d["type"] == "response.output_item.done")
    assert done["item"]["content"][0]["text"] == deltas  # the final item repeats the stream
    assert deltas.endswith("stream done")

    _, body = post(model, "/v1/responses", responses("Do [fake: tool touch y]"))
    item = next(d for _, d in sse(body) if d["type"] == "response.output_item.done")["item"]
    assert item["type"] == "function_call" and item["name"] == "exec_command"
    args = json.loads(item["arguments"])
    assert args["cmd"] == "touch y" and args["sandbox_permissions"] == "require_escalated"

    title = responses("Generate a title", tools=False, text={"format": {
        "type": "json_schema", "schema": {"type": "object",
                                          "properties": {"title": {"type": "string"}}}}})
    _, body = post(model, "/v1/responses", title)
    done = next(d for _, d in sse(body) if d["type"] == "response.output_item.done")
    assert json.loads(done["item"]["content"][0]["text"])["title"]

    follow = responses("Do [fake: tool touch y]")
    follow["input"].append({"type": "function_call_output", "call_id": "c", "output": "ok"})
    _, body = post(model, "/v1/responses", follow)
    assert "tool done" in body
    assert model.prompts(RESPONSES) == ["Hi codex [fake: stream 0.5]", "Do [fake: tool touch y]"]
    assert [r.kind for r in model.requests] == [PROMPT, PROMPT, SIDE, TOOL_RESULT]


def test_chat_completions_stream(model: FakeModel):
    body = {"model": "openai/m", "stream": True, "messages": [
        {"role": "system", "content": "Act as an expert software developer."},
        {"role": "user", "content": "Fix it\n\n# *SEARCH/REPLACE block* Rules:\n\nblah"}]}
    _, text = post(model, "/v1/chat/completions", body)
    events = sse(text)
    assert events[-1][1] == "[DONE]"
    answer = "".join(d["choices"][0]["delta"].get("content", "") for _, d in events[:-1]
                     if d["choices"])
    assert answer == "OK: Fix it"
    assert model.prompts(CHAT) == ["Fix it"]


def test_gemini_router_stream_and_tool(model: FakeModel):
    contents = [{"role": "user", "parts": [
        {"text": "<session_context>\nctx\n</session_context>"}, {"text": "Hi gemini"}]}]
    router = {"contents": contents, "generationConfig": {
        "responseMimeType": "application/json", "responseJsonSchema": {
            "type": "OBJECT", "properties": {
                "reasoning": {"type": "STRING"},
                "model_choice": {"type": "STRING", "enum": ["flash", "pro"]}}}}}
    status, body = post(model, "/v1beta/models/r:generateContent", router)
    answer = json.loads(json.loads(body)["candidates"][0]["content"]["parts"][0]["text"])
    assert answer == {"reasoning": "fake", "model_choice": "flash"}

    main = {"contents": contents, "tools": [{"functionDeclarations": [
        {"name": "run_shell_command"}]}]}
    _, body = post(model, "/v1beta/models/p:streamGenerateContent?alt=sse", main)
    lines = [line for line in body.replace("\r\n", "\n").split("\n") if line]
    assert all(line.startswith("data: ") for line in lines), "no comment or event lines"
    parts = [json.loads(line[6:])["candidates"][0]["content"]["parts"][0] for line in lines]
    assert "".join(p["text"] for p in parts) == "OK: Hi gemini"

    contents[-1]["parts"].append({"text": "Now [fake: tool ls -la]"})
    _, body = post(model, "/v1beta/models/p:streamGenerateContent?alt=sse", main)
    call = json.loads(body.strip()[6:])["candidates"][0]["content"]["parts"][0]
    assert call["functionCall"] == {"name": "run_shell_command", "args": {
        "command": "ls -la", "description": "Run the command the test asked for"}}
    assert model.prompts(GEMINI) == ["Hi gemini", "Now [fake: tool ls -la]"]
    assert model.select(GEMINI, SIDE)[0].prompt == "Hi gemini"


def test_think_sends_nothing_at_first(model: FakeModel):
    conn = http.client.HTTPConnection("127.0.0.1", model.port, timeout=30)
    started = time.monotonic()
    conn.request("POST", "/v1/messages", json.dumps(anthropic("Hm [fake: think 0.6]")))
    resp = conn.getresponse()  # headers come only once the silence is over
    assert time.monotonic() - started >= 0.6
    assert "thought for 0.6s" in resp.read().decode()
    conn.close()


def test_unknown_paths_and_probes_are_logged(model: FakeModel):
    status, _ = post(model, "/api/hello", {"x": 1})
    assert status == 404
    conn = http.client.HTTPConnection("127.0.0.1", model.port, timeout=10)
    conn.request("HEAD", "/")
    assert conn.getresponse().status == 200
    conn.close()
    assert [(r.kind, r.status) for r in model.requests] == [(UNKNOWN, 404), (PROBE, 200)]


def test_as_a_script(tmp_path: Path):
    log = tmp_path / "requests.jsonl"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--port", "0", "--log", str(log)],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        port = int(line.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/messages", json.dumps(anthropic("From a script")))
        assert "OK: From a script" in conn.getresponse().read().decode()
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
    assert json.loads(log.read_text().splitlines()[0])["prompt"] == "From a script"
