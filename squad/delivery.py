"""The task side of a supervisor tick: reconcile, confirm deliveries, notice completion and
failure, dispatch.

Order per tick, after the snapshot:

1. once, after (re)start: a text a supervisor pasted but died before submitting gets its
   Enter (:meth:`Desk.reconcile`); whether a paste happened at all is told by a tag tmux
   sets on the pane in the same command as the paste, so it holds for agents that do not
   echo; what was never sent goes back to the queue, no attempt lost;
2. sent deliveries are confirmed (:meth:`Desk.confirm`): evidence that the agent took the
   text up (:mod:`squad.proof`) makes the task in progress; without it, Enter is pressed
   again, a bounded number of times, then the delivery failed and the task goes back
   without counting an attempt;
3. held tasks are watched: the holder exited, was restarted (another process in its window)
   or stalled, or the task timed out -> the attempt fails (requeue with backoff, or failed)
   and the agent's breaker counts it; the holder is idle again with evidence it did the work
   -> done (or review) with an excerpt of its output; a reviewer -> its ``VERDICT:`` decides;
4. reviews, then queued tasks in queue order, are planned onto idle agents that fit
   (:mod:`squad.dispatch`), each assignment committed before its text is sent.

Nothing a person or an agent does to a task meanwhile (cancel, done, retry) can stop a tick:
a transition that lost the race is logged and skipped.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace

from squad import events, proof
from squad.dispatch import Candidate, Job, occupy, plan
from squad.errors import SquadError
from squad.hooks import HookReader
from squad.layout import Agent, Squad
from squad.live import Live
from squad.snapshot import AgentRow, Snapshot
from squad.status import Patterns, patterns_for
from squad.store import TaskStore
from squad.task_model import Task, TaskError, TaskStatus, parse_verdict, trim_result

log = logging.getLogger(__name__)

CONFIRM_AFTER = 2.0  # seconds without evidence of take-up before Enter is pressed again
MAX_ENTERS = 3  # Enter presses for one delivery before it counts as not taken up
QUICK_LOOK = 0.8  # seconds a delivery waits for evidence itself, before ticks take over
HISTORY = 3000  # scrollback lines read for a result when the marker left the screen


def event_sink(squad: str, by: str):
    """Turn the store's transition dicts into audit-trail events (after the commit: a log
    that cannot be written never undoes a transition)."""

    def sink(ev: dict) -> None:
        ev = dict(ev)
        action = str(ev.pop("action"))
        target = ev.pop("target", None)
        reason = ev.pop("reason", None)
        events.record_quietly(squad, action, target=target, by=by, reason=reason, **ev)

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


class Desk:
    """Hands out tasks, confirms they were taken up, and watches them, one tick at a time."""

    def __init__(self, live: Live, store: TaskStore, *, by: str = "supervisor",
                 rng: random.Random | None = None,
                 on_delivered: Callable[[str], None] | None = None,
                 hooks: HookReader | None = None) -> None:
        self.live = live
        self.on_delivered = on_delivered  # told the target of every delivery sent
        self.backoff_base = 5.0  # seconds before the first retry; doubles per failure
        self.backoff_cap = 300.0
        self.store = store
        self.by = by
        self.rng = rng or random.Random()
        self.reconciled = False
        self.hooks = hooks or HookReader(live.squad.name)
        self.worked: set[int] = set()  # tasks whose holder was seen busy since take-up
        self._woken: dict[str, float] = {}  # hibernated agents woken for a task, and when
        # How many new tasks may start now (None: no limit): the governor's max_active.
        self.gate: Callable[[], int | None] = lambda: None
        self._patterns: dict[Agent, Patterns] = {}

    # -- helpers ----------------------------------------------------------------------

    def patterns(self, target: str) -> Patterns:
        agent = self.live.squad.agent(target)
        if agent is None:
            return patterns_for("")
        pats = self._patterns.get(agent)
        if pats is None:
            pats = patterns_for(agent.argv, agent.ready_pattern, agent.busy_pattern,
                                agent.input_pattern)
            self._patterns[agent] = pats
        return pats

    def _screen(self, target: str, history: int = 0) -> str:
        agent = self.live.squad.agent(target)
        pane = self.live.pane(agent) if agent else None
        if pane is None:
            return ""
        return self.live.tmux.capture([pane.pane_id], history=history).get(pane.pane_id, "")

    def _look(self, target: str, screen: str, since: float | None) -> proof.Look:
        return proof.Look(screen, proof.signs(screen, self.patterns(target)),
                          self.hooks.since(target, since))

    def _outcome(self, agent: str | None, ok: bool, now: float) -> None:
        if agent:
            self.store.record_outcome(agent, ok, now)

    def _fail(self, task: Task, error: str, now: float) -> None:
        holder = task.holder
        self.store.fail_attempt(task.id, error, now, self.rng, base=self.backoff_base,
                                cap=self.backoff_cap)
        self.worked.discard(task.id)
        self._outcome(holder, False, now)

    def _safely(self, task: Task, what: str, fn: Callable[..., object], *args: object) -> None:
        """Run one task's step; a task changed meanwhile by someone else (cancelled, marked
        done, retried) makes the step stale, which is logged and skipped, never fatal."""
        try:
            fn(*args)
        except TaskError as exc:
            log.info("task #%s: %s skipped: %s", task.id, what, exc)

    # -- the tick -----------------------------------------------------------------------

    def step(self, snap: Snapshot) -> Snapshot:
        now = time.time()
        rows = {r.target: r for r in snap.agents}
        self.hooks.poll()
        if not self.reconciled:
            self.reconcile()
            self.reconciled = True
        self.confirm(rows, snap.screens, now)
        self.watch(rows, snap.screens, now)
        self.store.run_repeats(now)
        self.dispatch(rows, snap.screens, now)
        return self.annotate(snap, now)

    def reconcile(self) -> None:
        """After a (re)start: a text pasted by a supervisor that died before pressing its
        Enter gets the Enter now. Everything else left mid-way is settled by :meth:`confirm`
        like any delivery."""
        for task in self.store.in_delivery():
            if task.sent_at is not None and task.enters == 0:
                self._safely(task, "reconcile", self._enter, task, task.holder or "")

    def confirm(self, rows: dict[str, AgentRow], screens: dict[str, str], now: float) -> None:
        """Deliveries on their way (this runs before this tick sends anything new):

        - never recorded as pasted (a supervisor died mid-way, or sending failed): the
          pane's paste tag decides: set for this delivery -> pasted, Enter; not -> back to
          the queue, no attempt counted;
        - pasted: taken up -> in progress; no evidence for a while -> Enter again; after
          :data:`MAX_ENTERS` presses the delivery failed and the task goes back.
        """
        for task in self.store.in_delivery():
            holder = task.holder or ""
            row = rows.get(holder)
            if row is None or row.state != "running" or (
                    task.holder_id and row.identity and row.identity != task.holder_id):
                why = "exited" if row is None or row.state != "running" else "was restarted"
                self._safely(task, "confirm", self.store.unassign, task.id,
                             f"{holder} {why} before taking it up", now)
                continue
            screen = screens.get(holder, "")
            if task.sent_at is None:
                self._safely(task, "confirm", self._settle, task, now)
                continue
            if self._confirmed(task, screen, now):
                continue
            due = task.sent_at + self.patterns(holder).submit_delay + CONFIRM_AFTER * max(
                task.enters, 1)
            if now < due:
                continue
            if task.enters < MAX_ENTERS:
                self._safely(task, "confirm", self._enter, task, holder)
                continue
            why = (f"not taken up: no sign that {holder} received it after {task.enters} "
                   "Enter presses (the text may still sit in its input)")
            self._safely(task, "confirm", self.store.unassign, task.id, why, now)
            events.record_quietly(self.live.squad.name, "delivery.failed", target=holder,
                                  by=self.by, reason=why, task=task.id)
            self._outcome(holder, False, now)

    def _settle(self, task: Task, now: float) -> None:
        """A delivery never recorded as pasted (a supervisor died while sending it): the
        pane's paste tag, set by tmux together with the paste, says whether it arrived."""
        holder = task.holder or ""
        agent = self.live.squad.agent(holder)
        pane = self.live.pane(agent) if agent else None
        token = task.delivery_token or ""
        if pane is not None and token and self.live.tmux.pasted(pane.pane_id) == token:
            task = self.store.mark_pasted(task.id, token, now)
            self._enter(task, holder)  # then confirmed like any delivery
        else:
            self.store.unassign(task.id, "not sent (the supervisor stopped or sending failed)",
                                now)

    def _confirmed(self, task: Task, screen: str, now: float) -> bool:
        """Mark the task delivered if the holder's screen (or its hooks) show it took it up.
        Later output is measured from this screen, or from the one before the text went out
        when this screen already holds the answer (the holder is back at its prompt; see
        :func:`squad.proof.answered_when_taken`)."""
        holder = task.holder or ""
        pats = self.patterns(holder)
        look = self._look(holder, screen, task.sent_at)
        if not proof.taken_up(look, task.marker, task.sent_screen, pats,
                              collapses=pats.collapses):
            return False
        answered = proof.answered_when_taken(look, task.marker, task.sent_screen, pats,
                                             idle=proof.at_prompt(screen, pats),
                                             collapses=pats.collapses)
        try:
            self.store.mark_delivered(task.id, now, token=task.delivery_token,
                                      screen_hash=task.sent_screen if answered
                                      else proof.screen_hash(screen))
        except TaskError as exc:
            log.info("task #%s: confirm skipped: %s", task.id, exc)
        return True

    def _enter(self, task: Task, holder: str) -> None:
        agent = self.live.squad.agent(holder)
        pane = self.live.pane(agent) if agent else None
        if pane is None or pane.dead:
            return
        self.store.count_enter(task.id, task.delivery_token or "")
        self.live.tmux.send_keys(pane.pane_id, "Enter")

    def watch(self, rows: dict[str, AgentRow], screens: dict[str, str], now: float) -> None:
        for task in self.store.timed_out(now):
            self._safely(task, "timeout", self._fail, task, f"timed out after {task.timeout:g}s",
                         now)
        held = [t for t in self.store.list(("in_progress", "review"))
                if t.holder and (t.status is TaskStatus.IN_PROGRESS or t.review_started_at)]
        live_ids = {t.id for t in held}
        self.worked &= live_ids
        for task in held:
            self._safely(task, "watch", self._watch_one, task, rows, screens, now)

    def _watch_one(self, task: Task, rows: dict[str, AgentRow], screens: dict[str, str],
                   now: float) -> None:
        holder = task.holder or ""
        row = rows.get(holder)
        if task.holder_id == TaskStore.PARKED:
            # Its agent was hibernated on it. Asleep, it keeps the task; awake again (in
            # its conversation) and back at its prompt, it gets the task again, once.
            if row is not None and row.state == "running" and row.status == "idle" and (
                    row.raw_status in ("idle", "")):
                task = self.store.redeliver(task.id, now)
                if sent := self._push(task, rows, screens, again=True):
                    self._quick_look(sent)
            return
        if row is None or row.state != "running":
            how = f" (status {row.exit_code})" if row is not None and row.exit_code else ""
            self._fail(task, f"{holder} exited{how} while holding it", now)
            return
        if task.holder_id and row.identity and row.identity != task.holder_id:
            # Another process runs in its window than the one that took the task: it was
            # restarted, and whatever runs now never saw the task.
            self._fail(task, f"{holder} lost the task: it was restarted since delivery", now)
            return
        if row.status == "stalled":
            self._fail(task, f"{holder} stalled (silent while working)", now)
            return
        if row.raw_status in ("working", "needs-input"):
            self.worked.add(task.id)
        if row.status != "idle" or row.raw_status not in ("idle", ""):
            return
        delivered = task.review_started_at if task.status is TaskStatus.REVIEW else (
            task.started_at)
        pats = self.patterns(holder)
        screen = screens.get(holder, "")
        look = self._look(holder, screen, delivered)
        text = (task.review_text(pats.marker) if task.status is TaskStatus.REVIEW
                else task.delivery_text(pats.marker))
        if not proof.finished(look, task.marker, task.taken_screen, pats,
                              worked=task.id in self.worked, text=text):
            return
        full = self._screen(holder, history=HISTORY)
        output = proof.output_after(full, task.marker, pats, text)
        if output is None:  # no marker on screen: its last lines are the answer
            output = "\n".join(full.rstrip().split("\n")[-40:])
        if task.status is TaskStatus.REVIEW:
            verdict = parse_verdict(output)
            if verdict is None:
                verdict = (False, "the reviewer answered without a VERDICT line")
            approved, feedback = verdict
            self.store.review_verdict(task.id, approved, feedback or None, now)
        else:
            self.store.complete(task.id, trim_result(output.strip()) or None, now)
        self.worked.discard(task.id)
        self._outcome(holder, True, now)

    def dispatch(self, rows: dict[str, AgentRow], screens: dict[str, str], now: float) -> None:
        squad = self.live.squad
        cands = candidates(squad, rows, self.store, now)
        sent: list[Task] = []
        reviews = self.store.reviews_waiting()
        if reviews:
            # A reviewer named by the task gets its reviews even when it takes no tasks.
            named = [replace(c, dispatch=True) for c in cands]
            done = plan([Job(t.id, target=t.review_by) for t in reviews], named, "least-loaded")
            for task_id, _target in done:
                sent += self._send(task_id, rows, screens, review=True, now=now)
            cands = occupy(cands, done)
        ready = self.store.queued_ready(now)
        slots = self.gate()
        if ready and slots != 0:
            rr = self.store.get_value("rr", {}) or {}
            done = plan(ready, cands, squad.dispatch_policy, rr_state=rr, rng=self.rng)
            if slots is not None:
                done = done[:slots]
            if squad.dispatch_policy == "round-robin":
                self.store.set_value("rr", rr)
            for task_id, target in done:
                sent += self._send(task_id, rows, screens, target=target, now=now)
            planned = {task_id for task_id, _ in done}
            self._wake_for([t for t in ready if t.id not in planned], rows, now)
        if sent:
            self._quick_look(sent)

    def _wake_for(self, waiting: list[Task], rows: dict[str, AgentRow], now: float) -> None:
        """A queued task meant for a hibernated agent (``--to``) wakes it: it can go nowhere
        else. Tried at most once a minute per agent."""
        for task in waiting:
            row = rows.get(task.target or "")
            if row is None or row.status != "hibernated":
                continue
            if now - self._woken.get(row.target, 0.0) < 60.0:
                continue
            self._woken[row.target] = now
            agent = self.live.squad.agent(row.target)
            if agent is None:
                continue
            from squad import control

            try:
                control.wake(self.live, [agent], by="policy",
                             reason=f"task #{task.id} is meant for it")
            except SquadError as exc:
                log.warning("could not wake %s for task #%s: %s", row.target, task.id, exc)

    def _send(self, task_id: int, rows: dict[str, AgentRow], screens: dict[str, str], *,
              now: float, target: str | None = None, review: bool = False) -> list[Task]:
        """Commit, record, paste, press Enter. Returns the task if its text went out."""
        try:
            task = (self.store.assign_review(task_id, now) if review
                    else self.store.assign(task_id, target, now))
        except TaskError:
            return []  # cancelled or changed since the plan
        return self._push(task, rows, screens, review=review)

    def _push(self, task: Task, rows: dict[str, AgentRow], screens: dict[str, str], *,
              review: bool = False, again: bool = False) -> list[Task]:
        """Record, paste, press Enter for an assigned task. Returns it if its text went out."""
        holder = task.holder or ""
        agent = self.live.squad.agent(holder)
        pane = self.live.pane(agent) if agent else None
        row = rows.get(holder)
        pasted = False
        try:
            if agent is None or pane is None or pane.dead or row is None:
                raise SquadError(f"{holder} has no running window")
            pats = self.patterns(holder)
            text = (task.review_text(pats.marker) if review
                    else task.delivery_text(pats.marker, again=again))
            data = text.encode()
            token = task.delivery_token or ""
            task = self.store.mark_sending(task.id, token, row.identity,
                                           proof.screen_hash(screens.get(holder, "")))
            self.live.tmux.paste(pane.pane_id, data, enter=False, tag=token)
            pasted = True
            task = self.store.mark_pasted(task.id, token)
            if self.on_delivered is not None:
                self.on_delivered(holder)  # busy from now on: no second task meanwhile
            delay = max(agent.submit_delay, pats.submit_delay)
            if delay:
                time.sleep(delay)  # some programs take an Enter right after a paste as a
                # newline inside it
            task = self.store.count_enter(task.id, token)
            self.live.tmux.send_keys(pane.pane_id, "Enter")
        except TaskError as exc:
            # Cancelled, done or retried by someone while its text was on its way: what sits
            # unsent in the agent's input is taken back, never submitted.
            if pasted and pane is not None:
                self._take_back(task, holder, pane.pane_id, str(exc))
            return []
        except SquadError as exc:
            try:
                self.store.unassign(task.id, f"delivery failed: {exc}", time.time())
            except SquadError:
                pass  # the next tick's confirm settles it from the screen
            return []
        events.record_quietly(self.live.squad.name, "send", target=holder, by=self.by,
                      reason=f"{'review of ' if review else ''}task #{task.id}",
                      bytes=len(data), preview=data[:120].decode("utf-8", "replace"))
        return [task]

    def _take_back(self, task: Task, holder: str, pane_id: str, why: str) -> None:
        keys = self.patterns(holder).clear
        if keys:
            try:
                self.live.tmux.send_keys(pane_id, *keys)
            except SquadError as exc:
                keys, why = (), f"{why}; clearing its input failed: {exc}"
        action = "delivery.taken_back" if keys else "delivery.left_unsent"
        reason = (f"task #{task.id} changed while its text was on its way ({why}); "
                  + ("its input was cleared" if keys else
                     "its text sits unsent in the agent's input: clear it by hand"))
        events.record_quietly(self.live.squad.name, action, target=holder, by=self.by,
                              reason=reason, task=task.id)

    def _quick_look(self, sent: list[Task]) -> None:
        """Wait a moment for the agents just handed text to show they took it up (one batched
        capture per look); what is not confirmed by then is left to the next ticks."""
        waiting = {t.id: t for t in sent}
        deadline = time.monotonic() + QUICK_LOOK
        delay = 0.03
        while waiting and time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 1.5, 0.15)
            panes = {}
            for t in waiting.values():
                agent = self.live.squad.agent(t.holder or "")
                pane = self.live.pane(agent) if agent else None
                if pane is not None:
                    panes[pane.pane_id] = t
            try:
                shots = self.live.tmux.capture(panes)
            except SquadError:
                return
            self.hooks.poll()
            for pane_id, t in panes.items():
                if pane_id in shots and self._confirmed(t, shots[pane_id], time.time()):
                    waiting.pop(t.id, None)

    def annotate(self, snap: Snapshot, now: float) -> Snapshot:
        """Each agent's current task and breaker state, for the UI and `squad ls`."""
        breakers = self.store.breakers()
        current = self.store.current_tasks()
        rows = []
        for row in snap.agents:
            task = current.get(row.target)
            b = breakers.get(row.target)
            rows.append(replace(
                row,
                task=f"#{task.id} {task.title}" if task else None,
                task_id=task.id if task else None,
                breaker=b.state(now) if b else "closed",
            ))
        return replace(snap, agents=tuple(rows))
