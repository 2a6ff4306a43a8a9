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
    time or a display string). The others return a one-line message for the user and raise
    :class:`squad.errors.SquadError` for a request the user can fix.
    """

    name: str

    def list_tasks(self) -> list[dict]: ...

    def dispatch(self, prompt: str, priority: str, tags: list[str],
                 target: str | None) -> str: ...

    def cancel(self, task_id: int) -> str: ...

    def retry(self, task_id: int) -> str: ...

    def raise_priority(self, task_id: int) -> str: ...


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


    def cancel(self, task_id: int) -> str:
        with self._store() as store:
            task = store.cancel(task_id, reason="cancelled from the UI")
        return f"task #{task.id} cancelled: {task.title}"

    def retry(self, task_id: int) -> str:
        with self._store() as store:
            task = store.retry(task_id)
        return f"task #{task.id} queued again: {task.title}"

    def raise_priority(self, task_id: int) -> str:
        from squad.task_model import Priority

        with self._store() as store:
            task = store.get(task_id)
            if task.priority.rank == 0:
                return f"task #{task.id} is critical already"
            higher = Priority.from_rank(task.priority.rank - 1)
            setter = getattr(store, "set_priority", None)
            if setter is None:
                raise SquadError("this squad's task queue cannot change a task's priority "
                                 "yet (TaskStore.set_priority is missing)")
            task = setter(task_id, higher)
        return f"task #{task.id} is {task.priority.value} now: {task.title}"


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

    def cancel(self, task_id: int) -> str:
        raise SquadError("this screen shows frozen data: nothing can be cancelled")

    retry = raise_priority = cancel
