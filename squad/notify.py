"""Notifications: tell a person when an agent needs them, sent by the supervisor (UI or headless).

Five kinds of event: ``needs_input`` (an agent waits for an answer), ``stalled`` (silent while
working), ``exited`` (its program ended, not by squad's own stop, restart or down),
``task_done`` and ``task_failed``. Three channels, all optional:

* **desktop**: ``notify-send`` (Linux, when a desktop session is there) or ``osascript``
  (macOS);
* **a command per kind**: an argument vector run directly (never through a shell), the
  event's fields in ``SQUAD_EVENT_*`` environment variables and its JSON on standard input;
* **a webhook**, per kind or for every kind: one JSON ``POST``.

Every delivery runs in its own short-lived thread with a timeout, so a supervisor tick never
waits for a slow receiver, and a failure is logged (``squad.notify`` logger and a
``notify.failed`` event in the audit trail), never raised into the caller.

**Rate limits** (both configurable): at most one notification per (kind, agent) every
:data:`REPEAT_AFTER` seconds (60), and at most :data:`MAX_PER_MINUTE` (20) in any 60 seconds
in all. A notification that passes after others of its key were held back says how many in
``suppressed``. ``SQUAD_NOTIFY=0`` in the environment turns every channel off.

What happened is decided by plain functions over plain data: :func:`changes` turns the
previous and the new statuses of the agents (and task transitions from the audit trail) into
events; :class:`Watch` adds the one thing that needs memory, holding an exit back for a few
seconds to see whether squad itself caused it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from squad.errors import LayoutError, SquadError

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # a library: the application decides where logs go

KINDS = ("needs_input", "stalled", "exited", "task_done", "task_failed")
"""Every kind of notification, as written in the layout's ``[notify]`` table."""

REPEAT_AFTER = 60.0
"""Default seconds before the same kind of notification about the same agent goes out again."""
MAX_PER_MINUTE = 20
"""Default number of notifications sent in any 60 seconds, all kinds and agents together."""
TIMEOUT = 5.0
"""Default seconds a command or webhook may take before it counts as failed."""
SETTLE = 5.0
"""Seconds an exit is held back to find squad's own stop, restart or down in the audit trail
(they are recorded just after the agent's process is gone)."""
MAX_IN_FLIGHT = 16
"""Deliveries running at once; more are dropped (and logged) rather than queued."""

LIVE_STATUSES = frozenset({"starting", "working", "idle", "needs-input", "stalled", "paused"})
"""Statuses of an agent whose program runs; leaving them for exited or down is an exit."""
INTENT_ACTIONS = frozenset({"stop", "restart", "down"})
"""Audit-trail actions by which squad itself ends an agent's program."""


# -- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KindConfig:
    """What to do for one kind of event."""

    kind: str
    enabled: bool = True
    """``false`` in the layout silences the kind on every channel."""
    command: tuple[str, ...] | None = None
    """A program and its arguments, run for each event of this kind."""
    webhook: str | None = None
    """A URL for this kind; replaces the catch-all ``webhook``."""
    desktop: bool | None = None
    """Whether this kind makes a desktop notification; ``None``: the ``[notify]`` setting."""


@dataclass(frozen=True)
class NotifyConfig:
    """The layout's ``[notify]`` table, checked. The default notifies on the desktop only."""

    desktop: bool = True
    webhook: str | None = None
    """A URL that receives every kind of event not given its own ``webhook``."""
    repeat_after: float = REPEAT_AFTER
    max_per_minute: int = MAX_PER_MINUTE
    timeout: float = TIMEOUT
    kinds: tuple[KindConfig, ...] = tuple(KindConfig(k) for k in KINDS)

    def for_kind(self, kind: str) -> KindConfig:
        return next((k for k in self.kinds if k.kind == kind), KindConfig(kind))

    def to_table(self) -> dict[str, Any]:
        """The table :func:`parse_notify` reads back to an equal config (for ``layout.dump``);
        only what differs from the defaults."""
        table: dict[str, Any] = {}
        default = NotifyConfig()
        for name in ("desktop", "webhook", "repeat_after", "max_per_minute", "timeout"):
            value = getattr(self, name)
            if value != getattr(default, name) and value is not None:
                table[name] = value
        for k in self.kinds:
            if not k.enabled:
                table[k.kind] = False
            elif k.webhook is None and k.desktop is None and k.command is not None:
                table[k.kind] = list(k.command)
            elif k.webhook is not None or k.desktop is not None or k.command is not None:
                sub: dict[str, Any] = {}
                if k.command is not None:
                    sub["command"] = list(k.command)
                if k.webhook is not None:
                    sub["webhook"] = k.webhook
                if k.desktop is not None:
                    sub["desktop"] = k.desktop
                table[k.kind] = sub
        return table


