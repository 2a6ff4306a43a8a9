"""A scripted fake model server that the real agent CLIs talk to instead of their vendors.

Standard library only, so it runs anywhere the tests run and as a plain script:

    python tests/real/fakemodel.py --port 8765 --log requests.jsonl

It speaks just enough of four wire protocols for Claude Code, Codex, Gemini CLI and Aider to
work normally: the Anthropic Messages API (``/v1/messages``, SSE), the OpenAI Responses API
(``/v1/responses``, SSE, as Codex uses it), OpenAI Chat Completions (``/v1/chat/completions``,
SSE, as Aider uses it through litellm) and Gemini's ``:generateContent`` /
``:streamGenerateContent``.

What it answers is scripted by directives in the latest user message, so a test steers the
model through the prompt it sends to the CLI:

    [fake: echo TEXT]      answer TEXT
    [fake: stream N]       stream text slowly for N seconds, then say "stream done"
    [fake: think N]        send nothing at all for N seconds, then answer
    [fake: tool COMMAND]   call the CLI's shell tool with COMMAND (the CLI asks the user for
                           permission); once the tool's result comes back, answer "tool done"
    (none)                 answer "OK: " + the first non-blank line of the prompt

A directive ends its line (or is followed by another one), so a tool command may itself
contain brackets: ``[fake: tool [ -f a ] && touch b]``. Directives combine: ``[fake: think
3] [fake: stream 5]`` is silent for 3 seconds, then streams for 5. The shell tool asks for
permission only where the CLI would: Claude Code runs ``echo`` or ``ls`` without asking,
so use a command that changes something, such as ``touch FILE``. Aider has no tools: the
answer holds the command in a fenced block, which Aider offers to run, and the result
never goes back to the model.

Every request is recorded (method, path, API, kind, the full JSON body, the latest user text,
time) in :attr:`FakeModel.requests` and, optionally, as one JSON line per request in a log
file. The CLIs also make side requests (Claude Code and Codex ask for a title for the
conversation with their first prompt, Gemini CLI asks a router which model to use before
every prompt): those are answered sensibly (a JSON object of the schema they ask for) and
recorded with their own kind, so :meth:`FakeModel.prompts` lists only the user's prompts
and a test can check that one prompt reached the model exactly once.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# -- what a request asks for ------------------------------------------------------------

ANTHROPIC, RESPONSES, CHAT, GEMINI = "anthropic", "responses", "chat", "gemini"

# Kinds of recorded requests.
PROMPT = "prompt"  # a user's prompt reaching the model: what tests count
TOOL_RESULT = "tool-result"  # the CLI reports its tool's output back
SIDE = "side"  # title, router, quota or next-speaker checks the CLI makes on its own
COUNT = "count-tokens"
PROBE = "probe"  # HEAD/GET health checks, model lists
UNKNOWN = "unknown"  # anything else: answered 404, recorded so a test can see it

DIRECTIVE = re.compile(
    r"\[fake:\s*(echo|stream|think|tool)\b[ \t]*(.*?)\](?=[ \t]*(?:\[fake:|$))",
    re.MULTILINE,
)
# Context the CLIs wrap around or next to the user's words (Claude's reminders, Gemini's
# session context, Codex's environment): not part of the prompt a test sent.
_CONTEXT = re.compile(r"<(system-reminder|session_context|environment_context)>.*?</\1>",
                      re.DOTALL)

STREAM_TICK = 0.25  # seconds between streamed pieces of a slow answer


@dataclass
class Script:
    """What the fake model will do for one request, read from the prompt's directives."""

    text: str = ""  # the answer
    think: float = 0.0  # seconds of silence before anything is sent
    stream: float = 0.0  # seconds over which the answer trickles out
    tool: str | None = None  # a shell command to call the CLI's tool with


def script_for(prompt: str) -> Script:
    """Read the ``[fake: ...]`` directives of a prompt (they combine: think, then stream)."""
    s = Script()
    for verb, arg in DIRECTIVE.findall(prompt):
        arg = arg.strip()
        if verb == "echo":
            s.text = arg
        elif verb == "tool":
            s.tool = arg
        else:
            try:
                seconds = float(arg)
            except ValueError:
                continue
            if verb == "think":
                s.think = seconds
            else:
                s.stream = seconds
    if not s.text:
        if s.stream:
            s.text = "stream done"
        elif s.think:
            s.text = f"thought for {s.think:g}s"
        else:
            first = next((line.strip() for line in prompt.splitlines() if line.strip()), "")
            s.text = "OK: " + first
    return s


