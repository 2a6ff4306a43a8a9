"""Dispatch policy as plain functions over plain data: which agent gets which task, retry
backoff, and the per-agent circuit breaker. No I/O; the supervisor feeds it one
:class:`Candidate` per agent each tick and applies the answer through :mod:`squad.store`.

An agent is eligible for a task when it has dispatch enabled, its status is ``idle``, its
breaker lets work through, it has free capacity, it carries every tag of the task, and it is
in the task's team / is the task's target when the task names one. Among eligible agents:

- ``least-loaded``: lowest active/capacity, then lowest recent CPU, then the one idle longest,
  then the higher layout priority, then the target name (so the choice is deterministic);
- ``round-robin``: the next eligible agent after the last one chosen, in target-name order;
- ``random``: a uniform choice (pass a seeded ``random.Random`` for reproducible runs).
"""

from __future__ import annotations

import random as _random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from squad.task_model import TaskError, clock, need_key

LEAST_LOADED = "least-loaded"
ROUND_ROBIN = "round-robin"
RANDOM = "random"
POLICIES = (LEAST_LOADED, ROUND_ROBIN, RANDOM)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Need(Protocol):
    """What dispatch reads from a task: :class:`squad.task_model.Task` fits, and :class:`Job`."""

    id: int
    tags: tuple[str, ...]
    team: str | None
    target: str | None
    need: str  # squad.task_model.need_key(tags, team, target)


@dataclass(frozen=True)
class Job:
    """A unit of work that is not a queued task, e.g. a review for ``Job(id, target=reviewer)``."""

    id: int
    tags: tuple[str, ...] = ()
    team: str | None = None
    target: str | None = None

    @property
    def need(self) -> str:
        return need_key(self.tags, self.team, self.target)


@dataclass(frozen=True)
class Candidate:
    """One agent as the dispatcher sees it this tick."""

    target: str  # "team/agent"
    team: str
    tags: frozenset[str]
    capacity: int
    active: int  # tasks it holds now (assigned, in progress, or a review handed to it)
    cpu: float  # recent CPU % of its process tree
    idle_since: float  # when it became idle (smaller = waited longer)
    dispatch: bool  # the layout's dispatch flag
    status: str  # agent status word; only "idle" is eligible
    breaker: str = CLOSED  # closed | open | half-open, from Breaker.state(now)
    priority: int = 0  # layout priority: higher preferred, after load
    breaker_until: float | None = None  # when an open breaker turns half-open (for messages)


_STATUS_PHRASE = {
    "needs-input": "waits for input",
    "exited": "has exited",
    "down": "is not running",
}


def eligible(task: Need, cand: Candidate) -> str | None:
    """None if ``cand`` may take ``task`` now, else the reason in words, naming the agent."""
    t = cand.target
    if task.target is not None and task.target != t:
        return f"{t} is not the target {task.target}"
    if task.team is not None and task.team != cand.team:
        return f"{t} is not in team {task.team}"
    if not cand.dispatch:
        return f"{t} has dispatch disabled"
    if cand.status != "idle":
        return f"{t} {_STATUS_PHRASE.get(cand.status, f'is {cand.status}')}"
    if cand.breaker == OPEN:
        until = f" until {clock(cand.breaker_until)}" if cand.breaker_until else ""
        return f"{t} has its breaker open{until}"
    if cand.breaker == HALF_OPEN and cand.active > 0:
        return f"{t} has a half-open breaker and its one trial task is running"
    if cand.active >= cand.capacity:
        return f"{t} is at capacity {cand.active}/{cand.capacity}"
    missing = [tag for tag in task.tags if tag not in cand.tags]
    if missing:
        return f"{t} lacks tag{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    return None


