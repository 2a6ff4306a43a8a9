"""Events an agent program reports about itself (its hooks): first-class evidence of status
and delivery, trusted over the screen while fresh.

A program with hooks (Claude Code runs a command on each event; Codex runs a ``notify``
program at the end of a turn; Gemini CLI has hooks too) calls ``squad hook PROGRAM EVENT``
from the agent's window. The window's environment names the squad and the agent, so the
command knows whose event it is; the event goes to the squad's ``hooks.jsonl`` (one locked
append, like the audit trail) with the program's own JSON (session id, tool, message).

Kinds, whatever the program calls them:
    start     a session began (carries the conversation id)
    submit    a prompt was submitted
    tool      a tool is about to run, or ran (the agent works)
    question  the agent waits for a person (a permission question)
    stop      the turn ended: the agent is back at its prompt
    idle      the program says it has been waiting for input a while
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squad import events
from squad.state import squad_dir

KINDS = ("start", "submit", "tool", "question", "stop", "idle")
FRESH = 600.0  # seconds a hook event counts as evidence without a newer one

# (program, its own event name) -> kind. Notifications are told apart by their type.
EVENTS = {
    ("claude", "SessionStart"): "start", ("claude", "UserPromptSubmit"): "submit",
    ("claude", "PreToolUse"): "tool", ("claude", "PostToolUse"): "tool",
    ("claude", "Stop"): "stop",
    ("gemini", "SessionStart"): "start", ("gemini", "BeforeAgent"): "submit",
    ("gemini", "BeforeTool"): "tool", ("gemini", "AfterTool"): "tool",
    ("gemini", "AfterAgent"): "stop",
    ("codex", "agent-turn-complete"): "stop",
}
QUESTIONS = {"permission_prompt", "ToolPermission", "elicitation_dialog"}
IDLES = {"idle_prompt"}


def kind_for(program: str, event: str, payload: dict[str, Any]) -> str | None:
    """What a program's hook event means for squad (None: nothing squad uses)."""
    if event == "Notification":
        ntype = str(payload.get("notification_type") or "")
        message = str(payload.get("message") or "")
        if ntype in QUESTIONS or "permission" in message.lower():
            return "question"
        if ntype in IDLES or "waiting for your input" in message.lower():
            return "idle"
        return None
    return EVENTS.get((program, event))


def log_path(squad: str) -> Path:
    return squad_dir(squad) / "hooks.jsonl"


def record(squad: str, target: str, kind: str, program: str,
           payload: dict[str, Any] | None = None, *, now: float | None = None) -> dict:
    """Append one hook event for ``target`` (``team/agent``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown hook kind {kind!r}")
    payload = payload or {}
    event = {"ts": round(time.time() if now is None else now, 3), "target": target,
             "kind": kind, "program": program}
    for key in ("session_id", "hook_event_name", "notification_type", "message", "tool_name",
                "thread-id", "turn-id", "type", "transcript_path"):
        value = payload.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            event[key.replace("-", "_")] = value if not isinstance(value, str) else value[:500]
    events.append(log_path(squad), event, rotate=True)
    return event


@dataclass
class Seen:
    """The latest hook events of one agent."""

    kind: str
    at: float
    session_id: str | None = None


@dataclass
class HookReader:
    """Reads a squad's hook events incrementally: each call reads only what was appended since
    the last one (the file is rotated like the audit trail; a new inode starts over)."""

    squad: str
    latest: dict[str, Seen] = field(default_factory=dict)  # target -> latest event
    sessions: dict[str, str] = field(default_factory=dict)  # target -> conversation id
    _offset: int = 0
    _inode: int | None = None
    _partial: bytes = b""

    def poll(self) -> dict[str, Seen]:
        path = log_path(self.squad)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return self.latest
        try:
            st = os.fstat(fd)
            if st.st_ino != self._inode or st.st_size < self._offset:
                self._inode, self._offset, self._partial = st.st_ino, 0, b""
            if st.st_size > self._offset:
                os.lseek(fd, self._offset, os.SEEK_SET)
                data = self._partial + os.read(fd, st.st_size - self._offset)
                self._offset = st.st_size
                lines = data.split(b"\n")
                self._partial = lines.pop()
                for line in lines:
                    self._take(line)
        finally:
            os.close(fd)
        return self.latest

    def _take(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        target, kind, ts = event.get("target"), event.get("kind"), event.get("ts")
        if not (isinstance(target, str) and kind in KINDS and isinstance(ts, int | float)):
            return
        session = event.get("session_id") or event.get("thread_id")
        session = session if isinstance(session, str) and session else None
        if session:
            self.sessions[target] = session
        self.latest[target] = Seen(kind, float(ts), session)

    def since(self, target: str, t: float | None, now: float | None = None) -> str | None:
        """The latest hook event kind of ``target`` at or after ``t`` (and fresh), else None."""
        seen = self.seen_since(target, t, now)
        return seen.kind if seen is not None else None

    def seen_since(self, target: str, t: float | None, now: float | None = None
                   ) -> Seen | None:
        """The latest hook event of ``target`` at or after ``t`` (and fresh), else None."""
        seen = self.latest.get(target)
        now = time.time() if now is None else now
        if seen is None or t is None or seen.at < t or now - seen.at > FRESH:
            return None
        return seen


def _codex_conversation(thread: object) -> bool:
    """Whether a Codex thread id names a conversation it keeps (and can resume): Codex
    also reports turns of side threads (the one that titles a conversation), which have no
    session file of their own."""
    if not isinstance(thread, str) or not thread or "/" in thread:
        return False
    home = Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")
    return any((home / "sessions").glob(f"**/rollout-*-{thread}.jsonl"))


def main(argv: list[str]) -> int:
    """``squad hook PROGRAM EVENT --squad NAME --target TEAM/AGENT [--home DIR]``: record one
    hook event; the program's JSON comes on standard input (Codex passes it as the last
    argument instead). Never fails the program that called it: problems go to stderr and the
    exit status is 0 (Claude Code and Gemini CLI would block a turn on exit status 2).
    Prints ``{}`` for Gemini CLI, which expects JSON on standard output, and nothing else."""
    import argparse

    parser = argparse.ArgumentParser(prog="squad hook", add_help=True)
    parser.add_argument("program")
    parser.add_argument("event")
    parser.add_argument("payload", nargs="?", help="the event's JSON (Codex's notify)")
    parser.add_argument("--squad", default=os.environ.get("SQUAD_NAME"))
    parser.add_argument("--target")
    parser.add_argument("--home")
    try:
        args = parser.parse_intermixed_args(argv)  # Codex appends its JSON after all
        if args.home:
            os.environ["SQUAD_HOME"] = args.home
        target = args.target or "/".join(
            filter(None, (os.environ.get("SQUAD_TEAM"), os.environ.get("SQUAD_AGENT"))))
        text = args.payload if args.payload is not None else (
            sys.stdin.read() if not sys.stdin.isatty() else "")
        try:
            payload = json.loads(text) if text.strip() else {}
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        event = args.event
        if args.program == "codex" and payload.get("type"):
            event = str(payload["type"])
            if not _codex_conversation(payload.get("thread-id")):
                payload = {k: v for k, v in payload.items() if k != "thread-id"}
        kind = kind_for(args.program, event, payload)
        if kind and args.squad and "/" in target:
            record(args.squad, target, kind, args.program, payload)
    except SystemExit:
        pass
    except Exception as exc:  # noqa: BLE001 - a hook must never break the agent's turn
        print(f"squad hook: {exc}", file=sys.stderr)
    if len(argv) > 0 and argv[0] == "gemini":
        print("{}")
    return 0