class NotifyError(LayoutError):
    """Problems in a ``[notify]`` table: ``problems`` holds every one as (key path, message),
    the way :mod:`squad.layout` records them; ``where`` and ``message`` are the first."""

    def __init__(self, problems: list[tuple[str, str]], file: str = "") -> None:
        self.problems = problems
        self.file = file
        self.where, self.message = problems[0]
        more = len(problems) - 1
        text = f"{self.where}: {self.message}" + (
            f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
        SquadError.__init__(self, f"{file}: {text}" if file else text)


def _show(value: object) -> str:
    """A value as a user would recognise it from their TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__} value"


_SETTINGS = ("desktop", "webhook", "repeat_after", "max_per_minute", "timeout")


def parse_notify(table: object, where: str = "notify") -> NotifyConfig:
    """Check a layout's ``[notify]`` table and build its config.

    Raises :class:`NotifyError` (a :class:`LayoutError`) listing every problem with its key
    path, e.g. ``notify.needs_input: must be a list of strings (a command), a table or false,
    got 5``.
    """
    problems: list[tuple[str, str]] = []

    def bad(path: str, message: str) -> None:
        problems.append((path, message))

    if not isinstance(table, dict):
        raise NotifyError([(where, f"must be a table ([notify]), got {_show(table)}")])
    settings: dict[str, Any] = {}
    kinds: dict[str, KindConfig] = {}
    for key, value in table.items():
        path = f"{where}.{key}"
        if key == "desktop":
            if isinstance(value, bool):
                settings[key] = value
            else:
                bad(path, f"must be true or false, got {_show(value)}")
        elif key == "webhook":
            if (url := _url(path, value, bad)) is not None:
                settings[key] = url
        elif key in ("repeat_after", "timeout"):
            ok = isinstance(value, int | float) and not isinstance(value, bool) and (
                value >= 0 if key == "repeat_after" else 0 < value <= 600)
            if ok:
                settings[key] = float(value)
            else:
                what = ("a number of seconds, 0 or more" if key == "repeat_after"
                        else "a number of seconds above 0 (at most 600)")
                bad(path, f"must be {what}, got {_show(value)}")
        elif key == "max_per_minute":
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                settings[key] = value
            else:
                bad(path, f"must be a positive integer, got {_show(value)}")
        elif key in KINDS:
            kind = _kind(key, path, value, bad)
            if kind is not None:
                kinds[key] = kind
        else:
            known = (*_SETTINGS, *KINDS)
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {_show(close[0])}?" if close else (
                "known keys: " + ", ".join(known))
            bad(path, f"unknown key {_show(key)}; {hint}")
    if problems:
        raise NotifyError(problems)
    return NotifyConfig(**settings, kinds=tuple(kinds.get(k, KindConfig(k)) for k in KINDS))


def _url(path: str, value: object, bad: Any) -> str | None:
    if not isinstance(value, str):
        bad(path, f"must be an http or https URL, got {_show(value)}")
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(
            c.isspace() for c in value):
        bad(path, f"must be an http or https URL, got {_show(value)}")
        return None
    return value


def _command(path: str, value: object, bad: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not value:
        bad(path, "must be a non-empty list of strings (a program and its arguments), got "
                  f"{_show(value)}")
        return None
    for i, arg in enumerate(value):
        if not isinstance(arg, str) or "\0" in arg:
            bad(f"{path}[{i}]", f"must be a string, got {_show(arg)}")
            return None
    if not value[0].strip():
        bad(f"{path}[0]", "must name a program, got an empty string")
        return None
    return tuple(value)


def _kind(kind: str, path: str, value: object, bad: Any) -> KindConfig | None:
    if isinstance(value, bool):
        return KindConfig(kind, enabled=value)
    if isinstance(value, list):
        command = _command(path, value, bad)
        return None if command is None else KindConfig(kind, command=command)
    if not isinstance(value, dict):
        bad(path, "must be a list of strings (a command), a table { command, webhook, desktop } "
                  f"or false, got {_show(value)}")
        return None
    config = KindConfig(kind)
    ok = True
    for key, sub in value.items():
        subpath = f"{path}.{key}"
        if key == "command":
            command = _command(subpath, sub, bad)
            ok &= command is not None
            config = dataclasses.replace(config, command=command)
        elif key == "webhook":
            url = _url(subpath, sub, bad)
            ok &= url is not None
            config = dataclasses.replace(config, webhook=url)
        elif key == "desktop":
            if isinstance(sub, bool):
                config = dataclasses.replace(config, desktop=sub)
            else:
                bad(subpath, f"must be true or false, got {_show(sub)}")
                ok = False
        else:
            close = difflib.get_close_matches(key, ("command", "webhook", "desktop"), n=1)
            hint = f"did you mean {_show(close[0])}?" if close else (
                "known keys: command, webhook, desktop")
            bad(subpath, f"unknown key {_show(key)}; {hint}")
            ok = False
    return config if ok else None


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One thing worth telling a person about."""

    kind: str
    target: str
    """The agent (``team/name``); for a task event, the agent it concerns (may be empty)."""
    at: float
    """Wall-clock time it was noticed."""
    fields: dict[str, Any] = field(default_factory=dict, hash=False)

    def title(self, squad: str) -> str:
        f = self.fields
        who = self.target or "an agent"
        if self.kind == "needs_input":
            what = f"{who} needs input"
        elif self.kind == "stalled":
            what = f"{who} stalled"
        elif self.kind == "exited":
            code = f.get("exit_code")
            what = f"{who} exited" + (f" (exit status {code})" if code is not None else "")
        elif self.kind == "task_done":
            what = f"task #{f.get('task', '?')} done"
        elif self.kind == "task_failed":
            what = f"task #{f.get('task', '?')} failed"
        else:
            what = f"{who}: {self.kind}"
        return f"squad {squad}: {what}"

    def message(self) -> str:
        f = self.fields
        if self.kind in ("task_done", "task_failed"):
            text = str(f.get("title") or "")
            if self.target:
                text += f" ({self.target})"
            if f.get("reason"):
                text += f": {f['reason']}"
            return text.strip()
        parts = []
        if f.get("task"):
            parts.append(f"task {f['task']}")
        if f.get("excerpt"):
            parts.append(str(f["excerpt"]))
        elif self.kind == "stalled":
            parts.append("no output for a while although it was working")
        elif self.kind == "needs_input":
            parts.append("a question waits for an answer")
        elif self.kind == "exited":
            parts.append(f"was {f.get('previous', 'running')}; now {f.get('status', 'exited')}")
        return " · ".join(parts)

    def to_json(self, squad: str) -> dict[str, Any]:
        title, message = self.title(squad), self.message()
        data: dict[str, Any] = {
            "squad": squad, "kind": self.kind, "target": self.target,
            "time": datetime.fromtimestamp(self.at).astimezone().isoformat(timespec="seconds"),
            "ts": round(self.at, 3), "title": title, "message": message,
            "text": f"{title}: {message}" if message else title,  # what chat webhooks show
        }
        for key, value in self.fields.items():
            data.setdefault(key, value)
        return data


def _excerpt(screen: object, lines: int = 3, width: int = 200) -> str:
    """The last few non-blank lines of a screen: what the agent is asking or saying."""
    if not isinstance(screen, str) or not screen.strip():
        return ""
    tail = [ln.strip() for ln in screen.splitlines() if ln.strip()][-lines:]
    return " / ".join(tail)[-width:]


def changes(before: Mapping[str, Mapping[str, Any]] | None,
            after: Mapping[str, Mapping[str, Any]],
            audit: Iterable[Mapping[str, Any]] = (), *, now: float) -> list[Event]:
    """The events between two ticks, from plain data.

    ``before`` and ``after`` map ``team/agent`` to a row with at least ``status`` (as
    ``AgentRow.to_json()`` gives it; optional ``role``, ``task``, ``exit_code``, ``screen``).
    ``before`` is ``None`` on the first tick. An agent entering ``needs-input`` or
    ``stalled`` is reported, and so is one already there on the first tick (it waits for a
    person, however long nobody supervised it); one leaving a live status for ``exited`` or
    ``down`` is reported as ``exited`` (:class:`Watch` drops those squad caused), never one
    found exited on the first tick (old news). ``audit`` holds the audit-trail events
    written since the previous tick; each ``task.done`` and ``task.failed`` becomes an event.
    """
    events: list[Event] = []
    for target, row in after.items():
        new = row.get("status")
        if before is None:
            old = "" if new in ("needs-input", "stalled") else None
        else:
            old = (before.get(target) or {}).get("status")
        if old is None or new == old:
            continue
        common = {"status": new, "previous": old or None, "role": row.get("role"),
                  "task": row.get("task")}
        if new == "needs-input":
            events.append(Event("needs_input", target, now,
                                {**common, "excerpt": _excerpt(row.get("screen"))}))
        elif new == "stalled":
            events.append(Event("stalled", target, now,
                                {**common, "excerpt": _excerpt(row.get("screen"))}))
        elif new in ("exited", "down") and old in LIVE_STATUSES:
            events.append(Event("exited", target, now,
                                {**common, "exit_code": row.get("exit_code"),
                                 "excerpt": _excerpt(row.get("screen"))}))
    for ev in audit:
        action = ev.get("action")
        if action not in ("task.done", "task.failed"):
            continue
        kind = "task_done" if action == "task.done" else "task_failed"
        events.append(Event(kind, str(ev.get("target") or ""), float(ev.get("ts") or now),
                            {"task": ev.get("task"), "title": ev.get("title"),
                             "reason": ev.get("reason"), "by": ev.get("by")}))
    return events


def intents(audit: Iterable[Mapping[str, Any]]) -> list[tuple[str, float]]:
    """(scope, time) of squad's own stops, restarts and downs in audit-trail events. The scope
    is an agent (``team/name``), a team, or ``*`` for a whole squad's ``down``."""
    out = []
    for ev in audit:
        if ev.get("action") in INTENT_ACTIONS:
            out.append((str(ev.get("target") or "*"), float(ev.get("ts") or 0.0)))
    return out


def _covers(scope: str, target: str) -> bool:
    return scope in ("*", target) or ("/" not in scope and target.startswith(scope + "/"))


class Watch:
    """:func:`changes` tick after tick, minus the exits squad caused.

    squad records a stop, restart or down just *after* the agent's process is gone, so an
    exit is held for ``settle`` seconds; it is dropped if an intent covering the agent was
    recorded after the last tick that saw it running (minus ``slack`` for clock skew between
    processes). Plain data in, events out: no clock, files or processes of its own.
    """

    def __init__(self, settle: float = SETTLE, slack: float = 1.0) -> None:
        self.settle = settle
        self.slack = slack
        self.previous: dict[str, dict[str, Any]] | None = None
        self.alive_at: dict[str, float] = {}
        self.pending: list[tuple[Event, float]] = []  # exit, last time seen running
        self.intents: list[tuple[str, float]] = []

    def step(self, rows: Mapping[str, Mapping[str, Any]], audit: Sequence[Mapping[str, Any]],
             now: float) -> list[Event]:
        found = changes(self.previous, rows, audit, now=now)
        self.intents += intents(audit)
        self.intents = [(s, t) for s, t in self.intents if t > now - 600]
        out = []
        for ev in found:
            if ev.kind == "exited":
                self.pending.append((ev, self.alive_at.get(ev.target, now - 3600)))
            else:
                out.append(ev)
        waiting = []
        for ev, alive in self.pending:
            if any(_covers(scope, ev.target) and t >= alive - self.slack
                   for scope, t in self.intents):
                continue  # squad ended it on purpose
            if now - ev.at >= self.settle:
                out.append(ev)
            else:
                waiting.append((ev, alive))
        self.pending = waiting
        for target, row in rows.items():
            if row.get("status") in LIVE_STATUSES:
                self.alive_at[target] = now
        self.previous = {t: dict(r) for t, r in rows.items()}
        return out


class AuditTail:
    """New lines of a squad's audit trail since the last read, without rereading the file."""

    def __init__(self, path: Path, *, from_start: bool = False) -> None:
        self.path = path
        self.offset = 0
        if not from_start:
            try:
                self.offset = path.stat().st_size
            except OSError:
                self.offset = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            size = self.path.stat().st_size
        except OSError:
            return []
        if size < self.offset:
            self.offset = 0  # replaced or truncated: start over
        if size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return []  # a line still being written
        self.offset += end + 1
        out = []
        for line in data[:end].splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict):
                out.append(ev)
        return out