def choose(
    task: Need,
    cands: Iterable[Candidate],
    policy: str = LEAST_LOADED,
    *,
    rr_state: dict[str, Any] | None = None,
    rng: _random.Random | None = None,
) -> tuple[Candidate | None, list[str]]:
    """The agent that gets ``task`` now (or None) and why each other plausible agent does not.

    Agents ruled out only by the task's target or team are not listed one by one; a single
    line says when no agent matches them at all. ``rr_state`` is updated in place for
    round-robin (persist it between ticks).
    """
    check_policy(policy)
    winners: list[Candidate] = []
    reasons: list[str] = []
    matched = 0
    for cand in cands:
        if (task.target is not None and cand.target != task.target) or (
            task.team is not None and cand.team != task.team
        ):
            continue
        matched += 1
        why = eligible(task, cand)
        if why is None:
            winners.append(cand)
        else:
            reasons.append(why)
    if not matched:
        if task.target is not None:
            scope = f"{task.target} is not an agent of this squad"
            if task.team is not None and not task.target.startswith(task.team + "/"):
                scope = f"target {task.target} is not in team {task.team}"
            reasons.append(scope)
        elif task.team is not None:
            reasons.append(f"team {task.team} has no agents")
        else:
            reasons.append("the squad has no agents")
    if not winners:
        return None, reasons
    return _pick(policy, winners, rr_state, rng), reasons


def _load_key(c: Candidate | _Slot) -> tuple:
    return (c.active / c.capacity, c.cpu, c.idle_since, -c.priority, c.target)


def _pick(policy: str, pool: Sequence[Any], rr_state: dict[str, Any] | None,
          rng: _random.Random | None) -> Any:
    if policy == LEAST_LOADED or len(pool) == 1:
        best = min(pool, key=_load_key)
    elif policy == ROUND_ROBIN:
        ordered = sorted(pool, key=lambda c: c.target)
        last = (rr_state or {}).get("last")
        best = next((c for c in ordered if last is None or c.target > last), ordered[0])
    else:
        best = (rng or _random).choice(sorted(pool, key=lambda c: c.target))
    if rr_state is not None and policy == ROUND_ROBIN:
        rr_state["last"] = best.target
    return best


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise TaskError(f"unknown dispatch policy {policy!r}; use one of {', '.join(POLICIES)}")
    return policy


class _Slot:
    """A candidate with free capacity, mutable while one tick is planned."""

    __slots__ = ("target", "team", "capacity", "active", "free", "cpu", "idle_since", "priority")

    def __init__(self, c: Candidate) -> None:
        self.target, self.team, self.capacity = c.target, c.team, c.capacity
        self.active, self.cpu, self.idle_since, self.priority = (
            c.active, c.cpu, c.idle_since, c.priority)
        # a half-open breaker lets exactly one trial task through, and only to an empty agent
        self.free = 1 if c.breaker == HALF_OPEN else c.capacity - c.active


def plan(
    tasks_in_order: Iterable[Need],
    cands: Iterable[Candidate],
    policy: str = LEAST_LOADED,
    *,
    rr_state: dict[str, Any] | None = None,
    rng: _random.Random | None = None,
    limit: int | None = None,
) -> list[tuple[int, str]]:
    """Assign as many ready tasks as the free capacity allows, in queue order:
    ``[(task_id, "team/agent"), ...]``. Each assignment counts against the agent for the rest
    of the tick. Apply with ``store.assign`` in the returned order.

    Cost: O(agents) to index the idle agents by team and tag, then for each task one lookup
    of its ``(tags, team, target)``; a combination that found no agent is not examined again
    this tick (capacity only shrinks), and planning stops as soon as no agent has room.
    """
    check_policy(policy)
    slots: dict[str, _Slot] = {}
    by_team: dict[str, set[str]] = {}
    by_tag: dict[str, set[str]] = {}
    for c in cands:
        if (not c.dispatch or c.status != "idle" or c.breaker == OPEN
                or c.active >= c.capacity or (c.breaker == HALF_OPEN and c.active > 0)):
            continue
        slots[c.target] = _Slot(c)
        by_team.setdefault(c.team, set()).add(c.target)
        for tag in c.tags:
            by_tag.setdefault(tag, set()).add(c.target)
    out: list[tuple[int, str]] = []
    if not slots:
        return out
    open_all = set(slots)
    hopeless: set[str] = set()
    empty: frozenset[str] = frozenset()
    for task in tasks_in_order:
        need = task.need
        if need in hopeless:
            continue
        team, target = task.team, task.target
        pool: set[str] | frozenset[str]
        if target is not None:
            ok = target in open_all and (team is None or slots[target].team == team)
            pool = {target} if ok and all(target in by_tag.get(tag, empty)
                                          for tag in task.tags) else empty
        else:
            pool = open_all if team is None else by_team.get(team, empty)
            for tag in task.tags:
                members = by_tag.get(tag)
                if not members:
                    pool = empty
                    break
                pool = pool & members
        if not pool:
            hopeless.add(need)
            continue
        slot = _pick(policy, [slots[t] for t in pool], rr_state, rng)
        out.append((task.id, slot.target))
        slot.active += 1
        slot.free -= 1
        if slot.free <= 0:
            open_all.discard(slot.target)
            by_team[slot.team].discard(slot.target)
            for members in by_tag.values():
                members.discard(slot.target)
            if not open_all:
                break
        if limit is not None and len(out) >= limit:
            break
    return out


