"""The task side of a supervisor tick: reconcile, notice completion and failure, dispatch.

Order per tick, after the snapshot:

1. once, after (re)start: tasks caught mid-delivery are reconciled from the agent's screen
   (the delivery marker is there: delivered; it is not: back to the queue, no attempt lost);
2. held tasks are watched: the holder exited or stalled, or the task timed out -> the attempt
   fails (requeue with backoff, or failed) and the agent's breaker counts it; the holder went
   back to idle after working -> done (or review) with an excerpt of its output since
   delivery; a reviewer back at idle -> its ``VERDICT:`` line decides;
3. reviews, then queued tasks in queue order, are planned onto idle agents that fit
   (:mod:`squad.dispatch`), each assignment committed before its text is sent.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace

from squad import control, events
from squad.dispatch import Candidate, Job, occupy, plan
from squad.errors import SquadError
from squad.layout import Squad
from squad.live import Live
from squad.snapshot import AgentRow, Snapshot
from squad.store import TaskStore
from squad.tasks import Task, TaskError, TaskStatus, parse_verdict, trim_result

QUICK_TASK = 2.0  # seconds after delivery before a task done within the debounce counts
RECONCILE_WAIT = 0.5  # seconds to look again for a marker before undoing a delivery
LOST_HISTORY = 50_000  # the whole scrollback, read only when the marker is not in HISTORY
HISTORY = 3000  # scrollback lines read to find a delivery marker and the result


def event_sink(squad: str, by: str):
    """Turn the store's transition dicts into audit-trail events."""

    def sink(ev: dict) -> None:
        ev = dict(ev)
        action = str(ev.pop("action"))
        target = ev.pop("target", None)
        reason = ev.pop("reason", None)
        events.record(squad, action, target=target, by=by, reason=reason, **ev)

    return sink


def candidates(squad: Squad, rows: dict[str, AgentRow], store: TaskStore,
               now: float) -> list[Candidate]:
    """Every agent as the dispatcher sees it now (plain data for :mod:`squad.dispatch`)."""
    counts = store.active_counts()
    breakers = store.breakers()
    out = []
    for agent in squad.agents():
        row = rows.get(agent.target)
        status = row.status if row is not None else "down"
        b = breakers.get(agent.target)
        out.append(Candidate(
            target=agent.target,
            team=agent.team,
            tags=frozenset(agent.tags),
            capacity=agent.capacity,
            active=counts.get(agent.target, 0),
            cpu=row.cpu if row is not None else 0.0,
            idle_since=row.since if row is not None and status == "idle" else now,
            dispatch=agent.dispatch,
            status=status,
            breaker=b.state(now) if b else "closed",
            breaker_until=b.until if b else None,
            priority=agent.priority,
        ))
    return out


def after_marker(screen: str, marker: str | None) -> str | None:
    """The text printed after the delivery marker's last occurrence, or None if absent."""
    if not marker:
        return None
    at = screen.rfind(marker)
    if at < 0:
        return None
    return screen[at + len(marker):]


def prompt_follows(screen: str, marker: str | None) -> bool:
    """The agent printed something after the delivered text (so it has reacted to it)."""
    rest = after_marker(screen, marker)
    return rest is not None and bool(rest.strip())


def result_text(output: str) -> str:
    """The agent's output after the delivered text, without the prompt it returned to."""
    lines = output.rstrip().split("\n")
    if len(lines) > 1:
        lines = lines[:-1]  # the ready prompt the agent is back at
    return "\n".join(lines).strip()


