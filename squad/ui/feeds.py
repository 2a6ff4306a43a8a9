"""The data feeds that refresh on a clock: the supervisor tick, the task list, the events.

Each feed reads in a thread worker (tmux, psutil, SQLite and files never block the event
loop) and posts one message with what it read; the app shows it and calls the feed's
:meth:`Poll.done`, which schedules the next read. So reads of one feed never overlap and a
slow one never stacks up. The output of the agents on screen is not polled: it streams
(:mod:`squad.ui.stream`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.timer import Timer

from squad import events
from squad.live import Live
from squad.snapshot import merge_live, read_published
from squad.supervisor import Supervisor, SupervisorBusy
from squad.ui.messages import EventsReady, SnapshotReady, TasksReady, TickFailed
from squad.ui.task_queue import TaskProvider
from squad.ui.workers import reported

if TYPE_CHECKING:
    from textual.app import App

    from squad.tmux_control import TmuxControl

HISTORY_POINTS = 300  # samples per sparkline (about five minutes at one tick a second)
RETRY_LOCK_TICKS = 15  # an observing UI tries to become the supervisor this often
SUMMARY_AGE = 10.0  # seconds a worktree's change counts are trusted without running git


def agent_limits(live: Live) -> list[dict]:
    """Each agent's resource limits as the layout and `squad pin` set them."""
    from squad import records

    pinned = {t for t, r in records.read(live.squad.name).items() if r.pinned}
    return [{"target": a.target, "priority": a.priority, "pinned": a.pinned or a.target in pinned,
             "memory_warn_mb": a.memory_warn_mb, "memory_limit_mb": a.memory_limit_mb,
             "on_memory_limit": a.on_memory_limit, "cpu_limit": a.cpu_limit}
            for a in live.squad.agents()]


class Poll:
    """A refresh that runs in a thread worker one at a time: the next run is scheduled
    ``interval`` seconds after the last one's result was shown, so runs never overlap and
    a slow one never stacks up. ``now()`` asks for a run as soon as possible."""

    def __init__(self, app: App, interval: float, start: Callable[[], object],
                 enabled: bool = True) -> None:
        self.app = app
        self.interval = interval
        self.start = start
        self.enabled = enabled
        self.busy = False
        self.again = False
        self.timer: Timer | None = None
        self.held_until = 0.0

    def now(self) -> None:
        if not self.enabled:
            return
        if self.timer is not None:
            self.timer.stop()
            self.timer = None
        if self.busy:
            self.again = True
            return
        wait = self.held_until - time.monotonic()
        if wait > 0:
            self.timer = self.app.set_timer(wait, self.now, name="poll-held")
            return
        self.busy = True
        self.start()

    def hold(self, seconds: float) -> None:
        """Start no run for ``seconds`` (a key's action runs: it gets the CPU first)."""
        self.held_until = time.monotonic() + seconds

    def release(self) -> None:
        """End a hold early."""
        self.held_until = 0.0

    def done(self, schedule: bool = True) -> None:
        self.busy = False
        if not self.enabled:
            return
        if self.again:
            self.again = False
            self.now()
        elif schedule and self.timer is None:
            self.timer = self.app.set_timer(self.interval, self.now, name="poll")

    def stop(self) -> None:
        self.enabled = False
        if self.timer is not None:
            self.timer.stop()
            self.timer = None


class Feed:
    """A feed's worker posts its messages to the app (the error helper needs
    ``post_message`` on ``self``)."""

    def __init__(self, app: App) -> None:
        self.app = app

    def post_message(self, message: object) -> None:
        self.app.post_message(message)  # type: ignore[arg-type]

    def run(self, work: Callable[[], None], group: str) -> None:
        self.app.run_worker(work, thread=True, exclusive=True, group=group,
                            exit_on_error=False)


def link_problem(control: TmuxControl | None) -> str | None:
    """Why output cannot stream over the control connection (None: it can), in words for
    the header's "polling: ..."."""
    if control is None:
        return "no control connection"
    if control.state == "ready":
        return None
    return control.reason or control.state