def occupy(cands: Iterable[Candidate], assignments: Iterable[tuple[int, str]]
           ) -> list[Candidate]:
    """The candidates after ``assignments``: each assignment adds one active task. Use it to
    plan reviews and tasks in the same tick (plan reviews, occupy, then plan tasks)."""
    extra: dict[str, int] = {}
    for _, target in assignments:
        extra[target] = extra.get(target, 0) + 1
    return [replace(c, active=c.active + extra[c.target]) if c.target in extra else c
            for c in cands]


def backoff(attempt: int, base: float = 5.0, cap: float = 300.0,
            rng: _random.Random | None = None, *, jitter: str = "equal") -> float:
    """Seconds to wait before retry number ``attempt`` (1 after the first failure).

    The ceiling grows exponentially, ``min(cap, base * 2**(attempt-1))``: 5, 10, 20, 40 s, ...
    up to 5 minutes. ``jitter="equal"`` (the default) waits between half the ceiling and the
    ceiling, so a retry never comes immediately yet retries of many tasks spread out;
    ``jitter="full"`` waits anywhere from 0 to the ceiling; ``jitter="none"`` the ceiling.
    """
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 64))
    r = (rng or _random).random()
    if jitter == "equal":
        return ceiling / 2 + r * ceiling / 2
    if jitter == "full":
        return r * ceiling
    if jitter == "none":
        return ceiling
    raise ValueError(f"unknown jitter {jitter!r}; use equal, full or none")


@dataclass
class Breaker:
    """A circuit breaker for one agent, as plain data.

    ``closed``: work flows; each failure counts, a success resets the count. After
    ``threshold`` consecutive failures it is ``open``: no tasks for ``cooldown`` seconds. Then
    it is ``half-open``: dispatch gives the agent exactly one trial task (and only while it
    holds none). A success closes it; a failure opens it again for another cooldown. A success
    reported while open (a task it held before opening) also closes it.
    """

    threshold: int = 3
    cooldown: float = 120.0
    failures: int = 0  # consecutive
    opened_at: float | None = None

    def state(self, now: float) -> str:
        if self.opened_at is None:
            return CLOSED
        return OPEN if now < self.opened_at + self.cooldown else HALF_OPEN

    def allows(self, now: float) -> bool:
        """Whether the agent may receive a task (a half-open one only its single trial task)."""
        return self.state(now) != OPEN

    @property
    def until(self) -> float | None:
        """When an open breaker turns half-open."""
        return None if self.opened_at is None else self.opened_at + self.cooldown

    def record_success(self, now: float) -> str:
        self.failures = 0
        self.opened_at = None
        return CLOSED

    def record_failure(self, now: float) -> str:
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.threshold:
            self.opened_at = now  # a failed trial (or a failure while open) restarts the cooldown
        return self.state(now)

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "cooldown": self.cooldown,
                "failures": self.failures, "opened_at": self.opened_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Breaker:
        return cls(threshold=int(data.get("threshold", 3)),
                   cooldown=float(data.get("cooldown", 120.0)),
                   failures=int(data.get("failures", 0)),
                   opened_at=data.get("opened_at"))
