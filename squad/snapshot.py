"""Snapshots: what every agent of a squad is doing at one moment, as immutable plain data.

One tick costs one ``list-panes -a`` fork, one process-table scan and one batched
``capture-pane`` fork for all agents, however many there are. The :class:`Observer` keeps
what must persist between ticks (the previous scan for CPU %, when each screen last changed,
each agent's debounced status); ``squad ls`` without a running supervisor makes a one-shot
snapshot from two quick observations.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from squad import procs, records
from squad.hooks import HookReader
from squad.layout import Agent
from squad.live import Live
from squad.state import NOFOLLOW, squad_dir, write_private
from squad.status import Evidence, StatusTracker, patterns_for
from squad.tmux import Pane

log = logging.getLogger(__name__)

STATUS_TAIL = 60  # screen lines kept per agent in a snapshot (the bottom of the screen)
FULL_SWEEP = 10.0  # seconds between captures of every pane when output events say who moved
SETTLE = 2.5  # seconds a pane is captured after its last output was reported


@dataclass(frozen=True)
class AgentRow:
    """One agent in a snapshot."""

    team: str
    agent: str
    role: str
    state: str  # running | exited | hibernated | down (no window)
    status: str  # starting | working | idle | needs-input | stalled | paused | exited |
    #              hibernated | down
    pid: int | None  # the agent's own pid (the wrapper's child)
    wrapper_pid: int | None
    exit_code: int | None
    cpu: float
    rss: int
    procs: int
    branch: str | None
    worktree: str | None
    cwd: str | None
    session: str
    window_id: str | None
    pane_id: str | None
    tags: tuple[str, ...] = ()
    capacity: int = 1
    dispatch: bool = True
    since: float = 0.0  # wall-clock time the current status began
    task: str | None = None  # the current task ("#12 Fix login"), filled by the supervisor
    task_id: int | None = None
    breaker: str = "closed"
    raw_status: str = ""  # the latest single observation, before debouncing
    wrapper_start: float | None = None  # the wrapper's start time: with its pid, an identity
    session_id: str | None = None  # its program's conversation id, when squad knows it

    @property
    def identity(self) -> str | None:
        """Which process runs the agent's window now ("pane:pid:start"): a restart, a respawn
        or a new server gives another, so a task's holder can be told apart from its
        successor in the same window."""
        if self.pane_id is None or self.wrapper_pid is None or self.state != "running":
            return None
        return f"{self.pane_id}:{self.wrapper_pid}:{self.wrapper_start or 0:g}"

    @property
    def target(self) -> str:
        return f"{self.team}/{self.agent}"

    def to_json(self) -> dict[str, object]:
        # Every field is a plain value: no deep copy needed (dataclasses.asdict costs ~0.3 ms a
        # row, a third of a 100-agent tick).
        data = {name: getattr(self, name) for name in _ROW_FIELDS}
        data["tags"] = list(self.tags)
        data["target"] = self.target
        return data


_ROW_FIELDS = tuple(f.name for f in fields(AgentRow))


@dataclass(frozen=True)
class Snapshot:
    squad: str
    socket: str
    at: float  # wall clock
    cpu: float  # system CPU %
    mem: float  # system memory %
    agents: tuple[AgentRow, ...]
    screens: dict[str, str] = field(default_factory=dict, compare=False)  # target -> tail

    def agent(self, target: str) -> AgentRow | None:
        return next((a for a in self.agents if a.target == target), None)

    def to_json(self) -> dict[str, object]:
        return {"squad": self.squad, "socket": self.socket, "at": self.at, "cpu": self.cpu,
                "mem": self.mem, "agents": [a.to_json() for a in self.agents]}


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=12).hexdigest()


class Observer:
    """Produces successive snapshots of one squad, remembering what ticks need to compare."""

    def __init__(self, live: Live, *, capture: bool = True,
                 hooks: HookReader | None = None,
                 assume_quiet: tuple[float, float] | None = None) -> None:
        """``assume_quiet``: (seconds its screen has not changed, seconds it has run) to
        assume of an agent seen for the first time (a one-shot look, see one_shot), instead
        of "it just changed, it just started"."""
        self.live = live
        self.capture = capture
        self.assume_quiet = assume_quiet
        self.hooks = hooks  # the programs' own hook events (status evidence), if any
        # Whether a CPU duty cycle holds an agent's tree (its stopped phases are no pause).
        self.cycling: Callable[[str], bool] = lambda _target: False
        self._records: tuple[float, dict[str, records.AgentRecord]] = (-1.0, {})
        self._records_path: Path | None = None
        self._remembered: dict[str, records.AgentRecord] = {}
        self._screens: dict[str, str] = {}  # pane id -> its last captured screen
        self._mark = 0  # the control connection's change mark at the last tick
        self._swept = 0.0  # when every pane was last captured
        self.full_sweep = FULL_SWEEP
        self.sampler = procs.Sampler()
        self.trackers: dict[str, StatusTracker] = {}
        self.seen: dict[str, tuple[str, float]] = {}  # target -> (screen hash, changed_at)
        self.started: dict[str, tuple[str, int | None, float]] = {}  # target -> pane, pid, t
        self.history: dict[str, deque[tuple[float, float, int]]] = {}  # target -> (t, cpu, rss)
        self.last: Snapshot | None = None

    def _to_capture(self, ids: dict[str, str], now: float) -> list[str]:
        """Which panes to capture this tick. Without a control connection, all of them (one
        batched fork). With one, only those whose screen may have changed: panes that
        printed since the last tick (tmux tells), panes never captured, panes whose status
        is still settling (the debounce needs two looks) and, every
        :data:`FULL_SWEEP` seconds, everyone (a safety net, and how a silent agent's clock
        keeps going)."""
        control = self.live.tmux.control
        if control is None or not control.connected or control.state != "ready":
            self._mark, self._swept = 0, now
            return list(ids)
        activity = control.changes(0)  # every pane ever active, with when it last was
        mark, self._mark = self._mark, activity.mark
        if now - self._swept >= self.full_sweep:
            self._swept = now
            return list(ids)
        wanted = []
        for pane_id, target in ids.items():
            tracker = self.trackers.get(target)
            seen = activity.panes.get(pane_id)
            # Printed since the last tick, or lately: tmux reports a muted pane's activity
            # with one-second resolution, so its last lines may come without a new report.
            moved = seen is not None and (seen.seq > mark or now - seen.last_output < SETTLE)
            if moved or pane_id not in self._screens or tracker is None or tracker.settling:
                wanted.append(pane_id)
        return wanted

    def tracker(self, agent: Agent) -> StatusTracker:
        tr = self.trackers.get(agent.target)
        if tr is None:
            pats = patterns_for(agent.argv, agent.ready_pattern, agent.busy_pattern,
                                agent.input_pattern)
            tr = StatusTracker(pats, stall_after=agent.stall_after)
            self.trackers[agent.target] = tr
        return tr

    def tick(self) -> Snapshot:
        live = self.live
        live.refresh()
        self.sampler.sample()
        system = self.sampler.system()
        now, wall = time.monotonic(), time.time()
        agents = live.squad.agents()
        panes = {a.target: live.pane(a) for a in agents}
        if self.hooks is not None:
            self.hooks.poll()
        self._remembered = self.records()
        screens: dict[str, str] = {}
        if self.capture:
            ids = {p.pane_id: t for t, p in panes.items() if p is not None}
            wanted = self._to_capture(ids, now)
            for pane_id, text in live.tmux.capture(wanted).items():
                self._screens[pane_id] = text
            for pane_id, target in ids.items():
                if pane_id in self._screens:
                    screens[target] = self._screens[pane_id]
            for gone in set(self._screens) - set(ids):
                del self._screens[gone]
        rows = []
        for agent in agents:
            pane = panes[agent.target]
            rows.append(self._row(agent, pane, screens.get(agent.target, ""), now, wall))
        tails = {t: "\n".join(s.rstrip("\n").split("\n")[-STATUS_TAIL:])
                 for t, s in screens.items()}
        snap = Snapshot(live.squad.name, live.tmux.socket, wall, system.cpu, system.mem,
                        tuple(rows), tails)
        self.last = snap
        return snap

    def _row(self, agent: Agent, pane: Pane | None, screen: str, now: float,
             wall: float) -> AgentRow:
        squad = self.live.squad
        wt = squad.worktree_dir(agent) if agent.worktree else None
        base = dict(
            team=agent.team, agent=agent.name, role=agent.role, branch=(
                agent.branch_name() if agent.worktree else None),
            worktree=str(wt) if wt else None, cwd=str(squad.agent_dir(agent)),
            tags=tuple(agent.tags), capacity=agent.capacity, dispatch=agent.dispatch,
        )
        record = self._remembered.get(agent.target) or records.AgentRecord()
        if pane is None or (pane.dead and record.hibernated):
            # Hibernated: stopped to free memory, its window (if any) showing where it was;
            # `squad wake` starts it again in its conversation.
            self.trackers.pop(agent.target, None)
            held = "hibernated" if record.hibernated else "down"
            return AgentRow(state=held, status=held, pid=None, wrapper_pid=None,
                            exit_code=None, cpu=0.0, rss=0, procs=0,
                            session=pane.session if pane else "",
                            window_id=pane.window_id if pane else None,
                            pane_id=pane.pane_id if pane else None, since=wall,
                            session_id=record.session_id, **base)
        usage = self.sampler.usage(pane.pid if not pane.dead else None)
        table = self.sampler.table
        kids = table.children.get(pane.pid or -1, []) if table else []
        pid = kids[0] if kids and not pane.dead else None
        wrapper = table.procs.get(pane.pid or -1) if table else None
        key = (pane.pane_id, pane.pid)
        started = self.started.get(agent.target)
        if started is None or started[:2] != key:
            began = now - self.assume_quiet[1] if self.assume_quiet else now
            started = (pane.pane_id, pane.pid, began)
            self.started[agent.target] = started
            self.trackers.pop(agent.target, None)
            self.seen.pop(agent.target, None)
        digest = _hash(screen)
        prev = self.seen.get(agent.target)
        changed_at = now if prev is None or prev[0] != digest else prev[1]
        if prev is None:
            changed_at = now - self.assume_quiet[0] if self.assume_quiet else started[2]
        self.seen[agent.target] = (digest, changed_at)
        seen = None
        if self.hooks is not None and wrapper is not None:
            # Only what the program said since its window's process started (a restart
            # makes older events someone else's), and not too long ago.
            seen = self.hooks.seen_since(agent.target, procs.started_at(wrapper.start) - 1.0)
        ev = Evidence(now=now, started_at=started[2], screen=screen, changed_at=changed_at,
                      dead=pane.dead, exit_code=pane.exit_code,
                      stopped=usage.stopped and not self.cycling(agent.target),
                      cpu=usage.cpu, hook=seen.kind if seen else None,
                      hook_age=max(0.0, wall - seen.at) if seen else 0.0,
                      fullscreen=pane.fullscreen)
        tracker = self.tracker(agent)
        status = tracker.update(ev)
        hist = self.history.setdefault(agent.target, deque(maxlen=600))
        hist.append((wall, usage.cpu, usage.rss))
        return AgentRow(
            state="exited" if pane.dead else "running",
            status=str(status),
            pid=pid,
            wrapper_pid=pane.pid,
            exit_code=pane.exit_code if pane.dead else None,
            cpu=usage.cpu,
            rss=usage.rss,
            procs=usage.procs,
            session=pane.session,
            window_id=pane.window_id,
            pane_id=pane.pane_id,
            since=wall - (now - tracker.since),
            raw_status=str(tracker.raw or status),
            wrapper_start=wrapper.start if wrapper is not None else None,
            session_id=record.session_id,
            **base,
        )


    def records(self) -> dict[str, records.AgentRecord]:
        """What squad remembers per agent (re-read only when the file changed)."""
        if self._records_path is None:
            self._records_path = records.path_of(self.live.squad.name)
        path = self._records_path
        try:
            stamp = path.stat().st_mtime
        except OSError:
            stamp = 0.0
        if stamp != self._records[0]:
            self._records = (stamp, records.read(self.live.squad.name))
        return self._records[1]


def one_shot(live: Live, sampler: procs.Sampler | None = None,
             min_interval: float = 0.05) -> Snapshot:
    """A snapshot without a supervisor's history: one observation.

    CPU needs two readings of the process table: ``sampler`` may carry one taken earlier
    (as early as the command could), so the command's own work is the interval; at least
    ``min_interval`` seconds pass between them. Each screen counts as unchanged for a
    while (quiet, but not long enough to call anything stalled), and each agent as started
    a minute ago (not "starting")."""
    obs = Observer(live, assume_quiet=(10.0, 60.0))
    if sampler is None:
        sampler = procs.Sampler()
        sampler.sample()
    obs.sampler = sampler
    prev = sampler.table
    if prev is not None:
        wait = min_interval - (time.monotonic() - prev.at)
        if wait > 0:
            time.sleep(wait)
    return obs.tick()


# -- the published snapshot: what a running supervisor saw last ---------------------------


def published_path(squad: str) -> Path:
    return squad_dir(squad) / "snapshot.json"


def publish(snap: Snapshot, extra: dict[str, object] | None = None) -> bool:
    """Write the snapshot for other processes (``squad ls``), atomically, private.

    Best effort: on a full or read-only disk nothing is published (and no temporary file is
    left behind); the next tick tries again. Returns whether it was written."""
    path = published_path(snap.squad)
    data = snap.to_json() | {"pid": os.getpid()} | (extra or {})
    try:
        write_private(path, json.dumps(data).encode())
    except OSError as exc:
        log.warning("snapshot not published: %s", exc)
        return False
    return True


def read_published_extra(squad: str, max_age: float = 5.0) -> dict[str, Any]:
    """What a running supervisor published besides the agents (the governor's state, the
    CPU limits and their mechanisms), or {} when none runs."""
    try:
        fd = os.open(published_path(squad), os.O_RDONLY | NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read())
        if not isinstance(data, dict) or time.time() - float(data.get("at", 0)) > max_age:
            return {}
        return {k: v for k, v in data.items() if k in ("governor", "cpu_limits", "actions")}
    except (OSError, ValueError, TypeError):
        return {}


def read_published(squad: str, max_age: float = 3.0) -> Snapshot | None:
    """The snapshot a live supervisor published within ``max_age`` seconds, if any."""
    try:
        fd = os.open(published_path(squad), os.O_RDONLY | NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read())
        if not isinstance(data, dict):
            return None
    except (OSError, ValueError):
        return None
    try:
        return _published(data, max_age)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None  # not a snapshot squad wrote: as if none was published


def _published(data: dict, max_age: float) -> Snapshot | None:
    if time.time() - float(data.get("at", 0)) > max_age:
        return None
    pid = int(data.get("pid", 0))
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    rows = []
    for a in data.get("agents", []):
        a = dict(a)
        a.pop("target", None)
        a["tags"] = tuple(a.get("tags") or ())
        rows.append(AgentRow(**a))
    return Snapshot(str(data["squad"]), str(data.get("socket", "")), float(data["at"]),
                    float(data.get("cpu", 0)), float(data.get("mem", 0)), tuple(rows))


def merge_live(published: Snapshot, fresh: Snapshot) -> Snapshot:
    """Fresh process facts (state, pid, CPU, memory) with the supervisor's debounced status
    and task columns."""
    rows = []
    for row in fresh.agents:
        old = published.agent(row.target)
        if (old is not None and row.state == "running" and old.state == "running"
                and old.pid == row.pid):
            row = replace(row, status=old.status if row.status != "paused" else row.status,
                          since=old.since, task=old.task, task_id=old.task_id,
                          breaker=old.breaker, cpu=old.cpu)
        elif old is not None:
            row = replace(row, task=old.task, task_id=old.task_id, breaker=old.breaker)
        rows.append(row)
    return replace(fresh, agents=tuple(rows))
