"""Tasks as plain data: the Task record, priorities, statuses, legal transitions, queue order,
readiness, due dates and the texts an agent receives. No I/O; :mod:`squad.store` persists.

Lifecycle (every arrow is a row update and an event)::

    queued -> assigned -> in_progress -> done
                                      -> review -> done            (VERDICT: APPROVED)
                                                -> queued          (VERDICT: REJECTED: ..., with
                                                                    the feedback in the prompt)
    assigned / in_progress -> queued  (failed attempt: backoff, or an undelivered assignment)
    any live status -> failed | cancelled;  failed | cancelled -> queued (retry)

``rejected`` is not a status: it is a ``review -> queued`` transition that adds one line of
feedback and counts one rejection; the third rejection fails the task.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from squad.errors import SquadError

TITLE_LIMIT = 60
RESULT_LIMIT = 2000  # characters of result excerpt kept (the end of the output)
MAX_REJECTIONS = 3  # the third rejection by a reviewer fails the task
MAX_ATTEMPTS_LIMIT = 100

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Team and agent names, as the layout allows them."""


class TaskError(SquadError):
    """Bad task input (priority, due date, dependency, target, ...) or an illegal transition."""


class Priority(StrEnum):
    """How urgent a task is; ``rank`` 0 (critical) is served first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def from_rank(cls, rank: int) -> Priority:
        return _BY_RANK[rank]

    @classmethod
    def parse(cls, text: str | Priority) -> Priority:
        """``"High"`` -> ``Priority.HIGH``; anything but the four words is a :class:`TaskError`."""
        if isinstance(text, Priority):
            return text
        word = str(text).strip().lower()
        try:
            return cls(word)
        except ValueError:
            allowed = ", ".join(p.value for p in cls)
            raise TaskError(f"unknown priority {text!r}; use one of {allowed}") from None


_BY_RANK = tuple(Priority)
_RANK = {p: i for i, p in enumerate(_BY_RANK)}


class TaskStatus(StrEnum):
    QUEUED = "queued"
    ASSIGNED = "assigned"  # committed to an agent; the prompt may not have reached it yet
    IN_PROGRESS = "in_progress"  # the prompt was delivered
    REVIEW = "review"  # the worker finished; a reviewer decides
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def parse(cls, text: str | TaskStatus) -> TaskStatus:
        word = str(text).strip().lower().replace("-", "_")
        try:
            return cls(word)
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise TaskError(f"unknown task status {text!r}; use one of {allowed}") from None


S = TaskStatus
LIVE = frozenset({S.QUEUED, S.ASSIGNED, S.IN_PROGRESS, S.REVIEW})
FINAL = frozenset({S.DONE, S.FAILED, S.CANCELLED})
HELD = frozenset({S.ASSIGNED, S.IN_PROGRESS})  # a worker holds the task

TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    # queued -> done/review: a person finished the work by hand (``squad task done ID``)
    S.QUEUED: frozenset({S.ASSIGNED, S.DONE, S.REVIEW, S.FAILED, S.CANCELLED}),
    # assigned -> done/review: the agent reported completion before delivery was confirmed
    S.ASSIGNED: frozenset({S.IN_PROGRESS, S.DONE, S.REVIEW, S.QUEUED, S.FAILED, S.CANCELLED}),
    # in_progress -> assigned: given again to the same agent after it was hibernated
    S.IN_PROGRESS: frozenset({S.ASSIGNED, S.DONE, S.REVIEW, S.QUEUED, S.FAILED, S.CANCELLED}),
    S.REVIEW: frozenset({S.DONE, S.QUEUED, S.FAILED, S.CANCELLED}),
    S.DONE: frozenset(),
    S.FAILED: frozenset({S.QUEUED}),
    S.CANCELLED: frozenset({S.QUEUED}),
}


def check_transition(old: TaskStatus | str, new: TaskStatus | str, task_id: int | None = None
                     ) -> None:
    """Raise :class:`TaskError` unless ``old -> new`` is in :data:`TRANSITIONS`."""
    old, new = TaskStatus(old), TaskStatus(new)
    if new in TRANSITIONS[old]:
        return
    who = f"task #{task_id}" if task_id is not None else "a task"
    if old == new:
        raise TaskError(f"{who} is {old} already")
    allowed = TRANSITIONS[old]
    if not allowed:
        hint = f"{old} is final"
    else:
        hint = "from " + str(old) + " it can become " + ", ".join(
            s.value for s in TaskStatus if s in allowed)
    raise TaskError(f"{who} is {old} and cannot become {new} ({hint})")


@dataclass(frozen=True)
class Task:
    """One task, as stored. Times are epoch seconds; agents are ``"team/agent"`` strings."""

    id: int
    prompt: str
    title: str
    priority: Priority = Priority.MEDIUM
    due: float | None = None
    created: float = 0.0
    tags: tuple[str, ...] = ()  # the agent must carry all of them
    team: str | None = None  # only agents of this team
    target: str | None = None  # only this agent ("team/agent")
    depends_on: tuple[int, ...] = ()
    timeout: float | None = None  # seconds from delivery
    max_attempts: int = 3  # failed attempts allowed before the task fails
    attempts: int = 0  # deliveries so far (an undelivered assignment does not count)
    failures: int = 0  # failed attempts so far (rejections are counted apart)
    status: TaskStatus = TaskStatus.QUEUED
    agent: str | None = None  # the worker holding it, or that last held it
    review_by: str | None = None  # reviewer ("team/agent") or None for no review
    rejections: int = 0
    not_before: float = 0.0  # backoff gate: not dispatched before this time
    queued_at: float | None = None
    assigned_at: float | None = None
    started_at: float | None = None  # delivery confirmed (in_progress)
    review_at: float | None = None  # entered review
    review_assigned_at: float | None = None  # committed to the reviewer
    review_started_at: float | None = None  # review prompt delivered
    finished_at: float | None = None  # done, failed or cancelled
    result: str | None = None  # excerpt of the worker's output
    error: str | None = None  # why it failed, was cancelled, or the last attempt failed
    feedback: tuple[str, ...] = ()  # one line per rejection, oldest first
    delivery_token: str | None = None  # fresh per assignment; appears in the delivered text
    updated: float = 0.0
    # The phases of the current delivery (to the worker, or to the reviewer in review):
    holder_id: str | None = None  # the receiving process ("pane:pid:start"); another = restarted
    sent_at: float | None = None  # the text was pasted into its input (None: not yet)
    sent_screen: str | None = None  # hash of the holder's screen just before it was sent
    enters: int = 0  # Enter presses made to submit it
    taken_screen: str | None = None  # hash of the screen when it was seen taken up
    repeat: int | None = None  # the recurring series it belongs to (squad dispatch --every)
    need: str = field(init=False, repr=False, compare=False)
    """What dispatch matches on (tags, team, target) as one string key, computed once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "need", need_key(self.tags, self.team, self.target))

    @property
    def holder(self) -> str | None:
        """The agent this task occupies now: the worker, or the reviewer once the review was
        handed to it; None while queued or finished."""
        if self.status in HELD:
            return self.agent
        if self.status is S.REVIEW and self.review_assigned_at is not None:
            return self.review_by
        return None

    @property
    def marker(self) -> str | None:
        """The line that identifies this delivery on the receiving agent's screen."""
        if self.delivery_token is None:
            return None
        kind = "review" if self.status is S.REVIEW else "task"
        return f"[squad {kind} #{self.id} {self.delivery_token}]"

    def marker_line(self, style: str = "line") -> str | None:
        """The marker as delivered: its own line, a comment line (``# [squad task ...]``)
        for programs that would run it (shells, REPLs), or nothing (style ``none``)."""
        if self.marker is None or style == "none":
            return None
        return f"# {self.marker}" if style == "comment" else self.marker

    def delivery_text(self, style: str = "line", *, again: bool = False) -> str:
        """What the worker receives: the prompt, every reviewer's feedback so far, the marker.
        ``again``: the agent was stopped (hibernated) while working on it and resumed in
        its conversation: it is asked to carry on, not to start over."""
        parts = [self.prompt.rstrip()]
        if again:
            parts.insert(0, "You were stopped while working on this task and have been "
                            "started again in the same conversation. Continue it where you "
                            "left off:")
        if self.feedback:
            n = len(self.feedback)
            what = "an earlier attempt" if n == 1 else f"{n} earlier attempts"
            lines = "\n".join(f"- {line}" for line in self.feedback)
            parts.append(f"A reviewer rejected {what} of this task. Address this feedback:\n"
                         f"{lines}")
        if marker := self.marker_line(style):
            parts.append(marker)
        return "\n\n".join(parts)

    def review_text(self, style: str = "line") -> str:
        """What the reviewer receives: the task, the worker's result, how to answer, the marker.

        The instructions never start a line with ``VERDICT:`` so :func:`parse_verdict` cannot
        mistake the request for the answer.
        """
        parts = [
            f"Review task #{self.id} ({self.title}), done by {self.agent or 'a person'}.",
            f"The task:\n{self.prompt.rstrip()}",
            f"The result:\n{(self.result or '(no output recorded)').rstrip()}",
            'Check the work, then end with one line that is exactly "VERDICT: APPROVED" or '
            '"VERDICT: REJECTED: " followed by what must change.',
        ]
        if marker := self.marker_line(style):
            parts.append(marker)
        return "\n\n".join(parts)

    def deadline(self) -> float | None:
        """When a delivered task times out, or None."""
        if self.timeout is None or self.started_at is None or self.status is not S.IN_PROGRESS:
            return None
        return self.started_at + self.timeout

    def timed_out(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now > deadline

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: enums as words, tuples as lists."""
        data = asdict(self)
        del data["need"]
        data["priority"] = self.priority.value
        data["status"] = self.status.value
        data["tags"] = list(self.tags)
        data["depends_on"] = list(self.depends_on)
        data["feedback"] = list(self.feedback)
        return data


def need_key(tags: tuple[str, ...], team: str | None, target: str | None) -> str:
    """Tasks with equal keys fit exactly the same agents. Strings cache their hash, so a set
    of keys is cheap to probe 10,000 times a tick; the separators are whitespace, which tags
    and names never contain."""
    return "\x1f".join(tags) + "\x1e" + (team or "") + "\x1e" + (target or "")


def order_key(task: Task) -> tuple:
    """Queue order: priority, then due date (none last), then creation time, then id."""
    due = task.due
    return (task.priority.rank, due is None, due or 0.0, task.created, task.id)


def is_ready(task: Task, dep_statuses: Mapping[int, TaskStatus | str], now: float) -> bool:
    """A queued task may be dispatched: every dependency is done and its backoff has passed."""
    return blocked_reason(task, dep_statuses, now) is None


def blocked_reason(task: Task, dep_statuses: Mapping[int, TaskStatus | str], now: float
                   ) -> str | None:
    """Why a queued task cannot be dispatched yet, in words, or None if it can."""
    waiting = []
    for dep in task.depends_on:
        status = dep_statuses.get(dep)
        if status is None:
            waiting.append(f"#{dep} (unknown)")
        elif status != S.DONE:
            waiting.append(f"#{dep} ({status})")
    if waiting:
        return "waits for " + ", ".join(waiting)
    if task.not_before > now:
        return f"backs off until {clock(task.not_before)} after {task.failures} failed attempt" \
            + ("s" if task.failures != 1 else "")
    return None


def clock(t: float) -> str:
    """Local wall-clock time, with the date when it is not today."""
    moment = datetime.fromtimestamp(t)
    if moment.date() == datetime.now().date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([mhd])", re.IGNORECASE)
_DURATION = re.compile(r"(-?\d+(?:\.\d+)?)\s*([smhd]?)", re.IGNORECASE)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_due(text: str | float | None, now: float | None = None) -> float | None:
    """A due date as epoch seconds: an ISO date (the end of that day, local time), an ISO time
    ("2026-12-01T15:00", local unless it names a zone), or a time from now ("30m", "2h", "1d").
    None and "" mean no due date; a number is taken as epoch seconds already."""
    if text is None:
        return None
    if isinstance(text, int | float):
        return float(text)
    now = time.time() if now is None else now
    t = text.strip()
    if not t:
        return None
    if m := _RELATIVE.fullmatch(t):
        return now + float(m.group(1)) * _UNITS[m.group(2).lower()]
    try:
        moment = datetime.fromisoformat(t)
    except ValueError:
        raise TaskError(
            f"due {text!r}: not a date; use an ISO date or time like 2026-12-01 or "
            "2026-12-01T15:00, or a time from now like 30m, 2h or 1d"
        ) from None
    if _DATE_ONLY.fullmatch(t):
        moment += timedelta(days=1, seconds=-1)  # "due on Dec 1" means by the end of it
    return moment.timestamp()


def parse_duration(text: str | float | None, what: str = "timeout") -> float | None:
    """Seconds from "90", "90s", "10m", "2h", "1d" or a number; None or "" mean none.
    Zero, negative and unreadable values are a :class:`TaskError`."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = _DURATION.fullmatch(str(text).strip())
        if not m:
            raise TaskError(f"{what} {text!r}: not a duration; use seconds or 90s, 10m, 2h, 1d")
        seconds = float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]
    if not seconds > 0 or seconds == float("inf"):
        raise TaskError(f"{what} {text!r}: must be more than zero seconds")
    return seconds


