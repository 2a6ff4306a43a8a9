"""The audit trail: every control action, status change and task transition, one JSON line each.

The log is append-only: each event is one ``write`` to a file opened with ``O_APPEND`` under
an exclusive ``flock``, so several writers (the CLI, the UI, a headless supervisor, agents
running ``squad`` themselves) never interleave or lose lines. The file is private (0600).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from squad.errors import StorageError, storage_error
from squad.procs import system_cpu_times
from squad.state import NOFOLLOW, squad_dir

log = logging.getLogger(__name__)

SOURCES = ("cli", "ui", "policy", "supervisor", "agent")


MAX_BYTES = 8 * 1024 * 1024  # the live log is rotated past this size ...
KEEP = 5  # ... into events.1.jsonl (newest) to events.5.jsonl (oldest, then dropped)


def log_path(squad: str) -> Path:
    return squad_dir(squad) / "events.jsonl"


def rotated_paths(path: Path) -> list[Path]:
    """The rotated logs of ``path``, oldest first (events.5.jsonl ... events.1.jsonl)."""
    return [path.with_name(f"{path.stem}.{i}{path.suffix}") for i in range(KEEP, 0, -1)]


_cpu_prev: tuple[float, float] | None = None
_cpu_last: float | None = None
# Jiffies of all CPUs between two readings before a new figure is computed (about half a
# second on two cores): closer readings measure noise.
_CPU_SPAN = 100.0


def system_state(squad: str | None = None) -> dict[str, float | None]:
    """System CPU % and memory % for an event.

    CPU is measured between two readings: since the previous call in this process, else
    taken from the snapshot a running supervisor published for ``squad`` (at most a few
    seconds old); when neither exists it is None (unknown) rather than an average since boot.
    """
    global _cpu_prev, _cpu_last
    cpu: float | None = None
    now = system_cpu_times()
    if now is not None and _cpu_prev is not None and now[1] - _cpu_prev[1] >= _CPU_SPAN:
        cpu = round(100.0 * (1 - (now[0] - _cpu_prev[0]) / (now[1] - _cpu_prev[1])), 1)
        _cpu_prev, _cpu_last = now, cpu
    elif now is not None and _cpu_prev is not None:
        cpu = _cpu_last  # too soon after the last reading to measure anything new
    elif now is not None:
        _cpu_prev = now
    if cpu is None and squad is not None:
        cpu = _published_cpu(squad)
    mem: float | None = None
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: float(line.split()[1]) for line in f}
        mem = round(100.0 * (1 - info["MemAvailable"] / info["MemTotal"]), 1)
    except (OSError, ValueError, KeyError, IndexError, ZeroDivisionError):
        import psutil

        mem = round(psutil.virtual_memory().percent, 1)
    return {"cpu": cpu, "mem": mem}


def _published_cpu(squad: str, max_age: float = 5.0) -> float | None:
    """The system CPU % a running supervisor published lately (its snapshot), if any."""
    try:
        fd = os.open(squad_dir(squad) / "snapshot.json", os.O_RDONLY | NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read())
        if time.time() - float(data.get("at", 0)) <= max_age:
            return float(data["cpu"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def record(
    squad: str,
    action: str,
    *,
    target: str | None = None,
    by: str = "cli",
    reason: str | None = None,
    system: dict[str, float | None] | None = None,
    **data: object,
) -> dict[str, object]:
    """Append one event to the squad's audit log and return it. Raises
    :class:`squad.errors.StorageError` when the log cannot be written."""
    now = time.time()
    event: dict[str, object] = {
        "ts": round(now, 3),
        "time": datetime.fromtimestamp(now).astimezone().isoformat(timespec="milliseconds"),
        "squad": squad,
        "action": action,
        "target": target,
        "by": by,
        "reason": reason,
        "system": system if system is not None else system_state(squad),
    }
    event.update({k: v for k, v in data.items() if v is not None})
    path = log_path(squad)
    try:
        append(path, event, rotate=True)
    except OSError as exc:
        raise storage_error(path, exc) from None
    return event


def record_many(squad: str, items: list[dict[str, object]]) -> None:
    """Several events at once (each a dict of :func:`record`'s arguments), in one locked
    write: a squad of a hundred agents brought up is one append, not a hundred."""
    now = time.time()
    system = system_state(squad)
    stamp = datetime.fromtimestamp(now).astimezone().isoformat(timespec="milliseconds")
    lines = []
    for item in items:
        item = dict(item)
        event: dict[str, object] = {"ts": round(now, 3), "time": stamp, "squad": squad,
                                    "action": item.pop("action"),
                                    "target": item.pop("target", None),
                                    "by": item.pop("by", "cli"),
                                    "reason": item.pop("reason", None), "system": system}
        event.update({k: v for k, v in item.items() if v is not None})
        lines.append(json.dumps(event, ensure_ascii=False, default=str))
    path = log_path(squad)
    try:
        append(path, "\n".join(lines), rotate=True)
    except OSError as exc:
        raise storage_error(path, exc) from None


def record_quietly(squad: str, action: str, **kw: object) -> dict[str, object] | None:
    """:func:`record` for the supervisor's own bookkeeping: a log that cannot be written
    (a full disk) is logged and skipped, so supervision goes on and recovers by itself."""
    try:
        return record(squad, action, **kw)  # type: ignore[arg-type]
    except StorageError as exc:
        log.warning("event %s not recorded: %s", action, exc)
        return None


def append(path: Path, event: dict[str, object] | str, *, rotate: bool = False) -> None:
    """One event (or lines already written as JSON) as one ``write`` under an exclusive
    lock, never through a symbolic link. With ``rotate``, a log past :data:`MAX_BYTES` is
    rotated under the same lock. Raises OSError."""
    text = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False,
                                                           default=str)
    line = (text + "\n").encode()
    for _ in range(5):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                current = None
            if current != os.fstat(fd).st_ino:
                continue  # rotated while this writer waited for the lock: open the new one
            os.write(fd, line)
            if rotate and os.fstat(fd).st_size > MAX_BYTES:
                _rotate(path)
            return
        finally:
            os.close(fd)
    raise OSError(f"{path} kept changing while writing to it")


def _rotate(path: Path) -> None:
    """events.jsonl -> events.1.jsonl -> ... -> events.5.jsonl (the oldest is dropped).
    Called with the live file's lock held; renames keep what readers hold open valid."""
    older = rotated_paths(path)  # oldest first
    try:
        older[0].unlink()
    except FileNotFoundError:
        pass
    for src, dst in zip(older[1:], older[:-1], strict=True):
        try:
            os.rename(src, dst)
        except FileNotFoundError:
            pass
    os.rename(path, older[-1])


def valid(event: object) -> bool:
    """Whether a parsed line is an event squad wrote: an object with a string action, a
    numeric time, and strings (or nothing) where strings belong. Anything else in the file
    (another program's line, a hand edit, a torn write) is skipped and counted."""
    if not isinstance(event, dict):
        return False
    ts = event.get("ts")
    if not isinstance(event.get("action"), str) or isinstance(ts, bool) or not isinstance(
            ts, int | float) or ts != ts:
        return False
    for key in ("target", "by", "reason", "time", "squad", "error", "result", "status"):
        value = event.get(key)
        if value is not None and not isinstance(value, str):
            return False
    system = event.get("system")
    if system is not None and not (isinstance(system, dict) and all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool))
            for v in system.values())):
        return False
    return True


