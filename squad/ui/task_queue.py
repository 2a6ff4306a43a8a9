"""The seam between the UI and the task queue: what the task panel lists and the dispatch
form calls.

:class:`QueueTasks` reads and fills the squad's persistent queue (:mod:`squad.store`); the
supervisor that holds the squad's lock dispatches from it. :class:`StaticTasks` is a fixed
list for frozen screens.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from squad.errors import SquadError
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