def stream_pieces(s: Script) -> list[str]:
    """The answer cut into pieces: for a slow stream, numbered lines that fill ``s.stream``
    seconds at one piece per :data:`STREAM_TICK`, then the answer itself."""
    if s.stream <= 0:
        return [s.text]
    count = max(1, int(s.stream / STREAM_TICK))
    pieces = [f"streaming {i + 1}/{count} lorem ipsum" + ("\n\n" if i % 4 == 3 else ", ")
              for i in range(count)]
    return [*pieces, "\n" + s.text]


# -- requests as recorded ---------------------------------------------------------------


@dataclass
class Request:
    """One HTTP request the fake model received."""

    time: float  # time.time() when it arrived
    method: str
    path: str  # with the query string
    api: str | None  # anthropic, responses, chat, gemini; None for probes and unknown paths
    kind: str  # prompt, tool-result, side, count-tokens, probe, unknown
    prompt: str  # the latest user text (system reminders removed), "" when there is none
    body: Any  # the JSON body as sent (None if there was none or it was not JSON)
    status: int = 200
    answer: str = ""  # what the fake model answered (text, or "tool: COMMAND")


# -- small JSON helpers -----------------------------------------------------------------


def _text_of(content: Any) -> str:
    """Plain text of a message's content in any of the four APIs' shapes."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
    return "\n".join(parts)


# Claude Code notes where the user stopped it, next to the prompt that follows.
_INTERRUPTED = re.compile(r"^\[Request interrupted by user[^\]\n]*\]$", re.MULTILINE)

# Aider appends its edit-format rules to the latest user message.
_AIDER_RULES = re.compile(r"\n+# \*SEARCH/REPLACE block\* Rules:.*", re.DOTALL)


def _clean(text: str) -> str:
    return _AIDER_RULES.sub("", _CONTEXT.sub("", text)).strip()


def example_of(schema: Any, key: str = "") -> Any:
    """A small value that fits a JSON schema (as Gemini's router and Codex's title ask for).

    Enums take their first value, except a "next speaker" check, which is told the user
    speaks next so the CLI does not loop on its own.
    """
    if not isinstance(schema, dict):
        return "fake"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        if "user" in enum and "speaker" in key:
            return "user"
        return enum[0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    kind = str(kind).lower()
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: example_of(v, k) for k, v in props.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    if "title" in key.lower():
        return "Fake conversation"
    return "fake"


# -- the four APIs ----------------------------------------------------------------------


@dataclass
class Turn:
    """What one request means: who it is for, its latest user text, what to answer."""

    api: str
    kind: str
    prompt: str
    stream: bool
    script: Script = field(default_factory=Script)
    json_schema: Any = None  # the answer must be a JSON object of this schema
    tool_names: tuple[str, ...] = ()


def read_anthropic(body: dict[str, Any]) -> Turn:
    # Claude Code may put a role "system" message after the user's (agent listings): the
    # latest user message is the last one with role "user".
    users = [m for m in body.get("messages") or [] if isinstance(m, dict)
             and m.get("role") == "user"]
    content = users[-1].get("content") if users else None
    blocks = content if isinstance(content, list) else []
    tools = tuple(t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict))
    prompt = _clean("\n".join(_clean(_text_of([b])) for b in blocks) if blocks
                    else _text_of(content))
    prompt = _INTERRUPTED.sub("", prompt).strip()
    # After a denied tool, the refusal and the user's next prompt arrive together.
    if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks) \
            and not prompt:
        kind = TOOL_RESULT
    else:
        kind = PROMPT if tools else SIDE
    fmt = (body.get("output_config") or {}).get("format") \
        if isinstance(body.get("output_config"), dict) else None
    schema = fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" \
        else None
    return Turn(ANTHROPIC, kind, prompt, bool(body.get("stream")), json_schema=schema,
                tool_names=tools)


def read_responses(body: dict[str, Any]) -> Turn:
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    items = [i for i in items or [] if isinstance(i, dict)]
    tools = tuple(t.get("name") or t.get("type", "") for t in body.get("tools") or []
                  if isinstance(t, dict))
    users = [i for i in items if i.get("role") == "user"]
    prompt = _clean(_text_of(users[-1].get("content"))) if users else ""
    last_type = items[-1].get("type") if items else None
    if last_type in ("function_call_output", "custom_tool_call_output",
                     "local_shell_call_output"):
        kind = TOOL_RESULT
    else:
        kind = PROMPT if tools else SIDE
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    schema = fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" \
        else None
    return Turn(RESPONSES, kind, prompt, bool(body.get("stream")), json_schema=schema,
                tool_names=tools)


def read_chat(body: dict[str, Any]) -> Turn:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    last = messages[-1] if messages else {}
    users = [m for m in messages if m.get("role") == "user"]
    prompt = _clean(_text_of(users[-1].get("content"))) if users else ""
    kind = TOOL_RESULT if last.get("role") == "tool" else PROMPT
    system = " ".join(_text_of(m.get("content")) for m in messages if m.get("role") == "system")
    if re.search(r"commit message|summariz", system, re.IGNORECASE):
        kind = SIDE
    return Turn(CHAT, kind, prompt, bool(body.get("stream")))


def read_gemini(body: dict[str, Any], path: str) -> Turn:
    contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
    last = contents[-1] if contents else {}
    parts = last.get("parts") or []
    users = [c for c in contents if c.get("role", "user") == "user"]
    texts = [_clean(p["text"]) for p in (users[-1].get("parts") or [] if users else [])
             if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")]
    texts = [t for t in texts if t]
    # The user's words are the last text part of the latest user content: a prompt whose
    # turn was cancelled (a tool question answered with Esc) stays in that content too,
    # before the next prompt.
    prompt = texts[-1] if texts else ""
    config = body.get("generationConfig") or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    json_mode = config.get("responseMimeType") == "application/json"
    tools = tuple(d.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)
                  for d in t.get("functionDeclarations") or [] if isinstance(d, dict))
    if any(isinstance(p, dict) and "functionResponse" in p for p in parts):
        kind = TOOL_RESULT
    elif json_mode or not tools:
        kind = SIDE  # the router, or a check whether the model should go on
    else:
        kind = PROMPT
    return Turn(GEMINI, kind, prompt, ":streamGenerateContent" in path,
                json_schema=schema if json_mode else None, tool_names=tools)


# -- the server -------------------------------------------------------------------------


class FakeModel:
    """The fake model server: start it, point the CLIs at :attr:`url`, read :attr:`requests`.

    Also a context manager. Thread-safe; a test may read the log while CLIs are talking.
    """

    def __init__(self, port: int = 0, log_path: str | Path | None = None,
                 host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.log_path = Path(log_path) if log_path else None
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._ids = 0

    # life cycle

    def start(self) -> FakeModel:
        """Listen on ``host:port`` (port 0: any free port) and serve in a daemon thread."""
        handler = type("Handler", (_Handler,), {"model": self})
        server = _Server((self.host, self.port), handler)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="fakemodel",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections (a thinking answer ends at once), close."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self.host}:{self.port}"

    # the log

    def record(self, req: Request) -> None:
        with self._changed:
            self.requests.append(req)
            self._changed.notify_all()
        if self.log_path is not None:
            line = json.dumps(asdict(req), ensure_ascii=False)
            with self._lock, self.log_path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")

    def select(self, api: str | None = None, kind: str | None = None) -> list[Request]:
        """Recorded requests, optionally of one API and one kind."""
        with self._lock:
            return [r for r in self.requests
                    if (api is None or r.api == api) and (kind is None or r.kind == kind)]

    def prompts(self, api: str | None = None) -> list[str]:
        """The user prompts that reached the model, oldest first (no side requests, no tool
        results, no probes)."""
        return [r.prompt for r in self.select(api, PROMPT)]

    def count(self, text: str, api: str | None = None) -> int:
        """How many prompts that reached the model contain ``text``."""
        return sum(text in p for p in self.prompts(api))

    def wait(self, check: Callable[[FakeModel], object], timeout: float = 30.0,
             what: str = "the fake model") -> object:
        """Block until ``check(self)`` is truthy (re-checked on every request); raise
        AssertionError after ``timeout`` seconds, listing what did arrive."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                self._changed.release()
                try:
                    value = check(self)
                finally:
                    self._changed.acquire()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [f"{r.method} {r.path} {r.kind} {r.prompt[:60]!r}"
                            for r in self.requests[-10:]]
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                         f"last requests: {seen}")
                self._changed.wait(min(left, 0.5))

    def wait_prompt(self, text: str, timeout: float = 30.0, api: str | None = None) -> Request:
        """The first prompt request containing ``text``, waiting up to ``timeout``."""
        def found(m: FakeModel) -> Request | None:
            return next((r for r in m.select(api, PROMPT) if text in r.prompt), None)
        return self.wait(found, timeout, f"a prompt containing {text!r}")  # type: ignore[return-value]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # used by the handler

    def next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def pause(self, seconds: float) -> bool:
        """Sleep, unless the server stops first; True if it is still serving."""
        return not self._stopping.wait(seconds) if seconds > 0 else not self._stopping.is_set()

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)


