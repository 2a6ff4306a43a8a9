"""The supervisor: one tick = snapshot -> status events -> policies -> dispatch -> publish.

It runs inside the UI (a thread worker calls :meth:`Supervisor.tick`, one tick at a time) or
headless (``squad run --headless``). At most one supervisor per squad holds the lock file;
a second one is told who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket as socketlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from squad import events, launch, records
from squad.delivery import Desk, event_sink
from squad.errors import SquadError, storage_error
from squad.hooks import HookReader
from squad.hooks import log_path as hooks_log
from squad.live import Live, saved_layout_path
from squad.notify import Notifier
from squad.policy import Policies
from squad.snapshot import Observer, Snapshot, publish
from squad.state import NOFOLLOW, squad_dir
from squad.status import Status
from squad.store import TaskStore

FULL_TICK = 5.0  # seconds between full ticks of a quiet squad (see Supervisor._rest)


class SupervisorBusy(SquadError):
    """Another supervisor already runs for this squad."""


class Lock:
    """An exclusive, non-blocking flock on the squad's lock file; the kernel frees it when the
    holder dies, even by ``kill -9``."""

    def __init__(self, squad: str) -> None:
        self.path: Path = squad_dir(squad) / "supervisor.lock"
        self.fd: int | None = None

    def acquire(self, who: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            try:
                holder = os.read(fd, 4096).decode(errors="replace").strip()
            finally:
                os.close(fd)
            info = json.loads(holder) if holder.startswith("{") else {}
            raise SupervisorBusy(
                f"a supervisor already runs for this squad: {info.get('who', 'unknown')} "
                f"(pid {info.get('pid', '?')} on {info.get('host', '?')}, since "
                f"{info.get('since', '?')}); stop it first or use that one"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "who": who,
                                 "host": socketlib.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Supervisor:
    """Samples a squad, records status changes, and (with the task queue) dispatches work."""

    def __init__(self, live: Live, *, by: str = "supervisor", interval: float = 1.0,
                 control: bool = False) -> None:
        """``control``: carry tmux work over one persistent control-mode connection (what a
        long-lived supervisor wants: a command costs a tenth of a millisecond instead of a
        forked tmux, and only panes that printed are captured each tick)."""
        self.live = live
        self.by = by
        self.interval = interval
        self.control = control
        self.hooks = HookReader(live.squad.name)
        self.observer = Observer(live, hooks=self.hooks)
        self.lock = Lock(live.squad.name)
        self.statuses: dict[str, str] = {}
        self._forced: set[str] = set()  # handed text this tick (see tick)
        self.last: Snapshot | None = None
        self.store = TaskStore.for_squad(live.squad.name, on_event=event_sink(live.squad.name, by))
        self.desk = Desk(live, self.store, by=by, on_delivered=self._delivered,
                         hooks=self.hooks)
        self.notifier = Notifier(live.squad.notify, live.squad.name)
        self.policies = Policies(live)
        self.observer.cycling = self.policies.cycling  # a duty-cycled tree is not "paused"
        self.desk.gate = self.policies.free_slots

    def _sessions(self) -> list[str]:
        return sorted({t.session for t in self.live.squad.teams}
                      | {p.session for p in self.live.panes.values()})

    def start(self) -> None:
        if self.control:
            self.live.tmux.connect(self._sessions(), stream_all=False)
        self.lock.acquire(self.by)
        events.record(self.live.squad.name, "supervisor.start", by=self.by,
                      reason=f"pid {os.getpid()}")

    def close(self) -> None:
        if self.lock.fd is not None:
            events.record_quietly(self.live.squad.name, "supervisor.stop", by=self.by)
        self.lock.release()
        self.store.close()
        self.notifier.close()
        self.policies.close()
        self.live.tmux.disconnect()

    def tick(self) -> Snapshot:
        control = self.live.tmux.control
        if control is not None:
            sessions = self._sessions()
            if sessions != getattr(self, "_watched", None):  # teams added or removed
                control.watch(sessions)
                self._watched = sessions
            if (rested := self._rest()) is not None:
                return rested
        snap = self.observer.tick()
        self._full_at = time.monotonic()
        system = {"cpu": snap.cpu, "mem": snap.mem}
        for row in snap.agents:
            old = self.statuses.get(row.target)
            # Only the supervisor holding the lock writes the audit trail: an observing UI
            # would record every change a second time.
            if old is not None and old != row.status and self.dispatching:
                extra = {"exit_code": row.exit_code} if row.status == "exited" else {}
                events.record_quietly(snap.squad, "status", target=row.target, by="supervisor",
                              reason=f"{old} -> {row.status}", status=row.status,
                              system=system, **extra)
            self.statuses[row.target] = row.status
        if self.dispatching:
            self._learn_sessions(snap)
            if self.notifier.config != self.live.squad.notify:  # a layout brought up again
                self.notifier.configure(self.live.squad.notify)
            self.notifier.tick(snap.agents, snap.at, screens=snap.screens)
            self.policies.step(snap, self.observer.sampler.table)
        snap = self.after_observe(snap)
        if self._forced:  # agents handed a task this tick are busy now, not as observed
            snap = replace(snap, agents=tuple(
                replace(r, status="working", since=time.time()) if r.target in self._forced
                and r.status == "idle" else r for r in snap.agents))
            self._forced.clear()
        self.last = snap
        if self.lock.fd is not None:
            publish(snap, self.policies.describe())  # best effort: a full disk must not
            # stop supervision
            self._published_at = time.monotonic()
        self._quiet = self._quiet_marks() if control is not None else None
        return snap

    def _quiet_marks(self) -> tuple:
        """Everything whose change needs a full tick, cheap to read: the task database's
        commit counter (any process's writes), the hook log's and agent records' sizes, the
        layout record's time."""
        squad = self.live.squad.name

        def stat(path: Path) -> tuple[int, float]:
            try:
                st = path.stat()
                return st.st_size, st.st_mtime
            except OSError:
                return 0, 0.0

        return (self.store.data_version(), stat(hooks_log(squad)), stat(records.path_of(squad)),
                stat(saved_layout_path(squad)))

    def _rest(self) -> Snapshot | None:
        """A quiet tick: when nothing moved since the last full tick (no pane printed, no
        status settling, no task in flight or newly queued, no hook, no layout change) and
        that full tick is recent, the last snapshot stands and nothing is scanned or
        captured. A full tick still runs every :data:`FULL_TICK` seconds (stall clocks,
        timeouts, pauses from outside squad). None: run a full tick."""
        control = self.live.tmux.control
        last, now = self.last, time.monotonic()
        if (last is None or control is None or control.state != "ready" or not self.dispatching
                or now - getattr(self, "_full_at", 0.0) >= FULL_TICK
                or self.policies.active or self._forced):
            self._quiet = None
            return None
        activity = control.changes(getattr(self, "_rest_mark", 0))
        self._rest_mark = activity.mark
        marks = self._quiet_marks()
        quiet = (not activity.panes and marks == getattr(self, "_quiet", None)
                 and not any(t.settling for t in self.observer.trackers.values())
                 and not any(r.status in ("working", "starting") or r.task_id
                             for r in last.agents))
        self._quiet = marks
        if not quiet:
            return None
        self.last = replace(last, at=time.time())
        if now - getattr(self, "_published_at", 0.0) >= 1.0:  # `squad ls` trusts fresh ones
            publish(self.last, self.policies.describe())
            self._published_at = now
        return self.last

    def _learn_sessions(self, snap: Snapshot) -> None:
        """Conversation ids programs reported through their hooks (Codex, Gemini CLI) are
        recorded, so restarts can resume them."""
        known = {r.target: r.session_id for r in snap.agents}
        for target, session in self.hooks.sessions.items():
            seen = self.hooks.latest.get(target)
            if target in known and known[target] != session and seen is not None:
                agent = self.live.squad.agent(target)
                program = launch.known_program(agent) if agent else None
                if program:
                    records.update(self.live.squad.name, target, program=program,
                                   session_id=session)

    def _delivered(self, target: str) -> None:
        """An agent that was just handed text is busy from now on, whatever the debouncer
        still believes: it must not look idle (and receive more) before it starts."""
        tracker = self.observer.trackers.get(target)
        if tracker is not None:
            tracker.force(Status.WORKING, time.monotonic())
        self._forced.add(target)
        if self.last is not None and self.dispatching:
            # Say so at once (`squad ls`, an observing UI), not only at the end of the tick:
            # the agent may answer before this tick is over.
            self.last = replace(self.last, agents=tuple(
                replace(r, status="working", since=time.time()) if r.target == target
                and r.status == "idle" else r for r in self.last.agents))
            publish(self.last)

    @property
    def dispatching(self) -> bool:
        """Whether this supervisor holds the lock (and so hands out tasks)."""
        return self.lock.fd is not None

    def after_observe(self, snap: Snapshot) -> Snapshot:
        """Task completion, failures and dispatch when this supervisor holds the lock;
        otherwise only each agent's current task and breaker state."""
        if self.dispatching:
            return self.desk.step(snap)
        return self.desk.annotate(snap, time.time())

    def run_forever(self, stop_after: float | None = None, *,
                    report: Callable[[str], None] | None = None) -> None:
        """The headless loop: tick, then sleep what is left of the interval.

        A tick that fails (tmux busy or gone for a moment, a full disk, a bug) is reported in
        one line and the loop goes on: nothing a user or an agent does may stop the
        supervisor. Failing ticks back off up to 10 s and say when they recover.
        """
        stop = threading.Event()

        def request_stop(*_: object) -> None:
            stop.set()  # the wait below returns at once; a tick under way finishes first

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        started = time.monotonic()
        failing = 0
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the supervisor must outlive any tick
                failing += 1
                message = tick_error(exc)
                if report is not None and (failing == 1 or failing % 30 == 0):
                    report(f"squad: tick failed ({failing}x): {message}; retrying")
            else:
                if failing and report is not None:
                    report(f"squad: ticks work again after {failing} failed")
                failing = 0
            if stop_after is not None and time.monotonic() - started > stop_after:
                break
            wait = self.interval
            if failing:  # back off, up to 10 s (or the interval, when that is longer)
                wait = min(self.interval * 2 ** min(failing, 4), max(self.interval, 10.0))
            stop.wait(max(0.05, wait - (time.monotonic() - t0)))


def tick_error(exc: BaseException) -> str:
    """One line for a failed tick: a user-fixable problem as it is; a bug goes to squad.log
    with its traceback and the line says where."""
    if isinstance(exc, SquadError):
        return str(exc)
    if isinstance(exc, OSError):
        return str(storage_error("squad's state directory", exc))
    from squad.state import log_bug

    return f"internal error: {type(exc).__name__}: {exc} (details in {log_bug('tick')})"
