"""The seam between the UI and the task queue: what the task panel lists and the dispatch
form calls.

:class:`QueueTasks` reads and fills the squad's persistent queue (:mod:`squad.store`); the
supervisor that holds the squad's lock dispatches from it. :class:`DirectSend` is the
fallback without a queue: a prompt goes straight to one agent with
:func:`squad.control.send`. A module may override the choice by defining
``ui_provider(live) -> TaskProvider`` in :mod:`squad.tasks`.
"""

from __future__ import annotations

import importlib
import importlib.util
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


class QueueTasks:
    """The squad's task queue: the panel lists it, the form queues into it."""

    name = "queue"
    LIMIT = 300  # rows in the panel: every live task, then the most recent finished ones

    def __init__(self, live: Live) -> None:
        self.live = live

    def _store(self):
        from squad.delivery import event_sink
        from squad.store import TaskStore

        name = self.live.squad.name
        return TaskStore.for_squad(name, on_event=event_sink(name, "ui"))

    def list_tasks(self) -> list[dict]:
        with self._store() as store:
            tasks = store.list()
        rows = [{
            "id": t.id, "title": t.title, "status": t.status.value,
            "priority": t.priority.value, "agent": t.agent or t.target or t.team,
            "attempts": t.attempts, "created": t.created,
        } for t in tasks]
        return rows[: self.LIMIT]

    def dispatch(self, prompt: str, priority: str, tags: list[str],
                 target: str | None) -> str:
        target = (target or "").strip() or None
        team = None
        if target is not None:
            agents = self.live.resolve(target)  # a TargetError names the known agents
            if "/" not in target:
                team, target = target, None
            elif agents:
                target = agents[0].target
        with self._store() as store:
            task = store.add(prompt, priority=priority, tags=tags, team=team, target=target)
        fits = [a for a in self.live.squad.agents() if a.dispatch
                and set(task.tags) <= set(a.tags)
                and (task.team is None or a.team == task.team)
                and (task.target is None or a.target == task.target)]
        note = "" if fits else "; no agent fits its tags/team/target yet, so it waits"
        return f"queued task #{task.id} ({task.priority.value}): {task.title}{note}"


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
    """The provider :mod:`squad.tasks` offers, else the queue, else :class:`DirectSend`."""
    try:
        module = importlib.import_module("squad.tasks")
    except ModuleNotFoundError as exc:
        if exc.name != "squad.tasks":
            raise
        module = None
    factory = getattr(module, "ui_provider", None)
    if callable(factory):
        return factory(live)
    if importlib.util.find_spec("squad.store") is not None:
        return QueueTasks(live)
    return DirectSend(live, selected)