class _Server(ThreadingHTTPServer):
    """Quiet about clients that hang up: CLIs drop keep-alive connections when they exit."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """One connection; keep-alive HTTP/1.1, chunked SSE bodies."""

    model: FakeModel  # set on the subclass made per server
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle keep-alive connection closes after this many seconds

    def setup(self) -> None:
        super().setup()
        self.model.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.model.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the request log is the record; stderr stays quiet under tmux

    # entry points

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._record(PROBE, None, None)
        self._reply(200, b"", "text/plain", head=True)

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path.rstrip("/").endswith("/models"):
            self._record(PROBE, None, None)
            models = [{"id": "fake-model", "object": "model", "created": 0,
                       "owned_by": "fake", "type": "model", "display_name": "Fake"}]
            self._json(200, {"object": "list", "data": models, "models": models,
                             "has_more": False})
        elif path in ("/", "") or path.endswith(("/health", "/healthz", "/ping")):
            self._record(PROBE, None, None)
            self._json(200, {"ok": True})
        else:
            self._record(UNKNOWN, None, None, status=404)
            self._json(404, {"error": {"message": f"fake model: no GET {path}"}})

    def do_POST(self) -> None:  # noqa: N802
        raw = self._body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = urlsplit(self.path).path
        try:
            self._route(path, body if isinstance(body, dict) else {}, body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the CLI hung up (interrupted by the user): nothing to answer

    do_PUT = do_POST  # noqa: N815 - tolerate odd clients; recorded as unknown by _route

    def _route(self, path: str, body: dict[str, Any], raw: Any) -> None:
        if path.endswith("/messages/count_tokens"):
            self._record(COUNT, ANTHROPIC, raw)
            self._json(200, {"input_tokens": 42})
        elif path.endswith("/messages"):
            self._answer(read_anthropic(body), raw)
        elif path.endswith("/responses"):
            self._answer(read_responses(body), raw)
        elif path.endswith("/chat/completions"):
            self._answer(read_chat(body), raw)
        elif path.endswith(":countTokens"):
            self._record(COUNT, GEMINI, raw)
            self._json(200, {"totalTokens": 42})
        elif path.endswith((":generateContent", ":streamGenerateContent")):
            self._answer(read_gemini(body, path), raw)
        else:
            self._record(UNKNOWN, None, raw, status=404)
            self._json(404, {"error": {"message": f"fake model: no POST {path}"}})

    # plumbing

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self, kind: str, api: str | None, body: Any, prompt: str = "",
                status: int = 200, answer: str = "") -> None:
        self.model.record(Request(time=time.time(), method=self.command, path=self.path,
                                  api=api, kind=kind, prompt=prompt, body=body,
                                  status=status, answer=answer))

    def _reply(self, status: int, data: bytes, ctype: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)
            self.wfile.flush()

    def _json(self, status: int, obj: Any) -> None:
        self._reply(status, json.dumps(obj).encode(), "application/json")

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, data: str) -> None:
        raw = data.encode()
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _answer(self, turn: Turn, raw: Any) -> None:
        """Work out the answer, record the request, then think, stream and finish."""
        if turn.kind == TOOL_RESULT:
            turn.script = Script(text="tool done")
        elif turn.kind == PROMPT:
            turn.script = script_for(turn.prompt)
        else:
            turn.script = Script(text=self._side_text(turn))
        if turn.json_schema is not None:
            turn.script = Script(text=json.dumps(example_of(turn.json_schema)))
        if turn.script.tool is not None and not turn.tool_names and turn.api != CHAT:
            turn.script.tool = None  # a request without tools cannot call one
        s = turn.script
        self._record(turn.kind, turn.api, raw, prompt=turn.prompt,
                     answer=f"tool: {s.tool}" if s.tool is not None else s.text)
        if not self.model.pause(s.think):
            return
        writer = {ANTHROPIC: self._anthropic, RESPONSES: self._responses, CHAT: self._chat,
                  GEMINI: self._gemini}[turn.api]
        writer(turn)

    @staticmethod
    def _side_text(turn: Turn) -> str:
        if turn.api == RESPONSES:
            return "Fake conversation"  # Codex's thread title
        return "OK"

    def _pieces(self, turn: Turn) -> Iterator[str]:
        """The answer's pieces, pausing between them while streaming slowly."""
        pieces = stream_pieces(turn.script)
        for i, piece in enumerate(pieces):
            if i and turn.script.stream and not self.model.pause(STREAM_TICK):
                return
            yield piece

    # Anthropic Messages

    def _anthropic(self, turn: Turn) -> None:
        s, n = turn.script, self.model.next_id()
        msg_id = f"msg_fake{n:06d}"
        usage = {"input_tokens": 10, "output_tokens": 0, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        tool = s.tool is not None
        tool_name = "Bash" if "Bash" in turn.tool_names or not turn.tool_names else \
            turn.tool_names[0]
        tool_input = {"command": s.tool, "description": "Run the command the test asked for"}
        if not turn.stream:
            content: list[dict[str, Any]] = [{"type": "text", "text": s.text}]
            if tool:
                content = [{"type": "tool_use", "id": f"toolu_fake{n:06d}", "name": tool_name,
                            "input": tool_input}]
            self._json(200, {"id": msg_id, "type": "message", "role": "assistant",
                             "model": "fake-model", "content": content,
                             "stop_reason": "tool_use" if tool else "end_turn",
                             "stop_sequence": None, "usage": {**usage, "output_tokens": 5}})
            return

        def event(name: str, data: dict[str, Any]) -> None:
            self._chunk(f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n")

        self._start_stream()
        event("message_start", {"message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": "fake-model",
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}})
        event("ping", {})
        if tool:
            event("content_block_start", {"index": 0, "content_block": {
                "type": "tool_use", "id": f"toolu_fake{n:06d}", "name": tool_name,
                "input": {}}})
            event("content_block_delta", {"index": 0, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(tool_input)}})
        else:
            event("content_block_start", {"index": 0,
                                          "content_block": {"type": "text", "text": ""}})
            for piece in self._pieces(turn):
                event("content_block_delta", {"index": 0,
                                              "delta": {"type": "text_delta", "text": piece}})
        event("content_block_stop", {"index": 0})
        event("message_delta", {"delta": {"stop_reason": "tool_use" if tool else "end_turn",
                                          "stop_sequence": None},
                                "usage": {"output_tokens": 5}})
        event("message_stop", {})
        self._end_stream()

    # OpenAI Responses (Codex)

    def _responses(self, turn: Turn) -> None:
        s, n = turn.script, self.model.next_id()
        resp_id, item_id = f"resp_fake{n:06d}", f"msg_fake{n:06d}"
        usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": 15}
        full = "".join(stream_pieces(s))  # the final item repeats everything streamed
        if s.tool is not None:
            item: dict[str, Any] = {
                "type": "function_call", "id": f"fc_fake{n:06d}",
                "call_id": f"call_fake{n:06d}", "status": "completed",
                "name": "exec_command" if "exec_command" in turn.tool_names or
                not turn.tool_names else turn.tool_names[0],
                "arguments": json.dumps({
                    "cmd": s.tool, "sandbox_permissions": "require_escalated",
                    "justification": "The test asked to run this command."})}
        else:
            item = {"type": "message", "id": item_id, "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": full, "annotations": []}]}
        if not turn.stream:
            self._json(200, {"id": resp_id, "object": "response", "status": "completed",
                             "model": "fake-model", "output": [item], "usage": usage})
            return

        seq = iter(range(1_000_000))

        def event(name: str, data: dict[str, Any]) -> None:
            payload = {"type": name, "sequence_number": next(seq), **data}
            self._chunk(f"event: {name}\ndata: {json.dumps(payload)}\n\n")

        self._start_stream()
        response = {"id": resp_id, "object": "response", "status": "in_progress",
                    "model": "fake-model", "output": []}
        event("response.created", {"response": response})
        event("response.in_progress", {"response": response})
        if s.tool is None:
            event("response.output_item.added", {"output_index": 0, "item": {
                **item, "status": "in_progress", "content": []}})
            event("response.content_part.added", {
                "item_id": item_id, "output_index": 0, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []}})
            for piece in self._pieces(turn):
                event("response.output_text.delta", {"item_id": item_id, "output_index": 0,
                                                     "content_index": 0, "delta": piece})
            event("response.output_text.done", {"item_id": item_id, "output_index": 0,
                                                 "content_index": 0, "text": full})
            event("response.content_part.done", {
                "item_id": item_id, "output_index": 0, "content_index": 0,
                "part": item["content"][0]})
        else:
            event("response.output_item.added", {"output_index": 0,
                                                 "item": {**item, "status": "in_progress"}})
        event("response.output_item.done", {"output_index": 0, "item": item})
        event("response.completed", {"response": {**response, "status": "completed",
                                                  "output": [item], "usage": usage}})
        self._end_stream()

    # OpenAI Chat Completions (Aider)

    def _chat(self, turn: Turn) -> None:
        s, n = turn.script, self.model.next_id()
        text = s.text
        if s.tool is not None:  # Aider has no tools: it offers to run a suggested command
            text = f"Run this:\n\n```bash\n{s.tool}\n```\n"
        chat_id = f"chatcmpl-fake{n:06d}"
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not turn.stream:
            self._json(200, {"id": chat_id, "object": "chat.completion",
                             "created": int(time.time()), "model": "fake-model",
                             "usage": usage, "choices": [{
                                 "index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}]})
            return

        def chunk(delta: dict[str, Any], finish: str | None = None,
                  extra: dict[str, Any] | None = None) -> None:
            obj = {"id": chat_id, "object": "chat.completion.chunk", "created": int(time.time()),
                   "model": "fake-model",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                   **(extra or {})}
            self._chunk(f"data: {json.dumps(obj)}\n\n")

        self._start_stream()
        chunk({"role": "assistant", "content": ""})
        if s.tool is not None:
            chunk({"content": text})
        else:
            for piece in self._pieces(turn):
                chunk({"content": piece})
        chunk({}, "stop", {"usage": usage})
        self._chunk("data: [DONE]\n\n")
        self._end_stream()

    # Gemini generateContent / streamGenerateContent

    def _gemini(self, turn: Turn) -> None:
        s = turn.script
        usage = {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}

        def response(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
            cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
            if finish:
                cand["finishReason"] = finish
            return {"candidates": [cand], "usageMetadata": usage, "modelVersion": "fake-model",
                    "responseId": f"fake{self.model.next_id():06d}"}

        if s.tool is not None:
            name = "run_shell_command" if "run_shell_command" in turn.tool_names or \
                not turn.tool_names else turn.tool_names[0]
            call = {"functionCall": {"name": name, "args": {
                "command": s.tool, "description": "Run the command the test asked for"}}}
        if not turn.stream:
            self._json(200, response([call] if s.tool is not None else [{"text": s.text}],
                                     "STOP"))
            return
        # alt=sse: Server-Sent Events with data lines only (a comment line breaks Gemini
        # CLI's parser); otherwise a JSON array written element by element.
        sse = "alt=sse" in self.path
        self._start_stream()
        first = True

        def send(obj: dict[str, Any]) -> None:
            nonlocal first
            if sse:
                self._chunk(f"data: {json.dumps(obj)}\r\n\r\n")
            else:
                self._chunk(("[" if first else ",\r\n") + json.dumps(obj))
            first = False

        if s.tool is not None:
            send(response([call], "STOP"))
        else:
            pieces = self._pieces(turn)
            previous = next(pieces, "")
            for piece in pieces:  # the last piece goes out with the finish reason
                send(response([{"text": previous}], None))
                previous = piece
            send(response([{"text": previous}], "STOP"))
        if not sse:
            self._chunk("]")
        self._end_stream()


# -- as a script ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted fake model server for the real "
                                     "agent CLIs (Claude Code, Codex, Gemini CLI, Aider).")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log", help="append every request to this JSONL file")
    args = parser.parse_args(argv)
    model = FakeModel(args.port, args.log, args.host).start()
    print(f"fake model listening on {model.url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    model.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