def _matches(event: dict, target: str | None, since: float | None) -> bool:
    if since is not None and float(event["ts"]) < since:
        return False
    if target:
        t = event.get("target") or ""
        return t == target or t.startswith(target.rstrip("/") + "/") or (
            "/" not in target and t.split("/")[0] == target
        )
    return True


def _parse(line: bytes) -> dict | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if valid(event) else None


class Tail:
    """Reads a squad's audit trail incrementally, across rotations: each :meth:`read` returns
    only the events appended since the last one. ``skipped`` counts lines that were not
    events. The UI's events panel and ``squad events --follow`` use it."""

    def __init__(self, squad: str, *, history: bool = True) -> None:
        """``history``: also read the rotated files (all of the trail); otherwise start at
        the beginning of the live file."""
        self.path = log_path(squad)
        self.skipped = 0
        self._fd: int | None = None
        self._inode: int | None = None
        self._partial = b""
        self._backlog = [p for p in rotated_paths(self.path) if p.exists()] if history else []

    def _open(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | NOFOLLOW)
        except OSError:
            return False
        self.close()
        self._fd, self._inode, self._partial = fd, os.fstat(fd).st_ino, b""
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _lines(self, data: bytes) -> list[dict]:
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            if not line.strip():
                continue
            event = _parse(line)
            if event is None:
                self.skipped += 1
            else:
                out.append(event)
        return out

    def read(self) -> list[dict]:
        out: list[dict] = []
        while self._backlog:  # rotated files first, oldest first, read whole
            path = self._backlog.pop(0)
            try:
                fd = os.open(path, os.O_RDONLY | NOFOLLOW)
            except OSError:
                continue
            try:
                out += self._lines(_read_all(fd))
                if self._partial:
                    out += self._lines(b"\n")
            finally:
                os.close(fd)
        if self._fd is None and not self._open():
            return out
        assert self._fd is not None
        out += self._lines(_read_all(self._fd))
        try:
            current = os.stat(self.path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            current = None
        if current is not None and current != self._inode:
            # Rotated (maybe more than once) since the last read: the rest of the old file
            # was read above; every newer rotated file is read whole, then the live one.
            if self._partial:
                out += self._lines(b"\n")
            newer = rotated_paths(self.path)  # oldest first
            inodes = [_inode(p) for p in newer]
            if self._inode in inodes:
                newer = newer[inodes.index(self._inode) + 1:]
            for path in newer:
                try:
                    fd = os.open(path, os.O_RDONLY | NOFOLLOW)
                except OSError:
                    continue
                try:
                    out += self._lines(_read_all(fd))
                    if self._partial:
                        out += self._lines(b"\n")
                finally:
                    os.close(fd)
            if self._open():
                out += self._lines(_read_all(self._fd))
        return out


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path, follow_symlinks=False).st_ino
    except OSError:
        return None


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def read(squad: str, *, target: str | None = None, since: float | None = None,
         skipped: list[int] | None = None) -> list[dict]:
    """Events in the order they were written (rotated files included), filtered by target
    (agent or team) and time. Lines that are not events are skipped; their count is
    appended to ``skipped`` when a list is given."""
    tail = Tail(squad)
    try:
        found = [e for e in tail.read() if _matches(e, target, since)]
    finally:
        tail.close()
    if skipped is not None:
        skipped.append(tail.skipped)
    return found


def follow(
    squad: str, *, target: str | None = None, since: float | None = None, poll: float = 0.2
) -> Iterator[dict]:
    """Yield existing events, then new ones as they are appended, until interrupted."""
    tail = Tail(squad)
    try:
        while True:
            batch = tail.read()
            for event in batch:
                if _matches(event, target, since):
                    yield event
            if not batch:
                time.sleep(poll)
    finally:
        tail.close()


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: an ISO time ("2026-11-22T10:00"), or an age ("90s", "15m", "2h", "1d")."""
    from squad.errors import SquadError

    now = time.time() if now is None else now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip()
    if t and t[-1] in units and t[:-1].replace(".", "", 1).isdigit():
        return now - float(t[:-1]) * units[t[-1]]
    try:
        return datetime.fromisoformat(t).timestamp()
    except ValueError:
        raise SquadError(
            f"--since {text!r}: not a time; use an age like 15m, 2h, 1d or an ISO time like "
            "2026-11-22T10:00"
        ) from None