# -- rate limits ------------------------------------------------------------------------------


class RateLimit:
    """One notification per key every ``repeat_after`` seconds, ``per_minute`` in all."""

    def __init__(self, repeat_after: float = REPEAT_AFTER,
                 per_minute: int = MAX_PER_MINUTE) -> None:
        self.repeat_after = repeat_after
        self.per_minute = per_minute
        self.last: dict[tuple[str, str], float] = {}
        self.held: dict[tuple[str, str], int] = {}
        self.sent: deque[float] = deque()

    def allow(self, key: tuple[str, str], now: float) -> int | None:
        """``None`` when the notification must be held back; else how many of its key were
        held back since the last one that went out."""
        while self.sent and self.sent[0] <= now - 60:
            self.sent.popleft()
        last = self.last.get(key)
        if (last is not None and now - last < self.repeat_after) or (
                len(self.sent) >= self.per_minute):
            self.held[key] = self.held.get(key, 0) + 1
            return None
        self.last[key] = now
        self.sent.append(now)
        return self.held.pop(key, 0)


# -- delivery ---------------------------------------------------------------------------------


def desktop_argv(title: str, message: str, *, urgent: bool = False,
                 which: Any = shutil.which, platform: str = sys.platform,
                 environ: Mapping[str, str] | None = None) -> list[str] | None:
    """The command showing a desktop notification here, or ``None`` where there is none.

    On Linux only with a desktop session (a display or a session bus), so a headless server
    does not log a failure per event. AppleScript gets the texts as arguments, never as code.
    """
    env = os.environ if environ is None else environ
    if platform == "darwin":
        osa = which("osascript")
        if osa is None:
            return None
        return [osa, "-e", "on run argv", "-e",
                "display notification (item 2 of argv) with title (item 1 of argv)",
                "-e", "end run", title, message]
    send = which("notify-send")
    if send is None or not any(env.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY",
                                                     "DBUS_SESSION_BUS_ADDRESS")):
        return None
    return [send, "--app-name=squad", f"--urgency={'critical' if urgent else 'normal'}",
            title, message]


