"""How squad starts the programs it knows: their hooks, and the id of their conversation.

Without touching any of the user's own files, for an agent whose command runs the program
itself (``claude``, ``codex`` or ``gemini`` as the first word, as users write it):

- Claude Code gets ``--settings JSON`` with hooks (prompt submitted, tool use, permission
  question, turn ended, session start) and ``--session-id UUID``, so squad knows its
  conversation from the first second, unless the command already picks one (``--session-id``,
  ``--resume``, ``--continue``), or already passes its own ``--settings``;
- Codex gets ``-c notify=[...]``, its end-of-turn program, unless the command sets notify;
  its conversation id arrives with the first notification;
- Gemini CLI gets ``GEMINI_CLI_SYSTEM_SETTINGS_PATH`` pointing at a settings file of squad's
  with hooks (unless the variable is set already); its session id arrives with its hooks.

Each hook runs ``hookcmd.py`` by absolute path with this Python, naming the squad, the agent
and the state directory on its command line, because programs may run hooks with a cleaned
environment. Aider has no hooks: squad reads its screen.

The conversation ids squad knows are kept in the squad's ``sessions.json``: what ``squad ls
--json`` shows as ``session_id`` and what a restart will resume.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from squad.layout import Agent, Squad
from squad.state import squad_dir, squad_lock, state_home, write_private
from squad.status import pack_name_for

HOOKCMD = Path(__file__).with_name("hookcmd.py")

CLAUDE_EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse",
                 "Notification", "Stop")
GEMINI_EVENTS = ("SessionStart", "BeforeAgent", "BeforeTool", "AfterTool", "Notification",
                 "AfterAgent")
CLAUDE_PICKS_SESSION = ("--session-id", "--resume", "-r", "--continue", "-c", "--from-pr")


@dataclass(frozen=True)
class Launch:
    """The agent's command and extra environment as squad starts it."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    program: str | None = None  # the known program squad added hooks for
    session_id: str | None = None  # the conversation id squad chose, when it chose one


def hook_argv(program: str, event: str, squad: Squad, agent: Agent) -> list[str]:
    return [sys.executable, str(HOOKCMD), program, event, "--squad", squad.name,
            "--target", agent.target, "--home", str(state_home())]


def _hook_command(program: str, event: str, squad: Squad, agent: Agent) -> str:
    return shlex.join(hook_argv(program, event, squad, agent))


def known_program(agent: Agent) -> str | None:
    """claude, codex or gemini when the agent's command runs it directly, else None."""
    argv = agent.argv
    if not argv:
        return None
    name = os.path.basename(argv[0])
    pack = pack_name_for([argv[0]])
    return pack if pack in ("claude", "codex", "gemini") and name.startswith(pack) else None


def prepare(squad: Squad, agent: Agent, *, resume: str | None = None) -> Launch:
    """The command line and extra environment to start ``agent`` with; ``resume`` asks
    Claude Code to continue that conversation instead of starting a new one."""
    argv = list(agent.argv)
    program = known_program(agent)
    if program == "claude":
        extra: list[str] = []
        if not any(a == "--settings" or a.startswith("--settings=") for a in argv):
            hooks = {event: [{"hooks": [{"type": "command",
                                         "command": _hook_command("claude", event, squad,
                                                                  agent)}]}]
                     for event in CLAUDE_EVENTS}
            extra += ["--settings", json.dumps({"hooks": hooks})]
        session = None
        if not any(a in CLAUDE_PICKS_SESSION or a.startswith(("--session-id=", "--resume="))
                   for a in argv):
            if resume:
                extra += ["--resume", resume]
                session = resume
            else:
                session = str(uuid.uuid4())
                extra += ["--session-id", session]
        return Launch([argv[0], *extra, *argv[1:]], {}, program, session)
    if program == "codex":
        if any(a.startswith("notify") for a in argv):
            return Launch(argv)
        notify = json.dumps(hook_argv("codex", "turn", squad, agent))
        return Launch([argv[0], "-c", f"notify={notify}", *argv[1:]], {}, program)
    if program == "gemini":
        if "GEMINI_CLI_SYSTEM_SETTINGS_PATH" in agent.env:
            return Launch(argv)
        path = squad_dir(squad.name) / "gemini" / f"{agent.team}.{agent.name}.json"
        hooks = {event: [{"hooks": [{"type": "command", "name": f"squad-{event}",
                                     "command": _hook_command("gemini", event, squad, agent),
                                     "timeout": 10000}]}]
                 for event in GEMINI_EVENTS}
        path.parent.mkdir(mode=0o700, exist_ok=True)
        write_private(path, json.dumps({"hooks": hooks}, indent=2).encode())
        return Launch(argv, {"GEMINI_CLI_SYSTEM_SETTINGS_PATH": str(path)}, program)
    return Launch(argv)


# -- conversation ids ---------------------------------------------------------------------


def sessions_path(squad: str) -> Path:
    return squad_dir(squad) / "sessions.json"


def sessions(squad: str) -> dict[str, dict]:
    """``{target: {"program", "session_id", "since"}}`` for every agent squad knows the
    conversation of (an unreadable file counts as empty)."""
    try:
        fd = os.open(sessions_path(squad), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict)
            and isinstance(v.get("session_id"), str)}


def record_session(squad: str, target: str, program: str, session_id: str | None) -> None:
    """Remember (or, with None, forget) an agent's conversation id."""
    with squad_lock(squad, "sessions"):
        data = sessions(squad)
        old = data.get(target)
        if session_id is None:
            if old is None:
                return
            data.pop(target)
        elif old is not None and old.get("session_id") == session_id:
            return
        else:
            data[target] = {"program": program, "session_id": session_id,
                            "since": round(time.time(), 3)}
        write_private(sessions_path(squad), json.dumps(data, indent=1).encode())
