"""What squad remembers about each agent across restarts and reboots, in the squad's private
``agents.json``: the program's conversation id (what a restore resumes), and whether the agent
is held paused or hibernated (so a squad brought back after a reboot comes back that way).

Several processes write it (``squad up``, ``pause``, ``hibernate``, the supervisor learning a
conversation id from a hook), so every change is a read-modify-write under the squad's
``agents`` lock, written atomically. An unreadable file counts as empty: squad then knows less,
and says so where it matters, but never fails over it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from squad.state import NOFOLLOW, squad_dir, squad_lock, write_private


@dataclass(frozen=True)
class AgentRecord:
    """One agent as squad remembers it."""

    program: str | None = None  # the known program it runs (claude, codex, gemini, aider)
    session_id: str | None = None  # its conversation, when the program has ids
    since: float = 0.0  # when this conversation began (or was learned)
    paused: bool = False  # paused by a person or a policy: stays paused after a restore
    hibernated: bool = False  # stopped to free memory; its window, task and conversation kept
    pinned: bool = False  # `squad pin`: never paused or hibernated by pressure or max_active

    @classmethod
    def from_json(cls, data: object) -> AgentRecord | None:
        if not isinstance(data, dict):
            return None
        known = {f.name: f.type for f in fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            if key in ("paused", "hibernated", "pinned") and isinstance(value, bool):
                clean[key] = value
            elif key == "since" and isinstance(value, int | float) and not isinstance(value, bool):
                clean[key] = float(value)
            elif key in ("program", "session_id") and (value is None or isinstance(value, str)):
                clean[key] = value
        return cls(**clean)


def path_of(squad: str) -> Path:
    return squad_dir(squad) / "agents.json"


def read(squad: str) -> dict[str, AgentRecord]:
    """Every agent squad remembers something about, by ``team/agent``."""
    try:
        fd = os.open(path_of(squad), os.O_RDONLY | NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out = {}
    for target, value in data.items():
        record = AgentRecord.from_json(value)
        if isinstance(target, str) and record is not None:
            out[target] = record
    return out


def get(squad: str, target: str) -> AgentRecord:
    return read(squad).get(target) or AgentRecord()


def update(squad: str, target: str, **changes: Any) -> AgentRecord:
    """Change what squad remembers about one agent; returns the new record."""
    with squad_lock(squad, "agents"):
        data = read(squad)
        old = data.get(target) or AgentRecord()
        new = replace(old, **changes)
        if "session_id" in changes and changes["session_id"] != old.session_id:
            new = replace(new, since=round(time.time(), 3))
        if new == old:
            return old
        data[target] = new
        write_private(path_of(squad), json.dumps(
            {k: asdict(v) for k, v in data.items()}, indent=1).encode())
        return new


def forget(squad: str, target: str) -> None:
    """An agent removed from the squad: nothing more to remember."""
    with squad_lock(squad, "agents"):
        data = read(squad)
        if data.pop(target, None) is not None:
            write_private(path_of(squad), json.dumps(
                {k: asdict(v) for k, v in data.items()}, indent=1).encode())
