"""The seam between the UI and the task queue: what the task panel lists and the dispatch
form calls.

The queue plugs in by defining ``ui_provider(live) -> TaskProvider`` in :mod:`squad.tasks`;
until then :class:`DirectSend` delivers a dispatched prompt straight to one agent with
:func:`squad.control.send` and lists what it sent during this session.
"""

from __future__ import annotations

import importlib
import itertools
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from squad import control
from squad.errors import SquadError, TargetError
from squad.live import Live

PRIORITIES = ("critical", "high", "medium", "low")
TASK_KEYS = ("id", "title", "status", "priority", "agent", "attempts", "created")


@runtime_checkable
class TaskProvider(Protocol):
    """Where tasks come from and go to. Both methods run in a thread worker.

    ``list_tasks`` returns dicts with the keys of :data:`TASK_KEYS` (``created`` is a Unix
    time or a display string). ``dispatch`` returns a one-line message for the user and
    raises :class:`squad.errors.SquadError` for a request the user can fix.
    """

    name: str

    def list_tasks(self) -> list[dict]: ...

    def dispatch(self, prompt: str, priority: str, tags: list[str],
                 target: str | None) -> str: ...


class DirectSend:
    """No queue yet: a dispatched prompt goes to the target (or the selected) agent now."""

    name = "sent directly (no task queue)"

    def __init__(self, live: Live, selected: Callable[[], str | None]) -> None:
        self.live = live
        self.selected = selected
        self.sent: list[dict] = []
        self._ids = itertools.count(1)

    def list_tasks(self) -> list[dict]:
        return list(self.sent)

    def dispatch(self, prompt: str, priority: str, tags: list[str],
                 target: str | None) -> str:
        if not prompt.strip():
            raise SquadError("the prompt is empty")
        where = (target or "").strip() or self.selected()
        if not where or "/" not in where:
            raise TargetError(
                "without a task queue a prompt goes to one agent: select an agent or give "
                "a target TEAM/AGENT"
            )
        (agent,) = self.live.resolve(where)
        tag_note = f" tags={','.join(tags)}" if tags else ""
        outcome = control.send(self.live, agent, prompt.encode(), by="ui",
                               reason=f"dispatch priority={priority}{tag_note}")
        self.sent.append({
            "id": next(self._ids),
            "title": prompt.strip().splitlines()[0][:80],
            "status": "sent" if outcome.ok else "failed",
            "priority": priority,
            "agent": agent.target,
            "attempts": 1,
            "created": time.time(),
        })
        return f"sent to {agent.target} ({outcome.message}; no task queue yet)"


class StaticTasks:
    """A fixed list of tasks: frozen screens and tests."""

    name = "frozen"

    def __init__(self, tasks: list[dict] | None = None) -> None:
        self.tasks = list(tasks or [])

    def list_tasks(self) -> list[dict]:
        return list(self.tasks)

    def dispatch(self, prompt: str, priority: str, tags: list[str],
                 target: str | None) -> str:
        raise SquadError("this screen shows frozen data: nothing can be dispatched")


def provider_for(live: Live, selected: Callable[[], str | None]) -> TaskProvider:
    """The task queue's provider when :mod:`squad.tasks` offers one, else :class:`DirectSend`."""
    try:
        module = importlib.import_module("squad.tasks")
    except ModuleNotFoundError as exc:
        if exc.name != "squad.tasks":
            raise
        module = None
    factory = getattr(module, "ui_provider", None)
    if callable(factory):
        return factory(live)
    return DirectSend(live, selected)