class Desk:
    """Hands out tasks and watches them, one supervisor tick at a time."""

    def __init__(self, live: Live, store: TaskStore, *, by: str = "supervisor",
                 rng: random.Random | None = None,
                 on_delivered: Callable[[str], None] | None = None) -> None:
        self.live = live
        self.on_delivered = on_delivered  # told the target of every delivery
        self.backoff_base = 5.0  # seconds before the first retry; doubles per failure
        self.backoff_cap = 300.0
        self.store = store
        self.by = by
        self.rng = rng or random.Random()
        self.reconciled = False

    # -- helpers ----------------------------------------------------------------------

    def _screen(self, target: str, history: int = HISTORY) -> str:
        agent = self.live.squad.agent(target)
        pane = self.live.pane(agent) if agent else None
        if pane is None:
            return ""
        return self.live.tmux.capture([pane.pane_id], history=history).get(pane.pane_id, "")

    def _outcome(self, agent: str | None, ok: bool, now: float) -> None:
        if agent:
            self.store.record_outcome(agent, ok, now)

    def _fail(self, task: Task, error: str, now: float) -> None:
        holder = task.holder
        try:
            self.store.fail_attempt(task.id, error, now, self.rng, base=self.backoff_base,
                                    cap=self.backoff_cap)
        except TaskError:
            return
        self._outcome(holder, False, now)

    # -- the tick -----------------------------------------------------------------------

    def step(self, snap: Snapshot) -> Snapshot:
        now = time.time()
        rows = {r.target: r for r in snap.agents}
        if not self.reconciled:
            self.reconcile(now)
            self.reconciled = True
        self.watch(rows, snap.screens, now)
        self.dispatch(rows, now)
        return self.annotate(snap, now)

    def reconcile(self, now: float) -> None:
        """Tasks committed but not confirmed delivered when a supervisor died."""
        pending = self.store.in_delivery()
        for attempt in range(2):
            left = []
            for task in pending:
                holder = task.holder
                if holder and task.marker and task.marker in self._screen(holder):
                    self.store.mark_delivered(task.id, now, token=task.delivery_token)
                else:
                    left.append(task)
            pending = left
            if pending and attempt == 0:
                time.sleep(RECONCILE_WAIT)  # text sent just before the crash may still be
                # on its way to the screen
        for task in pending:
            self.store.unassign(task.id, "not delivered before the supervisor stopped", now)

    def watch(self, rows: dict[str, AgentRow], screens: dict[str, str], now: float) -> None:
        for task in self.store.timed_out(now):
            self._fail(task, f"timed out after {task.timeout:g}s", now)
        held = [t for t in self.store.list(("in_progress", "review"))
                if t.holder and (t.status is TaskStatus.IN_PROGRESS or t.review_started_at)]
        for task in held:
            holder = task.holder
            assert holder is not None
            row = rows.get(holder)
            if row is None or row.state != "running":
                how = f" (status {row.exit_code})" if row is not None and row.exit_code else ""
                self._fail(task, f"{holder} exited{how} while holding it", now)
                continue
            if row.status == "stalled":
                self._fail(task, f"{holder} stalled (silent while working)", now)
                continue
            if row.status != "idle" or row.raw_status not in ("idle", ""):
                continue
            delivered = task.review_started_at if task.status is TaskStatus.REVIEW else (
                task.started_at)
            if delivered is None or not self.finished(row, screens.get(holder, ""), task,
                                                      delivered, now):
                continue
            full = self._screen(holder)
            if task.marker and task.marker not in full:
                full = self._screen(holder, history=LOST_HISTORY)
                if task.marker not in full:
                    # Idle, but the delivery is nowhere in its scrollback: the agent was
                    # restarted (or its history cleared) between two ticks, so it never did it.
                    self._fail(task, f"{holder} lost the task (restarted or cleared since "
                               "delivery)", now)
                    continue
            output = after_marker(full, task.marker) or ""
            if task.status is TaskStatus.REVIEW:
                verdict = parse_verdict(full, after=task.marker)
                if verdict is None:
                    verdict = (False, "the reviewer answered without a VERDICT line")
                approved, feedback = verdict
                self.store.review_verdict(task.id, approved, feedback or None, now)
                self._outcome(holder, True, now)
            else:
                self.store.complete(task.id, trim_result(result_text(output)) or None, now)
                self._outcome(holder, True, now)

    def finished(self, row: AgentRow, screen: str, task: Task, delivered: float,
                 now: float) -> bool:
        """Whether an idle holder has finished the task it was given.

        Idle (held and as last seen) and either the idle spell began after the delivery, or,
        for work quicker than the debounce, the delivered marker is on screen with the
        agent's output and prompt after it, at least :data:`QUICK_TASK` seconds on.
        """
        if row.since > delivered:
            return True
        if now - delivered < QUICK_TASK:
            return False
        if not (task.marker and task.marker in screen):
            screen = self._screen(row.target)
        return prompt_follows(screen, task.marker)

    def dispatch(self, rows: dict[str, AgentRow], now: float) -> None:
        squad = self.live.squad
        cands = candidates(squad, rows, self.store, now)
        reviews = self.store.reviews_waiting()
        if reviews:
            # A reviewer named by the task gets its reviews even when it takes no tasks.
            named = [replace(c, dispatch=True) for c in cands]
            done = plan([Job(t.id, target=t.review_by) for t in reviews], named, "least-loaded")
            for task_id, _target in done:
                self._deliver(task_id, review=True, now=now)
            cands = occupy(cands, done)
        ready = self.store.queued_ready(now)
        if not ready:
            return
        rr = self.store.get_value("rr", {}) or {}
        done = plan(ready, cands, squad.dispatch_policy, rr_state=rr, rng=self.rng)
        if squad.dispatch_policy == "round-robin":
            self.store.set_value("rr", rr)
        for task_id, target in done:
            self._deliver(task_id, target=target, now=now)

    def _deliver(self, task_id: int, *, now: float, target: str | None = None,
                 review: bool = False) -> None:
        try:
            task = (self.store.assign_review(task_id, now) if review
                    else self.store.assign(task_id, target, now))
        except TaskError:
            return  # cancelled or changed since the plan
        holder = task.holder
        agent = self.live.squad.agent(holder) if holder else None
        text = task.review_text() if review else task.delivery_text()
        try:
            if agent is None:
                raise SquadError(f"{holder} is not in the squad")
            control.send(self.live, agent, text.encode(), by=self.by,
                         reason=f"{'review of ' if review else ''}task #{task.id}")
        except SquadError as exc:
            self.store.unassign(task.id, f"delivery failed: {exc}", time.time())
            return
        self.store.mark_delivered(task.id, time.time(), token=task.delivery_token)
        if self.on_delivered is not None and holder:
            self.on_delivered(holder)

    def annotate(self, snap: Snapshot, now: float) -> Snapshot:
        """Each agent's current task and breaker state, for the UI and `squad ls`."""
        breakers = self.store.breakers()
        rows = []
        for row in snap.agents:
            task = self.store.current_task(row.target)
            b = breakers.get(row.target)
            rows.append(replace(
                row,
                task=f"#{task.id} {task.title}" if task else None,
                task_id=task.id if task else None,
                breaker=b.state(now) if b else "closed",
            ))
        return replace(snap, agents=tuple(rows))
