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
  with hooks (unless the variable is set already), and ``--session-id UUID``; the variables
  that would make it start non-interactive (``CI``, ``CI_*``) are dropped from its
  environment;
- to resume, each is started inside its recorded conversation (Aider restores the chat
  history it keeps in its directory).

Each hook runs ``hookcmd.py`` by absolute path with this Python, naming the squad, the agent
and the state directory on its command line, because programs may run hooks with a cleaned
environment. Aider has no hooks: squad reads its screen.

The conversation ids squad knows are kept in :mod:`squad.records`: what ``squad ls --json``
shows as ``session_id``, and what a restore after a reboot, ``squad wake`` and ``squad
restart --resume`` start again.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from squad import records
from squad.layout import Agent, Squad
from squad.state import squad_dir, state_home, write_private
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
    program: str | None = None  # the known program (claude, codex, gemini, aider)
    session_id: str | None = None  # the conversation id squad chose or resumes
    resumed: bool = False  # started again inside its earlier conversation


def hook_argv(program: str, event: str, squad: Squad, agent: Agent) -> list[str]:
    return [sys.executable, str(HOOKCMD), program, event, "--squad", squad.name,
            "--target", agent.target, "--home", str(state_home())]


def _hook_command(program: str, event: str, squad: Squad, agent: Agent) -> str:
    return shlex.join(hook_argv(program, event, squad, agent))


KNOWN = ("claude", "codex", "gemini", "aider")


def known_program(agent: Agent) -> str | None:
    """claude, codex, gemini or aider when the agent's command runs it directly, else
    None (squad adds nothing to commands it does not understand, such as ``sh -c ...``)."""
    argv = agent.argv
    if not argv:
        return None
    name = os.path.basename(argv[0])
    pack = pack_name_for([argv[0]])
    return pack if pack in KNOWN and name.startswith(pack) else None


def can_resume(agent: Agent) -> bool:
    """Whether squad can start this agent again inside an earlier conversation."""
    return known_program(agent) is not None


def _picks(argv: list[str], options: tuple[str, ...]) -> bool:
    return any(a in options or a.startswith(tuple(o + "=" for o in options)) for a in argv)


def prepare(squad: Squad, agent: Agent, *, resume: str | None = None) -> Launch:
    """The command line and extra environment to start ``agent`` with; ``resume`` (a
    conversation id squad recorded) starts it again inside that conversation where the
    program can: ``claude --resume ID``, ``codex resume ID``, ``gemini --resume ID``, and
    Aider's ``--restore-chat-history`` (it keeps one history per directory)."""
    argv = list(agent.argv)
    program = known_program(agent)
    if program == "claude":
        extra: list[str] = []
        if not _picks(argv, ("--settings",)):
            hooks = {event: [{"hooks": [{"type": "command",
                                         "command": _hook_command("claude", event, squad,
                                                                  agent)}]}]
                     for event in CLAUDE_EVENTS}
            extra += ["--settings", json.dumps({"hooks": hooks})]
        if _picks(argv, CLAUDE_PICKS_SESSION):
            return Launch([argv[0], *extra, *argv[1:]], {}, program)
        if resume:
            return Launch([argv[0], *extra, "--resume", resume, *argv[1:]], {}, program,
                          resume, True)
        session = str(uuid.uuid4())
        return Launch([argv[0], *extra, "--session-id", session, *argv[1:]], {}, program,
                      session)
    if program == "codex":
        extra = []
        if not any(a.startswith("notify") for a in argv):
            extra = ["-c", "notify=" + json.dumps(hook_argv("codex", "turn", squad, agent))]
        if resume and "resume" not in argv[1:]:
            return Launch([argv[0], *extra, "resume", resume, *argv[1:]], {}, program,
                          resume, True)
        return Launch([argv[0], *extra, *argv[1:]], {}, program)
    if program == "gemini":
        env: dict[str, str] = {}
        if "GEMINI_CLI_SYSTEM_SETTINGS_PATH" not in agent.env:
            path = squad_dir(squad.name) / "gemini" / f"{agent.team}.{agent.name}.json"
            hooks = {event: [{"hooks": [{"type": "command", "name": f"squad-{event}",
                                         "command": _hook_command("gemini", event, squad,
                                                                  agent),
                                         "timeout": 10000}]}]
                     for event in GEMINI_EVENTS}
            path.parent.mkdir(mode=0o700, exist_ok=True)
            write_private(path, json.dumps({"hooks": hooks}, indent=2).encode())
            env["GEMINI_CLI_SYSTEM_SETTINGS_PATH"] = str(path)
        # Gemini CLI starts non-interactive (reads stdin, never shows its prompt) when it
        # sees CI, CONTINUOUS_INTEGRATION or any CI_* variable, which a tmux server started
        # from a CI job or a shell with e.g. CI_TOKEN passes on. The wrapper drops them,
        # unless the layout sets one for this agent on purpose.
        if not any(k in ("CI", "CONTINUOUS_INTEGRATION") or k.startswith("CI_")
                   for k in agent.env):
            env["SQUAD_UNSET"] = "CI CONTINUOUS_INTEGRATION CI_*"
        if _picks(argv, ("--session-id", "--resume", "-r")):
            return Launch(argv, env, program)
        if resume:
            return Launch([argv[0], "--resume", resume, *argv[1:]], env, program, resume,
                          True)
        session = str(uuid.uuid4())
        return Launch([argv[0], "--session-id", session, *argv[1:]], env, program, session)
    if program == "aider":
        if resume and not _picks(argv, ("--restore-chat-history",
                                        "--no-restore-chat-history")):
            return Launch([argv[0], "--restore-chat-history", *argv[1:]], {}, program,
                          None, True)
        return Launch(argv, {}, program)
    return Launch(argv)


def remember(squad: Squad, agent: Agent, how: Launch) -> None:
    """Record the conversation an agent was just started in (a new one replaces the one
    before; programs that tell their id later get it recorded by the supervisor)."""
    if how.program is not None and how.program != "aider":  # Aider keeps no ids
        records.update(squad.name, agent.target, program=how.program,
                       session_id=how.session_id)


def resume_id(squad: Squad, agent: Agent) -> str | None:
    """What to resume when the agent starts again: its recorded conversation, or for Aider
    its chat history (one per directory); None when there is nothing to resume."""
    program = known_program(agent)
    if program == "aider":
        return "chat-history"
    if program is None:
        return None
    record = records.get(squad.name, agent.target)
    return record.session_id if record.program == program else None