def event_env(payload: Mapping[str, Any]) -> dict[str, str]:
    """``SQUAD_EVENT_KIND``, ``SQUAD_EVENT_TARGET``, ... one variable per scalar field."""
    env = {}
    for key, value in payload.items():
        if isinstance(value, dict | list) or value is None:
            continue
        name = "SQUAD_EVENT_" + "".join(c if c.isalnum() else "_" for c in key).upper()
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        env[name] = text.replace("\0", "")
    return env


class Notifier:
    """Sends notifications for one squad as its config says; never raises, never blocks.

    The supervisor that holds the squad's lock calls :meth:`tick` with each snapshot's rows;
    anything else may call :meth:`notice` directly.
    """

    def __init__(self, config: NotifyConfig, squad_name: str, *,
                 audit_path: Path | None = None, clock: Any = time.time,
                 which: Any = shutil.which, settle: float = SETTLE) -> None:
        self.config = config
        self.squad = squad_name
        self.clock = clock
        self.which = which
        self.limit = RateLimit(config.repeat_after, config.max_per_minute)
        self.watch = Watch(settle)
        self.enabled = os.environ.get("SQUAD_NOTIFY", "1").strip().lower() not in (
            "0", "off", "false", "no")
        if audit_path is None:
            from squad.events import log_path

            audit_path = log_path(squad_name)
        self.audit = AuditTail(audit_path)
        self.stats = {"noticed": 0, "sent": 0, "held": 0, "delivered": 0, "failed": 0,
                      "dropped": 0}
        self.failures: deque[str] = deque(maxlen=20)
        """The latest failures, one line each, for a UI to show."""
        self._lock = threading.Condition()
        self._in_flight = 0
        self._closed = False

    # -- deciding -----------------------------------------------------------------------

    def tick(self, rows: Mapping[str, Mapping[str, Any]] | Iterable[Any],
             now: float | None = None, screens: Mapping[str, str] | None = None
             ) -> list[Event]:
        """One supervisor tick: the agents' rows (``AgentRow`` objects or ``target -> dict``),
        new audit-trail lines, and what comes of them; returns the events sent."""
        now = self.clock() if now is None else now
        if isinstance(rows, Mapping):
            table = {t: dict(r) for t, r in rows.items()}
        else:
            table = {r.target: r.to_json() for r in rows}
        for target, screen in (screens or {}).items():
            if target in table:
                table[target]["screen"] = screen
        sent = []
        for ev in self.watch.step(table, self.audit.read(), now):
            if self.send(ev):
                sent.append(ev)
        return sent

    def notice(self, kind: str, target: str, **fields: Any) -> bool:
        """Notify of one event now (subject to the rate limits); whether it went out."""
        if kind not in KINDS:
            log.warning("unknown notification kind %r", kind)
            return False
        return self.send(Event(kind, target, self.clock(), fields))

    def configure(self, config: NotifyConfig) -> None:
        """Take a new config (the layout was brought up again) without forgetting what was
        already seen or sent."""
        self.config = config
        self.limit.repeat_after = config.repeat_after
        self.limit.per_minute = config.max_per_minute

    def send(self, event: Event) -> bool:
        """Send one event on every channel its kind has, unless held back; whether it went."""
        self.stats["noticed"] += 1
        kind = self.config.for_kind(event.kind)
        if not self.enabled or not kind.enabled or self._closed:
            return False
        held = self.limit.allow((event.kind, event.target), self.clock())
        if held is None:
            self.stats["held"] += 1
            log.info("notification held back by the rate limit: %s %s", event.kind,
                     event.target)
            return False
        payload = event.to_json(self.squad)
        if held:
            payload["suppressed"] = held
        self.stats["sent"] += 1
        desktop = self.config.desktop if kind.desktop is None else kind.desktop
        if desktop:
            argv = desktop_argv(payload["title"], payload["message"] or payload["title"],
                                urgent=event.kind == "needs_input", which=self.which)
            if argv is not None:
                self._spawn("desktop", event, self._run, argv, None, None)
        if kind.command:
            self._spawn("command", event, self._run, list(kind.command), payload,
                        event_env(payload))
        url = kind.webhook or self.config.webhook
        if url:
            self._spawn("webhook", event, self._post, url, payload)
        return True

    # -- delivering ---------------------------------------------------------------------

    def _spawn(self, channel: str, event: Event, fn: Any, *args: Any) -> None:
        with self._lock:
            if self._in_flight >= MAX_IN_FLIGHT:
                self.stats["dropped"] += 1
                self._failed(channel, event, f"{MAX_IN_FLIGHT} deliveries already running")
                return
            self._in_flight += 1

        def run() -> None:
            try:
                fn(*args)
                with self._lock:
                    self.stats["delivered"] += 1
            except Exception as exc:  # noqa: BLE001 - a receiver's failure is only logged
                self._failed(channel, event, _why(exc))
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._lock.notify_all()

        threading.Thread(target=run, name=f"squad-notify-{channel}", daemon=True).start()

    def _run(self, argv: list[str], payload: Mapping[str, Any] | None,
             env: Mapping[str, str] | None) -> None:
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        data = None if payload is None else json.dumps(payload).encode()
        try:
            proc = subprocess.run(argv, input=data, capture_output=True, env=full_env,
                                  timeout=self.config.timeout, check=False,
                                  stdin=subprocess.DEVNULL if data is None else None)
        except FileNotFoundError:
            raise RuntimeError(f"{argv[0]}: command not found") from None
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{argv[0]} took longer than {self.config.timeout:g}s") from None
        if proc.returncode != 0:
            said = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RuntimeError(f"{argv[0]} exited with status {proc.returncode}"
                               + (f": {said[-1]}" if said else ""))

    def _post(self, url: str, payload: Mapping[str, Any]) -> None:
        import urllib.request  # here, not at the top: it costs ~20 ms to import

        from squad import __version__

        request = urllib.request.Request(
            url, data=json.dumps(payload).encode(), method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"squad/{__version__}"})
        with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
            response.read(65536)

    def _failed(self, channel: str, event: Event, why: str) -> None:
        with self._lock:
            self.stats["failed"] += 1
        line = f"{channel} notification {event.kind} for {event.target or '-'} failed: {why}"
        self.failures.append(line)
        log.warning("%s", line)
        try:
            from squad import events

            events.record(self.squad, "notify.failed", target=event.target or None,
                          by="supervisor", reason=f"{channel}: {why}", kind=event.kind)
        except Exception:  # noqa: BLE001 - the audit trail is best effort here
            log.exception("could not record a notification failure")

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Deliveries still running."""
        return self._in_flight

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for running deliveries; whether all finished."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Send nothing more; give running deliveries ``timeout`` seconds to finish (they are
        daemon threads: any still running end with the process)."""
        self._closed = True
        self.wait(timeout)


def _why(exc: BaseException) -> str:
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot reach it ({exc.reason})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
