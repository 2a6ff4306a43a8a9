"""The resource governor: per-agent memory limits, squad-wide pressure and ``max_active``.

Decisions are pure: :meth:`Governor.step` takes plain samples of every agent (status, CPU,
memory, priority, pinned, attached) and a reading of the machine's pressure, and returns the
actions to take this tick, each carrying the rule that fired and the figures behind it. The
governor keeps only its own bookkeeping between ticks (debounce counters, whom it paused and
why, how long pressure has stayed low), so every rule is tested on plain data. Effects sit at
the edge: :class:`Executor` pauses and resumes real process trees through :mod:`squad.procs`
and hands restart / hibernate / wake / stop back to the supervisor, which runs them through
:mod:`squad.control`; :func:`read_pressure` reads the machine.

Why the rules are shaped as they are:

- A limit counts only after ``samples`` consecutive samples over it: RSS spikes for a moment
  during a build or a model response, and stopping an agent for a spike costs its work.
- Pressure has two thresholds (act below ``memory_low_mb``, recover above ``memory_ok_mb``)
  and a quiet period (``recover_after``): resuming the moment memory comes back would pause
  the same agents again a tick later.
- Under pressure one agent is paused per ``samples`` samples over the threshold, so the
  reading can show the effect before the next one goes; the order is lowest ``priority``
  first, then idle before working, then the most of the scarce resource freed. Pinned agents
  and agents a person is attached to are never chosen.
- An agent a person resumed (or woke) after the governor paused it is left alone until the
  pressure episode ends: squad never fights a person.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squad import procs
from squad.errors import SquadError

MIB = 1024 * 1024

LIMIT_ACTIONS = ("warn", "pause", "restart", "hibernate", "stop")
"""What ``on_memory_limit`` may say: what happens to an agent past its ``memory_limit_mb``."""

PRESSURE_ACTIONS = ("pause", "hibernate")
"""What ``[governor].pressure_action`` may say: what pressure does to the chosen agents."""

RUNNING = frozenset({"starting", "working", "idle", "needs-input", "stalled"})
"""Statuses of an agent whose processes run (candidates for pausing)."""

IDLE_LIKE = frozenset({"idle", "needs-input", "stalled"})
"""Statuses in which an agent is not making progress on its own: paused before working ones."""

DEFERRED = frozenset({"restart", "hibernate", "wake", "stop"})
"""Actions the supervisor carries out through squad.control (windows, conversation ids)."""

MEMORY_RULES = frozenset({"memory_low", "memory_psi"})
CPU_RULES = frozenset({"cpu_psi", "load"})
PRESSURE_RULES = MEMORY_RULES | CPU_RULES


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GovernorConfig:
    """The layout's ``[governor]`` table, checked (see :func:`squad.layout.loads`).

    ``None`` means "not watched". The recovery thresholds (``*_ok``) default from the acting
    ones (see :meth:`ok`), so a layout may give only the acting threshold.
    """

    max_active: int | None = None
    """At most this many agents working at once: dispatch holds back beyond it."""
    pause_excess: bool = False
    """Also pause agents working beyond ``max_active`` (lowest priority first)."""
    memory_low_mb: int | None = None
    """Act when the machine's available memory (MemAvailable) falls below this, MiB."""
    memory_ok_mb: int | None = None
    """Recover when available memory is back above this, MiB (default: low + 25%)."""
    memory_psi_high: float | None = None
    """Act when ``/proc/pressure/memory`` "some avg10" (% of time stalled) exceeds this."""
    memory_psi_ok: float | None = None
    """Recover when memory PSI is back at or below this (default: half the high mark)."""
    cpu_psi_high: float | None = None
    """Act when ``/proc/pressure/cpu`` "some avg10" exceeds this."""
    cpu_psi_ok: float | None = None
    """Recover when CPU PSI is back at or below this (default: half the high mark)."""
    load_high: float | None = None
    """Act when the 1-minute load average per core exceeds this."""
    load_ok: float | None = None
    """Recover when the load per core is back at or below this (default: 80% of high)."""
    pressure_action: str = "pause"
    """What pressure does to the chosen agents: one of :data:`PRESSURE_ACTIONS`."""
    recover_after: float = 30.0
    """Seconds pressure must stay low before the first agent is resumed."""
    samples: int = 3
    """Consecutive samples a limit or a threshold must be exceeded before anything happens."""
    dry_run: bool = False
    """Only say what would be done: actions come back marked ``dry_run`` and nothing acts."""

    def ok(self, name: str) -> float | None:
        """The recovery threshold paired with an acting one, given or derived."""
        if name == "memory":
            if self.memory_low_mb is None:
                return None
            if self.memory_ok_mb is not None:
                return float(self.memory_ok_mb)
            return float(self.memory_low_mb + max(1, self.memory_low_mb // 4))
        given, high, factor = {
            "memory_psi": (self.memory_psi_ok, self.memory_psi_high, 0.5),
            "cpu_psi": (self.cpu_psi_ok, self.cpu_psi_high, 0.5),
            "load": (self.load_ok, self.load_high, 0.8),
        }[name]
        if high is None:
            return None
        return given if given is not None else high * factor

    @property
    def watches_pressure(self) -> bool:
        return any(v is not None for v in (self.memory_low_mb, self.memory_psi_high,
                                           self.cpu_psi_high, self.load_high))

    @property
    def active(self) -> bool:
        """Whether the governor has anything squad-wide to do."""
        return self.watches_pressure or self.max_active is not None

    def to_table(self) -> dict[str, Any]:
        """The ``[governor]`` table the layout parser reads back to an equal config; only
        what differs from the defaults."""
        default = GovernorConfig()
        return {name: getattr(self, name) for name in self.__dataclass_fields__
                if getattr(self, name) != getattr(default, name)}


# -- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One agent at one tick, as the governor needs it (built from a snapshot row and the
    layout with :meth:`of`)."""

    target: str
    status: str
    cpu: float = 0.0
    """Percent of one core, the whole tree."""
    rss: int = 0
    """Bytes, the whole tree."""
    priority: int = 0
    pinned: bool = False
    """Never paused or hibernated by pressure or ``max_active``."""
    attached: bool = False
    """A person is attached to its window: pressure leaves it alone, limits only warn."""
    last_active: float = 0.0
    """When it last did something (wall clock); among equals the longest idle goes first."""
    identity: str | None = None
    """Which process runs it now; a change (restart) starts its memory counters afresh."""
    memory_warn_mb: int | None = None
    memory_limit_mb: int | None = None
    on_memory_limit: str = "warn"
    root: int | None = None
    """The wrapper's pid: the agent's tree is everything below it."""
    root_start: float | None = None
    """The wrapper's start time: with ``root``, the identity signals are checked against."""

    @classmethod
    def of(cls, row: Any, agent: Any = None, *, attached: bool = False,
           pinned: bool | None = None) -> Sample:
        """From a :class:`squad.snapshot.AgentRow` and its :class:`squad.layout.Agent`."""
        return cls(
            target=row.target, status=row.status, cpu=row.cpu, rss=row.rss,
            priority=getattr(agent, "priority", 0),
            pinned=bool(getattr(agent, "pinned", False) if pinned is None else pinned),
            attached=attached,
            last_active=row.since if row.status in IDLE_LIKE else float("inf"),
            identity=row.identity,
            memory_warn_mb=getattr(agent, "memory_warn_mb", None),
            memory_limit_mb=getattr(agent, "memory_limit_mb", None),
            on_memory_limit=getattr(agent, "on_memory_limit", "warn"),
            root=row.wrapper_pid, root_start=row.wrapper_start,
        )


@dataclass(frozen=True)
class Pressure:
    """The machine's pressure at one moment; ``None`` where this machine cannot tell."""

    available_mb: float | None = None
    """MemAvailable: what can be allocated without swapping."""
    total_mb: float | None = None
    memory_psi: float | None = None
    """``/proc/pressure/memory`` "some avg10": % of the last 10 s some task waited for memory."""
    cpu_psi: float | None = None
    """``/proc/pressure/cpu`` "some avg10"."""
    load1: float | None = None
    cores: int = 1

    @property
    def load_per_core(self) -> float | None:
        return None if self.load1 is None else self.load1 / max(1, self.cores)

    def to_json(self) -> dict[str, float | int | None]:
        return {"available_mb": self.available_mb, "total_mb": self.total_mb,
                "memory_psi": self.memory_psi, "cpu_psi": self.cpu_psi, "load1": self.load1,
                "cores": self.cores}


def _psi_some_avg10(path: Path) -> float | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("some "):
                    for part in line.split()[1:]:
                        key, _, value = part.partition("=")
                        if key == "avg10":
                            return float(value)
    except (OSError, ValueError):
        pass
    return None


def read_pressure(proc: str | os.PathLike[str] = "/proc") -> Pressure:
    """The machine's pressure now: MemAvailable from ``meminfo``, PSI "some avg10" for
    memory and CPU where the kernel has it, the load average. Each reading degrades to
    ``None`` on its own when its file is missing or garbled (old kernels, PSI disabled,
    macOS), so a threshold on a reading this machine lacks simply never fires."""
    root = Path(proc)
    available = total = None
    try:
        with open(root / "meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemAvailable", "MemTotal"):
                    kb = float(rest.split()[0])
                    if key == "MemAvailable":
                        available = kb / 1024
                    else:
                        total = kb / 1024
    except (OSError, ValueError, IndexError):
        pass
    if available is None and not sys.platform.startswith("linux"):
        try:
            import psutil

            vm = psutil.virtual_memory()
            available, total = vm.available / MIB, vm.total / MIB
        except Exception:  # noqa: BLE001 - a missing reading is None, never a failure
            pass
    load1 = None
    try:
        with open(root / "loadavg") as f:
            load1 = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        try:
            load1 = os.getloadavg()[0]
        except (OSError, AttributeError):
            pass
    return Pressure(
        available_mb=available, total_mb=total,
        memory_psi=_psi_some_avg10(root / "pressure" / "memory"),
        cpu_psi=_psi_some_avg10(root / "pressure" / "cpu"),
        load1=load1, cores=os.cpu_count() or 1,
    )


# -- outputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One thing the governor decided, with the rule that fired and the figures behind it."""

    kind: str
    """warn | pause | resume | hibernate | wake | restart | stop"""
    target: str
    rule: str
    """memory_warn | memory_limit | memory_low | memory_psi | cpu_psi | load | max_active |
    recovered"""
    reason: str
    """One sentence with the figures, for a person."""
    figures: Mapping[str, Any] = field(default_factory=dict, compare=False)
    dry_run: bool = False

    @property
    def event(self) -> str:
        """The audit-trail action name: ``memory.warn`` for warnings, ``policy.dry_run`` for
        what a dry run would have done, else the action itself (``pause`` by policy)."""
        if self.dry_run:
            return "policy.dry_run"
        return "memory.warn" if self.kind == "warn" else self.kind

    def event_fields(self) -> dict[str, Any]:
        """Keyword arguments for :func:`squad.events.record` (``by = "policy"``)."""
        data: dict[str, Any] = {"target": self.target, "by": "policy", "reason": self.reason,
                                "rule": self.rule, **self.figures}
        if self.dry_run:
            data["would"] = self.kind
        return data


# -- the governor ----------------------------------------------------------------------------


@dataclass
class _Track:
    """What the governor remembers of one agent between ticks."""

    identity: str | None
    over_warn: int = 0
    warned: bool = False
    over_limit: int = 0
    limit_done: bool = False  # the limit action was taken for this crossing
    deferred_said: bool = False  # told once that a person being attached holds the action
    held_kind: str | None = None  # pause | hibernate: the governor stopped it
    held_by: str | None = None  # the rule that did
    held_seq: int = 0
    held_at: float = 0.0
    virtual: bool = False  # held only in a dry run
    loose: int = 0  # consecutive samples seen running although held
    released: bool = False  # a person undid the governor's hold: left alone this episode


def _mb(n: float) -> str:
    return f"{n:,.0f} MiB"


def _samples(n: int) -> str:
    return f"{n} sample{'s' if n != 1 else ''}"


class Governor:
    """Decides, tick by tick, what the resource policy does (pure; see the module's doc)."""

    def __init__(self, config: GovernorConfig | None = None) -> None:
        self.config = config or GovernorConfig()
        self.tracks: dict[str, _Track] = {}
        self.level = "ok"  # ok | high | between: the pressure reading against thresholds
        self.fired: str | None = None  # the pressure rule over its threshold, if any
        self.figures: dict[str, Any] = {}
        self.pressure: Pressure | None = None
        self.hot = 0  # consecutive samples over a pressure threshold since the last action
        self.calm = 0  # consecutive samples at or under every recovery threshold
        self.calm_since: float | None = None
        self.resumed_in_calm = 0
        self.excess = 0  # consecutive samples with more than max_active working
        self.note: str | None = None  # why pressure could not act (nobody left to pause)
        self.history: deque[Action] = deque(maxlen=50)
        self._seq = 0
        self.now = 0.0  # the latest step's clock

    def configure(self, config: GovernorConfig) -> None:
        """A layout brought up again: new thresholds, same memory of what was done."""
        self.config = config

    # -- the tick ----------------------------------------------------------------------------

    def step(self, samples: Iterable[Sample], pressure: Pressure | None,
             now: float) -> list[Action]:
        """The actions to take this tick, in the order to take them."""
        rows = list(samples)
        self.now = now
        actions: list[Action] = []
        present = {s.target for s in rows}
        for target in [t for t in self.tracks if t not in present]:
            del self.tracks[target]  # removed from the layout: nothing to resume
        for s in rows:
            track = self._track(s)
            self._reconcile(s, track)
            actions += self._memory(s, track, now)
        self.pressure = pressure
        actions += self._pressure(rows, pressure, now)
        actions += self._max_active(rows, now)
        self.history.extend(actions)
        return actions

    def _track(self, s: Sample) -> _Track:
        track = self.tracks.get(s.target)
        if track is None:
            track = self.tracks[s.target] = _Track(s.identity)
        elif track.identity != s.identity:
            # Another process runs the agent now (restart, wake): its memory is new. A pause
            # does not survive a restart; a hibernation is ended by waking, not by this.
            held = (track.held_kind, track.held_by, track.held_seq, track.held_at,
                    track.virtual, track.released)
            track = self.tracks[s.target] = _Track(s.identity)
            if held[0] == "hibernate":
                (track.held_kind, track.held_by, track.held_seq, track.held_at,
                 track.virtual, track.released) = held
        return track

    def _reconcile(self, s: Sample, track: _Track) -> None:
        """Notice a person undoing what the governor did (or the agent ending)."""
        if track.held_kind is None or track.virtual:
            return
        expected = "paused" if track.held_kind == "pause" else "hibernated"
        if s.status == expected:
            track.loose = 0
        elif track.held_kind == "pause" and s.status in ("exited", "down"):
            self._drop(track)  # nothing left to resume
        elif s.status in RUNNING:
            track.loose += 1
            if track.loose >= 2:  # twice, so a status still catching up is not a person
                self._drop(track)
                track.released = True

    @staticmethod
    def _drop(track: _Track) -> None:
        track.held_kind = track.held_by = None
        track.virtual = False
        track.loose = 0

    def _hold(self, track: _Track, kind: str, rule: str, now: float) -> None:
        self._seq += 1
        track.held_kind, track.held_by, track.held_seq, track.held_at = kind, rule, self._seq, now
        track.virtual = self.config.dry_run
        track.loose = 0

    def _act(self, kind: str, s: Sample, rule: str, reason: str, **figures: Any) -> Action:
        return Action(kind, s.target, rule, reason, figures, self.config.dry_run)

    # -- per-agent memory ----------------------------------------------------------------------

    def _memory(self, s: Sample, track: _Track, now: float) -> list[Action]:
        need = self.config.samples
        mb = s.rss / MIB
        out: list[Action] = []
        if s.memory_warn_mb is not None:
            warn = s.memory_warn_mb
            track.over_warn = track.over_warn + 1 if mb > warn else 0
            if mb < warn * 0.9:  # re-armed only well below, so a value on the line warns once
                track.warned = False
            if track.over_warn >= need and not track.warned:
                track.warned = True
                out.append(self._act(
                    "warn", s, "memory_warn",
                    f"memory {_mb(mb)} is over memory_warn_mb {warn} for "
                    f"{_samples(track.over_warn)}", rss_mb=round(mb, 1), memory_warn_mb=warn,
                    samples=track.over_warn))
        if s.memory_limit_mb is None:
            return out
        limit = s.memory_limit_mb
        if mb > limit:
            track.over_limit += 1
        else:
            track.over_limit = 0
            track.limit_done = track.deferred_said = False  # one action per crossing
        if track.over_limit < need or track.limit_done:
            return out
        action = s.on_memory_limit
        figures = dict(rss_mb=round(mb, 1), memory_limit_mb=limit, samples=track.over_limit)
        said = (f"memory {_mb(mb)} is over memory_limit_mb {limit} for "
                f"{_samples(track.over_limit)}")
        if action == "warn":
            track.limit_done = True
            out.append(self._act("warn", s, "memory_limit", f"{said}: on_memory_limit = 'warn'",
                                 **figures))
        elif s.status not in RUNNING:
            if action == "pause" and s.status == "paused":
                track.limit_done = True  # already where the rule would put it
        elif s.attached:
            if not track.deferred_said:
                track.deferred_said = True
                out.append(self._act(
                    "warn", s, "memory_limit",
                    f"{said}; on_memory_limit = {action!r} waits while a person is attached",
                    **figures, deferred=action))
        else:
            track.limit_done = True
            if action in ("pause", "hibernate"):
                self._hold(track, action, "memory_limit", now)
            out.append(self._act(action, s, "memory_limit",
                                 f"{said}: on_memory_limit = {action!r}", **figures))
        return out

    # -- squad-wide pressure -------------------------------------------------------------------

    def assess(self, p: Pressure | None) -> tuple[str, str | None, dict[str, Any]]:
        """``(level, rule, figures)``: ``high`` when a reading is past an acting threshold
        (``rule`` names the first), ``ok`` when every reading is within its recovery
        threshold, else ``between`` (the hysteresis band: neither act nor recover)."""
        cfg = self.config
        if p is None or not cfg.watches_pressure:
            return "ok", None, {}
        checks: list[tuple[str, float | None, float | None, float | None, bool]] = [
            # rule, reading, acting threshold, recovery threshold, lower-is-worse
            ("memory_low", p.available_mb, cfg.memory_low_mb, cfg.ok("memory"), True),
            ("memory_psi", p.memory_psi, cfg.memory_psi_high, cfg.ok("memory_psi"), False),
            ("cpu_psi", p.cpu_psi, cfg.cpu_psi_high, cfg.ok("cpu_psi"), False),
            ("load", p.load_per_core, cfg.load_high, cfg.ok("load"), False),
        ]
        level, fired, figures = "ok", None, {}
        for rule, value, act, ok, lower_worse in checks:
            if value is None or act is None or ok is None:
                continue
            if (value < act) if lower_worse else (value > act):
                if fired is None:
                    fired = rule
                    figures = {"reading": round(value, 2), "threshold": act, "recover": ok}
                level = "high"
            elif level != "high" and ((value < ok) if lower_worse else (value > ok)):
                level = "between"
        return level, fired, figures

    def _pressure(self, rows: list[Sample], p: Pressure | None, now: float) -> list[Action]:
        cfg = self.config
        self.level, self.fired, self.figures = self.assess(p)
        if self.level == "high":
            self.hot += 1
            self.calm, self.calm_since, self.resumed_in_calm = 0, None, 0
        elif self.level == "ok":
            self.hot = 0
            self.calm += 1
            if self.calm_since is None:
                self.calm_since = now
        else:
            self.hot, self.calm, self.calm_since, self.resumed_in_calm = 0, 0, None, 0
        held = [(t, tr) for t, tr in self.tracks.items()
                if tr.held_kind and tr.held_by in PRESSURE_RULES]
        if self.level == "high" and self.hot >= cfg.samples:
            return self._relieve(rows, now)
        if self.level != "ok":
            return []
        if not held:
            # The episode is over: agents a person took back become candidates again.
            self.note = None
            for tr in self.tracks.values():
                tr.released = False
            return []
        if self.resumed_in_calm == 0:
            if self.calm_since is None or now - self.calm_since < cfg.recover_after:
                return []
        elif self.calm < cfg.samples:
            return []
        target, track = max(held, key=lambda h: h[1].held_seq)  # the last paused first
        s = next((r for r in rows if r.target == target), None)
        if s is None:
            return []
        kind = "wake" if track.held_kind == "hibernate" else "resume"
        calm_for = now - (self.calm_since or now)
        cause = track.held_by
        self._drop(track)
        self.resumed_in_calm += 1
        self.calm = 0
        return [self._act(kind, s, "recovered",
                          f"pressure stayed low for {calm_for:.0f}s (it was {cause}): "
                          f"{kind} {target}", cause=cause, calm_for=round(calm_for, 1),
                          **self._readings(p))]

    @staticmethod
    def _readings(p: Pressure | None) -> dict[str, Any]:
        if p is None:
            return {}
        out = {"available_mb": None if p.available_mb is None else round(p.available_mb),
               "memory_psi": p.memory_psi, "cpu_psi": p.cpu_psi,
               "load_per_core": None if p.load_per_core is None else round(p.load_per_core, 2)}
        return {k: v for k, v in out.items() if v is not None}

    def order(self, rows: Iterable[Sample], rule: str | None = None) -> list[Sample]:
        """Who pressure pauses, first to last: lowest ``priority``, then idle before
        working, then the most of the scarce resource freed (memory for memory rules, CPU
        for CPU rules), then the longest idle. Never pinned or attached agents, agents not
        running, ones already held, or ones a person took back this episode."""
        cpu = rule in CPU_RULES

        def key(s: Sample) -> tuple:
            freed = s.cpu if cpu else float(s.rss)
            return (s.priority, 0 if s.status in IDLE_LIKE else 1, -freed, s.last_active,
                    s.target)

        return sorted((s for s in rows if self._candidate(s)), key=key)

    def _candidate(self, s: Sample) -> bool:
        track = self.tracks.get(s.target)
        if track is not None and (track.held_kind or track.released):
            return False
        return s.status in RUNNING and not s.pinned and not s.attached

    def _relieve(self, rows: list[Sample], now: float) -> list[Action]:
        cfg = self.config
        rule = self.fired or "memory_low"
        order = self.order(rows, rule)
        if not order:
            self.note = f"{rule} over its threshold, and no agent may be paused " \
                        "(all pinned, attached, held or not running)"
            return []
        s = order[0]
        self.hot = 0  # the next one only after the reading stays high again
        self.note = None
        kind = cfg.pressure_action
        self._hold(self.tracks[s.target], kind, rule, now)
        what = {"memory_low": "available memory", "memory_psi": "memory pressure (PSI)",
                "cpu_psi": "CPU pressure (PSI)", "load": "load per core"}[rule]
        f = self.figures
        unit = " MiB" if rule == "memory_low" else ""
        side = "below" if rule == "memory_low" else "above"
        return [self._act(
            kind, s, rule,
            f"{what} {f.get('reading')}{unit} is {side} {f.get('threshold')}{unit} for "
            f"{_samples(cfg.samples)}: {kind} {s.target} (priority {s.priority}, {s.status}, "
            f"{_mb(s.rss / MIB)}, {s.cpu:.0f}% CPU)",
            **f, priority=s.priority, status=s.status, rss_mb=round(s.rss / MIB, 1),
            cpu=s.cpu, **self._readings(self.pressure))]

    # -- max_active ----------------------------------------------------------------------------

    def _working(self, rows: Iterable[Sample], *, virtual: bool = True) -> list[Sample]:
        """Agents working and not held by the governor (``virtual``: dry-run holds count as
        held too, so a dry run does not say the same thing every tick)."""
        out = []
        for s in rows:
            track = self.tracks.get(s.target)
            held = track is not None and track.held_kind and (virtual or not track.virtual)
            if s.status == "working" and not held:
                out.append(s)
        return out

    def _max_active(self, rows: list[Sample], now: float) -> list[Action]:
        cfg = self.config
        limit = cfg.max_active
        if limit is None:
            return []
        working = self._working(rows)
        held = sorted(((t, tr) for t, tr in self.tracks.items()
                       if tr.held_kind and tr.held_by == "max_active"),
                      key=lambda h: -h[1].held_seq)
        out: list[Action] = []
        if cfg.pause_excess and len(working) > limit:
            self.excess += 1
        else:
            self.excess = 0
        if self.excess >= cfg.samples:
            self.excess = 0
            order = sorted((s for s in working if not s.pinned and not s.attached
                            and not self.tracks[s.target].released),
                           key=lambda s: (s.priority, -s.rss, s.target))
            for s in order[:len(working) - limit]:
                self._hold(self.tracks[s.target], "pause", "max_active", now)
                out.append(self._act(
                    "pause", s, "max_active",
                    f"{len(working)} agents working, max_active {limit}: pause {s.target} "
                    f"(priority {s.priority})", working=len(working), max_active=limit,
                    priority=s.priority))
            return out
        if held and len(working) < limit and self.level != "high":
            by_target = {s.target: s for s in rows}
            for target, track in held[:limit - len(working)]:
                if target not in by_target:
                    continue
                self._drop(track)
                out.append(self._act(
                    "resume", by_target[target], "max_active",
                    f"{len(working)} agents working, max_active {limit}: resume {target}",
                    working=len(working), max_active=limit, cause="max_active"))
        return out

    # -- dispatch ------------------------------------------------------------------------------

    def why_held(self, rows: Iterable[Sample]) -> str | None:
        """Why a new task may not start now (``None``: it may). Holds while pressure is over
        a threshold or agents paused by pressure wait to be resumed, and while ``max_active``
        agents are working (counting the ones it paused for that reason)."""
        rows = list(rows)
        if self.level == "high" and self.fired:
            f = self.figures
            return f"under pressure: {self.fired} {f.get('reading')} past {f.get('threshold')}"
        waiting = [t for t, tr in self.tracks.items()
                   if tr.held_kind and not tr.virtual and tr.held_by in PRESSURE_RULES]
        if waiting:
            return (f"recovering from pressure: {len(waiting)} agent"
                    f"{'s' if len(waiting) > 1 else ''} still held by policy")
        slots = self.free_slots(rows)
        if slots is not None and slots <= 0:
            return f"max_active {self.config.max_active}: that many agents are working"
        return None

    def may_start(self, rows: Iterable[Sample]) -> bool:
        """Whether the dispatcher may start a new task now. In a dry run it always may (the
        reason is still in :meth:`why_held`, to say what would happen)."""
        return self.config.dry_run or self.why_held(rows) is None

    def free_slots(self, rows: Iterable[Sample]) -> int | None:
        """How many more tasks may start now under ``max_active`` (``None``: no limit): the
        dispatcher hands out at most this many this tick."""
        limit = self.config.max_active
        if limit is None or self.config.dry_run:
            return None
        rows = list(rows)
        held = sum(1 for tr in self.tracks.values()
                   if tr.held_kind and not tr.virtual and tr.held_by == "max_active")
        return max(0, limit - len(self._working(rows, virtual=False)) - held)

    # -- bookkeeping for the executor and the supervisor -----------------------------------------

    def undo(self, action: Action) -> None:
        """An action could not be carried out: forget what :meth:`step` assumed, so the rule
        can fire again after another ``samples`` samples."""
        track = self.tracks.get(action.target)
        if track is None:
            return
        if action.kind in ("pause", "hibernate"):
            self._drop(track)
            if action.rule == "memory_limit":
                track.limit_done = False
                track.over_limit = 0
        elif action.kind in ("resume", "wake"):
            cause = action.figures.get("cause", "memory_low")
            self._hold(track, "pause" if action.kind == "resume" else "hibernate", cause,
                       track.held_at)
        elif action.kind in ("restart", "stop") and action.rule == "memory_limit":
            track.limit_done = False
            track.over_limit = 0

    def adopt(self, target: str, kind: str, rule: str, now: float,
              identity: str | None = None) -> None:
        """Take over a pause or hibernation an earlier supervisor made (read from the audit
        trail at start), so it is resumed when pressure recovers."""
        track = self.tracks.setdefault(target, _Track(identity))
        self._hold(track, kind, rule, now)
        track.virtual = False

    def held(self) -> dict[str, dict[str, Any]]:
        """Agents the governor holds now: target -> kind, rule, since."""
        return {t: {"kind": tr.held_kind, "rule": tr.held_by, "since": tr.held_at,
                    "dry_run": tr.virtual}
                for t, tr in self.tracks.items() if tr.held_kind}

    def describe(self) -> dict[str, Any]:
        """What ``squad policy --json`` and the UI show: the pressure now against the
        thresholds, whom the governor holds, and what it did last."""
        cfg = self.config
        return {
            "config": cfg.to_table(),
            "level": self.level,
            "fired": self.fired,
            "figures": self.figures,
            "pressure": self.pressure.to_json() if self.pressure else None,
            "hot": self.hot,
            "calm_for": (None if self.calm_since is None
                         else round(self.now - self.calm_since, 1)),
            "held": self.held(),
            "note": self.note,
            "recent": [{"kind": a.kind, "target": a.target, "rule": a.rule,
                        "reason": a.reason, "dry_run": a.dry_run}
                       for a in list(self.history)[-10:]],
        }


# -- carrying actions out --------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """What became of one action."""

    action: Action
    ok: bool
    message: str
    deferred: bool = False
    """The supervisor must carry it out (restart, hibernate, wake, stop via squad.control)."""


class Executor:
    """Carries the governor's actions out on real process trees.

    ``pause`` and ``resume`` act here, on the tree below the agent's wrapper, through
    :func:`squad.procs.pause_tree` / :func:`squad.procs.resume_tree`, after checking the
    wrapper is still the process the sample saw (pid and start time). A CPU limiter is told
    to hold its duty cycle meanwhile, so it never continues a tree the governor stopped.
    ``restart``, ``hibernate``, ``wake`` and ``stop`` come back ``deferred`` for the
    supervisor to run through :mod:`squad.control`. Every action carried out here (and every
    warning and dry-run action) is recorded with ``record(event, **fields)`` with
    ``by = "policy"``; a failed one is undone in the governor so it can fire again.
    """

    def __init__(self, *, governor: Governor | None = None, limiter: Any = None,
                 record: Callable[..., object] | None = None) -> None:
        self.governor = governor
        self.limiter = limiter
        self.record = record

    def run(self, actions: Iterable[Action],
            samples: Iterable[Sample] | Mapping[str, Sample]) -> list[Result]:
        rows = samples if isinstance(samples, Mapping) else {s.target: s for s in samples}
        results = []
        for action in actions:
            result = self._one(action, rows.get(action.target))
            if not result.ok and self.governor is not None:
                self.governor.undo(action)
            if not result.deferred and self.record is not None:
                fields_ = action.event_fields()
                if result.ok:
                    fields_["result"] = result.message
                    self.record(action.event, **fields_)
                else:
                    fields_["error"] = result.message
                    self.record(f"{action.kind}.failed", **fields_)
            results.append(result)
        return results

    def _one(self, action: Action, s: Sample | None) -> Result:
        if action.dry_run:
            return Result(action, True, f"dry run: would {action.kind} {action.target}")
        if action.kind == "warn":
            return Result(action, True, "warned")
        if action.kind in DEFERRED:
            return Result(action, True, f"{action.kind} is for the supervisor", deferred=True)
        if s is None or s.root is None:
            return Result(action, False, f"{action.target} has no running process")
        if s.root_start is not None and procs._start_of(s.root) != s.root_start:
            return Result(action, False, f"{action.target} was restarted meanwhile")
        try:
            if action.kind == "pause":
                if self.limiter is not None:
                    self.limiter.hold(action.target)
                try:
                    pids = procs.pause_tree(s.root)
                except BaseException:
                    if self.limiter is not None:
                        self.limiter.unhold(action.target)
                    raise
                return Result(action, True, f"paused ({len(pids)} processes)")
            if action.kind == "resume":
                pids = procs.resume_tree(s.root)
                if self.limiter is not None:
                    self.limiter.unhold(action.target)
                return Result(action, True, f"resumed ({len(pids)} processes)")
        except SquadError as exc:
            return Result(action, False, str(exc))
        return Result(action, False, f"unknown action {action.kind!r}")