def parse_attempts(value: object) -> int:
    """``--attempts``: an integer from 1 to :data:`MAX_ATTEMPTS_LIMIT`."""
    try:
        n = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        n = 0
    if isinstance(value, bool) or not 1 <= n <= MAX_ATTEMPTS_LIMIT:
        raise TaskError(f"attempts {value!r}: must be a whole number from 1 to "
                        f"{MAX_ATTEMPTS_LIMIT}")
    return n


_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_clock(text: str) -> str:
    """``--at``: a local time of day, HH:MM (24 hours)."""
    m = _CLOCK.fullmatch(str(text).strip())
    if not m:
        raise TaskError(f"at {text!r}: not a time of day; use HH:MM like 09:30 or 17:00")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def next_slot(every: float | None, at: str | None, after: float, now: float) -> float:
    """The first time of a recurring series later than both ``after`` (the slot just
    taken) and ``now``: slots missed while nothing ran are skipped, never made up for.

    ``every`` alone: every that many seconds from the first run. ``at`` alone: daily at
    that local time. Both: from that time of day on, every ``every`` seconds (the day
    starts again at ``at``)."""
    floor = max(after, now)
    if at is None:
        assert every is not None and every > 0
        steps = int((floor - after) // every) + 1
        return after + steps * every
    hh, mm = (int(x) for x in at.split(":"))
    day = datetime.fromtimestamp(floor).replace(hour=hh, minute=mm, second=0, microsecond=0)
    for start in (day - timedelta(days=1), day, day + timedelta(days=1)):
        anchor = start.timestamp()
        if every is None:
            if anchor > floor:
                return anchor
            continue
        end = (start + timedelta(days=1)).timestamp()
        if anchor > floor:
            return anchor
        steps = int((floor - anchor) // every) + 1
        candidate = anchor + steps * every
        if candidate < end:
            return candidate
    return (day + timedelta(days=1)).timestamp()


def describe_repeat(every: float | None, at: str | None) -> str:
    """``every 15m``, ``daily at 09:00``, ``every 2h from 09:00``."""
    def span(seconds: float) -> str:
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size and seconds % size == 0:
                return f"{seconds / size:g}{unit}"
        return f"{seconds:g}s"

    if every is not None and at is not None:
        return f"every {span(every)} from {at}"
    if every is not None:
        return f"every {span(every)}"
    return f"daily at {at}"


def check_agent(value: str, what: str = "target") -> str:
    """``"team/agent"`` with layout-safe names, else a :class:`TaskError`."""
    team, _, agent = str(value).strip().partition("/")
    if not (NAME.fullmatch(team) and NAME.fullmatch(agent)):
        raise TaskError(f"{what} {value!r}: must be TEAM/AGENT, like frontend/dev")
    return f"{team}/{agent}"


def check_team(value: str) -> str:
    name = str(value).strip()
    if not NAME.fullmatch(name):
        raise TaskError(f"team {value!r}: not a team name (letters, digits, - and _)")
    return name


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags sorted and without repeats; each a non-empty word without spaces."""
    if isinstance(tags, str):
        tags = [tags]
    out = set()
    for tag in tags:
        word = str(tag).strip()
        if not word or any(c.isspace() for c in word):
            raise TaskError(f"tag {tag!r}: must be a non-empty word without spaces")
        out.add(word)
    return tuple(sorted(out))


def default_title(prompt: str) -> str:
    """The first non-empty line of the prompt, cut to :data:`TITLE_LIMIT` characters."""
    line = next((ln.strip() for ln in prompt.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    return line if len(line) <= TITLE_LIMIT else line[: TITLE_LIMIT - 1].rstrip() + "…"


def trim_result(text: str | None, limit: int = RESULT_LIMIT) -> str | None:
    """The end of an agent's output, at most ``limit`` characters, without trailing blanks."""
    if text is None:
        return None
    lines = [ln.rstrip() for ln in text.rstrip().splitlines()]
    out = "\n".join(lines).strip("\n")
    return out if len(out) <= limit else "…" + out[-(limit - 1):]


_VERDICT = re.compile(
    r"^[ \t>*•●⏺·\-]*VERDICT:\s*(APPROVED|REJECTED)\b[ \t]*[:\-–—]?[ \t]*(.*?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def parse_verdict(text: str, after: str | None = None) -> tuple[bool, str] | None:
    """The last ``VERDICT: APPROVED`` / ``VERDICT: REJECTED: reason`` line in a reviewer's
    output, as ``(approved, reason)``; None when there is none yet. With ``after`` (the
    review's ``marker``), only text after the marker's last appearance counts, so the worker's
    result quoted in the request can never decide it."""
    if after is not None:
        cut = text.rfind(after)
        if cut < 0:
            return None
        text = text[cut + len(after):]
    found = None
    for m in _VERDICT.finditer(text):
        found = m
    if found is None:
        return None
    approved = found.group(1).upper() == "APPROVED"
    reason = found.group(2).strip()
    if not approved and not reason:
        reason = "rejected without a reason"
    return approved, reason


def find_cycle(edges: Mapping[int, Iterable[int]], start: int) -> list[int] | None:
    """A dependency path from ``start`` back to ``start`` (``[start, ..., start]``) or None.
    ``edges`` maps a task id to the ids it depends on."""
    stack = [(start, iter(edges.get(start, ())))]
    path = [start]
    seen = {start}
    while stack:
        node, children = stack[-1]
        for child in children:
            if child == start:
                return [*path, start]
            if child not in seen:
                seen.add(child)
                stack.append((child, iter(edges.get(child, ()))))
                path.append(child)
                break
        else:
            stack.pop()
            path.pop()
    return None