class TickFeed(Feed):
    """The supervisor's tick, once a second: a snapshot of every agent, and (when this UI
    holds the squad's lock) dispatch. When another supervisor holds the lock the UI
    observes: its own observation of the processes merged with the status and tasks the
    other one published, and every :data:`RETRY_LOCK_TICKS` ticks it tries to take over.

    Either way tmux is reached over one persistent control-mode connection (commands
    without a fork each, and the output stream :mod:`squad.ui.stream` follows); the
    supervisor opens it when it starts, and an observing UI keeps it watching every team."""

    def __init__(self, app: App, live: Live, interval: float, enabled: bool = True) -> None:
        super().__init__(app)
        self.live = live
        self.supervisor = Supervisor(live, by="ui", control=True)
        self.poll = Poll(app, interval, lambda: self.run(self._work, "tick"), enabled)
        # Worker-thread state (touched only inside this feed's worker).
        self._started = False
        self._ticks = 0
        self._observing: str | None = None
        self._watched: list[str] = []
        self._failed = 0  # notification failures already passed on
        self.want_policy = False
        """Set by the app while the policy panel shows: read the machine's pressure and
        every agent's limits too."""

    def _watch_teams(self) -> None:
        """Observing: the supervisor does not tick, so keep the connection open and
        watching every team's session ourselves (teams come and go)."""
        live = self.live
        sessions = sorted({t.session for t in live.squad.teams}
                          | {p.session for p in live.panes.values()})
        if live.tmux.control is None:
            live.tmux.connect(sessions, stream_all=False)
        elif sessions != self._watched:
            live.tmux.control.watch(sessions)
        self._watched = sessions

    @reported("supervisor tick", lambda error: TickFailed(error))
    def _work(self) -> None:
        sup = self.supervisor
        self._ticks += 1
        if not self._started or (self._observing and self._ticks % RETRY_LOCK_TICKS == 0):
            self._started = True
            try:
                sup.start()
                self._observing = None
            except SupervisorBusy as exc:
                self._observing = str(exc)
        if self._observing:
            self._watch_teams()
            snap = sup.observer.tick()
            published = read_published(snap.squad)
            if published is not None:
                snap = merge_live(published, snap)
        else:
            snap = sup.tick()
        hist = {t: list(h)[-HISTORY_POINTS:] for t, h in sup.observer.history.items()}
        self.post_message(SnapshotReady(
            snap, hist, self._observing, link_problem(self.live.tmux.control),
            policy=self._policy(), failures=self._failures(), summaries=self._summaries()))

    def _policy(self) -> dict | None:
        """What the governor does (this UI's, or the one another supervisor published),
        with the pressure now and each agent's limits while the policy panel shows."""
        if self._observing:
            if not self.want_policy:
                return None
            from squad.snapshot import read_published_extra

            state: dict = dict(read_published_extra(self.live.squad.name))
        else:
            state = self.supervisor.policies.describe()
        if self.want_policy:
            from squad.governor import read_pressure

            state["pressure_now"] = read_pressure().to_json()
            state["agents"] = agent_limits(self.live)
            state["failures"] = list(self.supervisor.notifier.failures)
        state["supervising"] = not self._observing
        return state

    def _failures(self) -> list[str]:
        """Notifications that failed since the last tick (one line each)."""
        notifier = self.supervisor.notifier
        failed = notifier.stats.get("failed", 0)
        new, self._failed = failed - self._failed, failed
        return list(notifier.failures)[-new:] if new > 0 else []

    def _summaries(self) -> dict | None:
        """What each worktree agent's worktree changed (files, commits ahead), from
        :func:`squad.review.summaries`: git runs at most every :data:`SUMMARY_AGE` seconds
        per worktree, the cache answers in between."""
        if not any(a.worktree for a in self.live.squad.agents()):
            return None
        from squad import review

        return review.summaries(self.live.squad, max_age=SUMMARY_AGE)

    def close(self) -> None:
        self.poll.stop()
        self.supervisor.close()


class PanelFeed(Feed):
    """A feed read only while its panel is shown (``shown()``)."""

    def __init__(self, app: App, interval: float, group: str, shown: Callable[[], bool],
                 enabled: bool = True) -> None:
        super().__init__(app)
        self.shown = shown
        self.group = group
        self.poll = Poll(app, interval, self._start, enabled)

    def _start(self) -> None:
        if self.shown():
            self.run(self._work, self.group)
        else:
            self.poll.busy = False

    def _work(self) -> None:
        raise NotImplementedError


class TaskFeed(PanelFeed):
    """The task list, every 2 s while the task panel is open."""

    def __init__(self, app: App, tasks: TaskProvider, shown: Callable[[], bool],
                 enabled: bool = True) -> None:
        super().__init__(app, 2.0, "tasks", shown, enabled)
        self.tasks = tasks

    @reported("task list", lambda error: TasksReady([], error=error))
    def _work(self) -> None:
        self.post_message(TasksReady(self.tasks.list_tasks()))


class EventFeed(PanelFeed):
    """The newest events of the audit trail, every second while the events panel is open.
    Only what was appended since the last read is parsed (the trail can be long); each
    event is numbered once, so the panel adds rows instead of redrawing them."""

    def __init__(self, app: App, live: Live, shown: Callable[[], bool], limit: int,
                 enabled: bool = True) -> None:
        super().__init__(app, 1.0, "events", shown, enabled)
        self.live = live
        # Worker-thread state.
        self._tail: events.Tail | None = None
        self._seq = 0
        self._window: deque[dict] = deque(maxlen=limit)

    @reported("events", lambda error: EventsReady([], error=error))
    def _work(self) -> None:
        if self._tail is None:
            self._tail = events.Tail(self.live.squad.name, history=False)
        for ev in self._tail.read():
            self._seq += 1
            self._window.append(dict(ev, _seq=self._seq))
        self.post_message(EventsReady(list(self._window)))
